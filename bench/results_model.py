"""Rows of the result table: a measured figure, its same-run baseline, the ratio, the target."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TargetKind = Literal["ratio_min", "ratio_max", "max", "min", "info"]


@dataclass(frozen=True)
class Target:
    """A target: the ratio or the measured value must be at least / at most ``value``."""

    kind: TargetKind
    value: float = 0.0
    text: str = ""

    def check(self, measured: float | None, ratio: float | None) -> bool | None:
        """True/False when the target applies and the numbers exist, None otherwise."""
        if self.kind == "info" or measured is None:
            return None
        if self.kind == "ratio_min":
            return None if ratio is None else ratio >= self.value
        if self.kind == "ratio_max":
            return None if ratio is None else ratio <= self.value
        if self.kind == "max":
            return measured <= self.value
        return measured >= self.value


INFO = Target("info")


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    metric: str
    unit: str
    measured: float | None
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    target: Target = INFO
    note: str = ""
    ok: bool | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.ok = self.target.check(self.measured, self.ratio)

    @property
    def verdict(self) -> str:
        """``pass``, ``MISS``, ``info`` or ``skipped``."""
        if self.measured is None:
            return "skipped"
        if self.ok is None:
            return "info"
        return "pass" if self.ok else "MISS"

    def gap(self) -> str:
        """How far a missed target is, in words."""
        t = self.target
        if self.ok is not False or self.measured is None:
            return ""
        if t.kind == "ratio_min" and self.ratio is not None:
            short = (1 - self.ratio / t.value) * 100
            return (
                f"ratio {self.ratio:.2f}x vs ≥ {t.value:g}x: {short:.0f}% short "
                f"(needs {t.value / self.ratio:.2f}x the current figure)"
            )
        if t.kind == "ratio_max" and self.ratio is not None:
            return f"ratio {self.ratio:.2f}x vs ≤ {t.value:g}x: {self.ratio / t.value:.2f}x over"
        if t.kind == "max":
            return (
                f"{self.measured:.4g} {self.unit} vs ≤ {t.value:g} {self.unit}: "
                f"{self.measured / t.value:.2f}x over"
            )
        return (
            f"{self.measured:.4g} {self.unit} vs ≥ {t.value:g} {self.unit}: "
            f"{(1 - self.measured / t.value) * 100:.0f}% short"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (target flattened, verdict added)."""
        data = asdict(self)
        data["target"] = {"kind": self.target.kind, "value": self.target.value}
        data["target_text"] = self.target.text
        data["verdict"] = self.verdict
        return data


def ratio(measured: float | None, baseline: float | None) -> float | None:
    """measured / baseline, or None when either is missing or the baseline is zero."""
    if measured is None or not baseline:
        return None
    return measured / baseline
