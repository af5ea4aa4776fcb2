"""What a run of `bulk import` or `bulk undo` tells its caller: its summary (or a dry run's
plan), the exit code it earns, warnings and the error, and the problem rows' file."""

from __future__ import annotations

from dataclasses import Field, asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar


class Summary(Protocol):
    def render(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


class Plan(Protocol):
    """A dry run's plan: a dataclass that renders itself."""

    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def render(self) -> str: ...


SummaryT = TypeVar("SummaryT", bound=Summary)
PlanT = TypeVar("PlanT", bound=Plan)


@dataclass
class RunOutcome(Generic[SummaryT, PlanT]):
    summary: SummaryT
    exit_code: int
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    plan: PlanT | None = None
    errors_file: Path | None = None
    told_warnings: list[str] = field(default_factory=list)
    """Warnings the run printed as they came (planning's, before the first request): the
    report lists them with `warnings`, the closing lines do not repeat them."""

    problems_label: ClassVar[str] = "Problem rows"
    """How the rendered summary names the errors file."""

    def render(self) -> str:
        text = self.plan.render() if self.plan is not None else self.summary.render()
        if self.errors_file is not None:
            text += f"\n{self.problems_label}: {self.errors_file}"
        return text

    def to_json(self) -> dict[str, Any]:
        report: dict[str, Any] = {"summary": self.summary.to_json(), "exit_code": self.exit_code}
        if self.plan is not None:
            report["plan"] = asdict(self.plan)
        if self.error is not None:
            report["error"] = self.error
        if self.told_warnings or self.warnings:
            report["warnings"] = [*self.told_warnings, *self.warnings]
        return report
