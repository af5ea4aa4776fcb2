"""`bulk status`: what a checkpoint holds, readable while an import runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bulk.checkpoint import STATES, Checkpoint
from bulk.settings import pass_order


def describe_checkpoint(path: Path) -> str:
    """An import checkpoint's rows by state and last errors, or an export's progress."""
    checkpoint = Checkpoint(path)
    try:
        counts = checkpoint.state_counts()
        errors = checkpoint.last_errors()
        export = checkpoint.export_states()
    finally:
        checkpoint.close()
    if export and not counts:
        return _describe_export(export)
    width = max([len("pass"), *(len(name) for name in counts)])
    lines = ["  ".join(["pass".ljust(width), *(state.rjust(9) for state in STATES)])]
    for pass_name, states in sorted(counts.items(), key=lambda item: pass_order(item[0])):
        lines.append(
            "  ".join(
                [pass_name.ljust(width), *(str(states.get(state, 0)).rjust(9) for state in STATES)]
            )
        )
    if not counts:
        lines.append("(no rows yet)")
    if errors:
        lines.append("")
        lines.append("Last errors:")
        for pass_name, key, line, code, message in errors:
            lines.append(f"  {pass_name} line {line} ({key}): {code}: {message}")
    return "\n".join(lines)


def _describe_export(state: dict[str, Any]) -> str:
    phase = "finished" if state.get("phase") == "done" else "in progress (or stopped)"
    lines = [f"export of workspace {state.get('workspace')!r}: {phase}"]
    for object_name, label in (
        ("customer", "customers"),
        ("contact", "contacts"),
        ("onboarding", "onboardings"),
    ):
        written = state.get(f"{object_name}.rows", 0)
        parts = state.get(f"{object_name}.parts", 0)
        lines.append(f"  {label:<12} {written:>9} rows written in {parts} parts")
    if "contact.customers_done" in state:
        lines.append(f"  contacts walked for {state['contact.customers_done']} customers")
    for warning in state.get("warnings", []):
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)
