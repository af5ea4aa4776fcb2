"""`bulk status`: what a checkpoint holds, readable while an import or an export runs.

It opens the checkpoint read-only (`Checkpoint(path, read_only=True)`): no migration, no table,
no `-wal` or lock file is created, so pointing it at any file is harmless, and a file that is not
a `bulk` checkpoint gets one line saying so. Whether a live run holds the checkpoint comes from
its lock file, read without taking it (`bulk.lock.current_holder`).
"""

from __future__ import annotations

from pathlib import Path

from bulk.checkpoint import STATES, Checkpoint
from bulk.display import format_table
from bulk.exporting.state import ExportState
from bulk.importing.reports import write_errors_file, write_results_file
from bulk.lock import current_holder
from bulk.schema import OBJECT_SCHEMAS
from bulk.settings import pass_order
from bulk.undoing.ledger import UNDO_PASSES, UNDO_STATES
from bulk.undoing.ledger import state_counts as undo_state_counts

COLUMNS = (*STATES, "invalid")
"""The import table's columns after `pass`: rows by state, then rows that failed validation."""


def describe_checkpoint(path: Path) -> str:
    """An import checkpoint's rows by state and last errors, or an export's progress, and
    whether a live process holds it."""
    checkpoint = Checkpoint(path, read_only=True)
    try:
        export = ExportState.load(checkpoint)
        counts = _counts(checkpoint)
        text = (
            _describe_export(export)
            if export is not None and not counts
            else _describe_import(checkpoint, counts)
        )
    finally:
        checkpoint.close()
    return f"{text}\n{_holder_line(path)}"


def rewrite_reports(path: Path, errors: Path | None, results: Path | None) -> list[Path]:
    """Write the errors and/or results file again, from the whole checkpoint alone (nothing is
    sent), as the last import wrote them; the files written (no errors file when no row has a
    problem)."""
    checkpoint = Checkpoint(path, read_only=True)
    try:
        if checkpoint.latest_run() is None:
            return []
        written = [write_errors_file(checkpoint, errors)] if errors is not None else []
        if results is not None:
            written.append(write_results_file(checkpoint, results))
    finally:
        checkpoint.close()
    return [file for file in written if file is not None]


def _counts(checkpoint: Checkpoint) -> dict[str, dict[str, int]]:
    """Per pass, rows by state and the invalid rows (each pass's latest plan's)."""
    counts = checkpoint.state_counts()
    for pass_name, invalid in checkpoint.invalid_counts().items():
        counts.setdefault(pass_name, {})["invalid"] = invalid
    return counts


def _describe_import(checkpoint: Checkpoint, counts: dict[str, dict[str, int]]) -> str:
    rows = [
        (pass_name, *(states.get(column, 0) for column in COLUMNS))
        for pass_name, states in sorted(counts.items(), key=lambda item: pass_order(item[0]))
    ]
    lines = [format_table(("pass", *COLUMNS), rows)]
    if not counts:
        lines.append("(no rows yet)")
    lines += _describe_undo(checkpoint)
    errors = checkpoint.last_errors()
    if errors:
        lines += ["", "Last errors:"]
        lines += [
            f"  {pass_name} line {line} ({key}): {code}: {message}"
            for pass_name, key, line, code, message in errors
        ]
    return "\n".join(lines)


def _describe_undo(checkpoint: Checkpoint) -> list[str]:
    """The undo's rows by state, children first as it runs (nothing when no undo ran)."""
    counts = undo_state_counts(checkpoint)
    if not counts:
        return []
    rows = [
        (pass_name, *(counts.get(pass_name, {}).get(state, 0) for state in UNDO_STATES))
        for pass_name in UNDO_PASSES
        if pass_name in counts
    ]
    return ["", format_table(("undo", *UNDO_STATES), rows)]


def _describe_export(state: ExportState) -> str:
    phase = "finished" if state.finished else "in progress (or stopped)"
    rows = [
        (schema.collection, state.of(schema).rows, state.of(schema).parts)
        for schema in OBJECT_SCHEMAS
    ]
    lines = [
        f"export of workspace {state.workspace!r}: {phase}",
        format_table(("type", "rows", "parts"), rows),
    ]
    if state.contacts_walked:
        lines.append(f"contacts walked for {state.contacts_walked} customers")
    lines += [f"warning: {warning}" for warning in state.warnings]
    return "\n".join(lines)


def _holder_line(path: Path) -> str:
    holder = current_holder(path)
    if holder is None:
        return "Not in use by a live process."
    return f"In use by {holder.describe()}."
