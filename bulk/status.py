"""`bulk status`: what a checkpoint holds, readable while an import runs."""

from __future__ import annotations

from pathlib import Path

from bulk.checkpoint import STATES, Checkpoint
from bulk.settings import PASSES


def describe_checkpoint(path: Path) -> str:
    checkpoint = Checkpoint(path)
    try:
        counts = checkpoint.state_counts()
        errors = checkpoint.last_errors()
    finally:
        checkpoint.close()
    width = max([len("pass"), *(len(name) for name in counts)])
    lines = ["  ".join(["pass".ljust(width), *(state.rjust(9) for state in STATES)])]
    for pass_name, states in sorted(counts.items(), key=lambda item: _order(item[0])):
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


def _order(pass_name: str) -> int:
    return PASSES.index(pass_name) if pass_name in PASSES else len(PASSES)
