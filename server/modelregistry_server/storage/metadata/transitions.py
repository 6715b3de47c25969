"""Stage history (the ``StageHistory`` port)."""

from __future__ import annotations

from ...domain.entities import Page, StageTransition
from . import rows
from .core import StoreCore, check_limit, dicts


class TransitionRows(StoreCore):
    """``transitions``: numbered per version from the version's ``transition_seq``."""

    def add_transition(
        self, tenant: str, model_id: str, number: int, transition: StageTransition
    ) -> None:
        """Append a transition to the version's history; sets ``transition.sequence``."""
        v, t = self._t.versions, self._t.transitions
        with self._write():
            version_pk = self._require_version_pk(tenant, model_id, number)
            v.update(transition_seq=v.transition_seq + 1).where(v.id == version_pk).execute()
            sequence: int = v.select(v.transition_seq).where(v.id == version_pk).scalar()
            t.insert(
                tenant=tenant,
                version_pk=version_pk,
                sequence=sequence,
                **rows.transition_columns(transition),
            ).execute()
            transition.sequence = sequence

    def list_transitions(
        self, tenant: str, model_id: str, number: int, after: int | None, limit: int
    ) -> Page[StageTransition]:
        """Transitions in order; the cursor is ``(sequence,)``."""
        check_limit(limit)
        v, t = self._t.versions, self._t.transitions
        with self._read():
            query = (
                t.select(t)
                .join_from(t, v, on=(t.version_pk == v.id))
                .where(
                    v.tenant == tenant,
                    v.model_id == model_id,
                    v.number == number,
                    t.tenant == tenant,
                )
            )
            if after is not None:
                query = query.where(t.sequence > after)
            found = dicts(query.order_by(t.sequence).limit(limit + 1))
        items = [rows.transition_entity(r) for r in found[:limit]]
        cursor = (items[-1].sequence,) if len(found) > limit else None
        return Page(items=items, next_cursor=cursor)
