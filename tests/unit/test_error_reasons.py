"""Every error reason is raised somewhere, default reasons are generic, and errors say why."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import modelregistry_server
from modelregistry_server.domain import errors
from modelregistry_server.domain.errors import DomainError, Reason

SERVER = Path(modelregistry_server.__file__).parent
GENERIC = {Reason.INVALID_ARGUMENT, Reason.CANCELLED, Reason.BACKEND_UNAVAILABLE}


def _reason_uses(tree: ast.AST) -> set[str]:
    """Members named as ``Reason.X`` outside comparisons (``x is Reason.X`` raises nothing)."""
    compared: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            compared.update(
                id(n) for part in (node.left, *node.comparators) for n in ast.walk(part)
            )
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "Reason"
        and id(node) not in compared
    }


def test_every_reason_is_raised_somewhere() -> None:
    used: set[str] = set()
    for path in SERVER.rglob("*.py"):
        used |= _reason_uses(ast.parse(path.read_text(), str(path)))
    assert set(Reason.__members__) - used == set()


def test_default_reasons_are_generic() -> None:
    classes = [
        c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, DomainError)
    ]
    assert len(classes) > 5
    for cls in classes:
        assert cls.default_reason is None or cls.default_reason in GENERIC, cls.__name__


@pytest.mark.parametrize(
    "cls",
    [errors.NotFound, errors.AlreadyExists, errors.FailedPrecondition, errors.Aborted,
     errors.OutOfRange, errors.DataLoss],
)  # fmt: skip
def test_specific_errors_need_a_reason(cls: type[DomainError]) -> None:
    with pytest.raises(TypeError, match="explicit reason"):
        DomainError.__init__(cls.__new__(cls), "something went wrong")
    assert cls("gone", reason=Reason.FILE_NOT_FOUND).reason is Reason.FILE_NOT_FOUND
