"""Stage policy: the one table of allowed stage transitions, and what promotion requires.

A version starts in DEVELOPMENT. STAGING and PRODUCTION are *promotions*: they need a READY,
unexpired version, and may archive the version(s) holding that stage (``archive_existing``).
A version that reached PRODUCTION leaves it for STAGING or ARCHIVED, never straight back to
DEVELOPMENT; ARCHIVED versions may be restored to any stage (a rollback re-promotes one).
"""

from __future__ import annotations

from collections.abc import Mapping

from .entities import Stage
from .errors import FailedPrecondition, Reason

ALLOWED_TRANSITIONS: Mapping[Stage, frozenset[Stage]] = {
    Stage.DEVELOPMENT: frozenset({Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED}),
    Stage.STAGING: frozenset({Stage.DEVELOPMENT, Stage.PRODUCTION, Stage.ARCHIVED}),
    Stage.PRODUCTION: frozenset({Stage.STAGING, Stage.ARCHIVED}),
    Stage.ARCHIVED: frozenset({Stage.DEVELOPMENT, Stage.STAGING, Stage.PRODUCTION}),
}
PROMOTIONS = frozenset({Stage.STAGING, Stage.PRODUCTION})


def check_transition(from_stage: Stage, to_stage: Stage) -> None:
    """FAILED_PRECONDITION unless the table allows ``from_stage`` → ``to_stage``."""
    if from_stage is to_stage:
        raise FailedPrecondition(
            f"version is already in stage {to_stage.value}", reason=Reason.STAGE_UNCHANGED
        )
    allowed = ALLOWED_TRANSITIONS[from_stage]
    if to_stage not in allowed:
        names = ", ".join(sorted(s.value for s in allowed))
        raise FailedPrecondition(
            f"a version in {from_stage.value} cannot move to {to_stage.value}; allowed: {names}",
            reason=Reason.STAGE_TRANSITION_NOT_ALLOWED,
            metadata={
                "from_stage": from_stage.value,
                "to_stage": to_stage.value,
                "allowed": names,
            },
        )
