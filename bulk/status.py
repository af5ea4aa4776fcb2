"""`bulk status`: what a checkpoint holds, readable while an import or an export runs."""

from __future__ import annotations

from pathlib import Path

from bulk.checkpoint import STATES, Checkpoint
from bulk.display import format_table
from bulk.exporting.state import ExportState
from bulk.schema import OBJECT_SCHEMAS
from bulk.settings import pass_order


def describe_checkpoint(path: Path) -> str:
    """An import checkpoint's rows by state and last errors, or an export's progress."""
    checkpoint = Checkpoint(path)
    try:
        counts = checkpoint.state_counts()
        errors = checkpoint.last_errors()
        export = ExportState.load(checkpoint)
    finally:
        checkpoint.close()
    if export is not None and not counts:
        return _describe_export(export)
    rows = [
        (pass_name, *(str(states.get(state, 0)) for state in STATES))
        for pass_name, states in sorted(counts.items(), key=lambda item: pass_order(item[0]))
    ]
    lines = [format_table(("pass", *STATES), rows)]
    if not counts:
        lines.append("(no rows yet)")
    if errors:
        lines.append("")
        lines.append("Last errors:")
        for pass_name, key, line, code, message in errors:
            lines.append(f"  {pass_name} line {line} ({key}): {code}: {message}")
    return "\n".join(lines)


def _describe_export(state: ExportState) -> str:
    phase = "finished" if state.finished else "in progress (or stopped)"
    lines = [f"export of workspace {state.workspace!r}: {phase}"]
    for schema in OBJECT_SCHEMAS:
        progress = state.of(schema)
        # the fixed widths are this line's documented layout (tests/test_import_cli.py pins it)
        lines.append(
            f"  {schema.collection:<12} {progress.rows:>9} rows written in {progress.parts} parts"
        )
    if state.contacts_walked:
        lines.append(f"  contacts walked for {state.contacts_walked} customers")
    for warning in state.warnings:
        lines.append(f"  warning: {warning}")
    return "\n".join(lines)
