"""`bulk undo`: the samples imported into a workspace with customers of its own, one created
customer changed by hand, then undone — created records deleted (children first), adopted
ones restored field by field, the hand-changed one a conflict until `--force`, nothing else
touched; a re-run sends no write, and a re-import creates everything anew under new keys."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import polars as pl
from helpers import WORKSPACE, source_rows
from safe_runs_support import KEY
from undo_support import (
    HAND_CHANGED,
    assert_put_back,
    assert_samples_imported,
    call,
    change_by_hand,
    customer_with,
    import_samples,
    live_ids,
    seed_workspace,
    undo,
)

from bulk.importing.sending import idempotency_key
from bulk.sandbox import Sandbox

OTHER_KEY = "pivotal_globex"


def summary_row(output: str, pass_name: str) -> list[int]:
    """The summary's counts for a pass: total, deleted, restored, gone, conflicts, failed,
    pending."""
    lines = [line.split() for line in output.splitlines()]
    header = next(line for line in lines if line[:1] == ["undo"])
    assert header == [
        "undo",
        "total",
        "deleted",
        "restored",
        "gone",
        "conflicts",
        "failed",
        "pending",
    ]
    row = next(line for line in lines if line[:1] == [pass_name])
    return [int(count) for count in row[1:]]


def test_undo_deletes_what_the_import_created_restores_what_it_adopted_and_spares_the_rest(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    seeded = seed_workspace(threaded_sandbox)
    checkpoint = tmp_path / "import.sqlite"
    imported = import_samples(threaded_sandbox, checkpoint)
    assert imported.exit_code == 0, imported.output
    adopted_now = customer_with(threaded_sandbox, "063581")
    assert adopted_now["plan"] == "starter"  # the import changed it
    hand_changed = change_by_hand(threaded_sandbox, HAND_CHANGED, {"plan": "hand-picked"})
    created_ids = set().union(*live_ids(threaded_sandbox).values()) - seeded.ids

    result = undo(threaded_sandbox, checkpoint)

    assert result.exit_code == 1, result.output
    assert summary_row(result.output, "customers") == [50, 47, 2, 0, 1, 0, 0]
    assert summary_row(result.output, "contacts") == [100, 99, 1, 0, 0, 0, 0]
    assert summary_row(result.output, "onboardings") == [40, 40, 0, 0, 0, 0, 0]
    assert_put_back(threaded_sandbox, seeded, kept={hand_changed["id"]})
    assert customer_with(threaded_sandbox, HAND_CHANGED) == hand_changed  # untouched
    errors = pl.read_csv(tmp_path / "import.undo-errors.csv", infer_schema=False).to_dicts()
    assert [(e["_pass"], e["external_id"], e["_error_code"]) for e in errors] == [
        ("customers", HAND_CHANGED, "changed_since_import")
    ]
    assert "changed by somebody else since the import wrote it" in str(errors[0]["_error_message"])

    writes = threaded_sandbox.stats.writes
    again = undo(threaded_sandbox, checkpoint)
    assert again.exit_code == 1, again.output
    assert threaded_sandbox.stats.writes == writes  # a re-run sends no write
    assert summary_row(again.output, "customers") == [1, 0, 0, 0, 1, 0, 0]

    forced = undo(threaded_sandbox, checkpoint, "--force")
    assert forced.exit_code == 0, forced.output
    assert_put_back(threaded_sandbox, seeded)
    writes = threaded_sandbox.stats.writes
    finished = undo(threaded_sandbox, checkpoint)
    assert finished.exit_code == 0, finished.output
    assert threaded_sandbox.stats.writes == writes

    replays = threaded_sandbox.stats.replays
    reimported = import_samples(threaded_sandbox, checkpoint)
    assert reimported.exit_code == 0, reimported.output
    assert threaded_sandbox.stats.replays == replays  # new keys: nothing replayed
    assert_samples_imported(threaded_sandbox, seeded, created_ids)


def test_a_re_import_after_an_undo_creates_every_row_anew_under_new_idempotency_keys(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "import.sqlite"
    assert import_samples(threaded_sandbox, checkpoint).exit_code == 0
    first_ids = set().union(*live_ids(threaded_sandbox).values())
    assert undo(threaded_sandbox, checkpoint).exit_code == 0
    assert set().union(*live_ids(threaded_sandbox).values()) == set()
    replays, posts = threaded_sandbox.stats.replays, threaded_sandbox.stats.methods["POST"]

    result = import_samples(threaded_sandbox, checkpoint)

    assert result.exit_code == 0, result.output
    assert threaded_sandbox.stats.replays == replays  # the old keys would replay the deleted
    rows = len(source_rows("customers")) + len(source_rows("contacts"))
    rows += len(source_rows("onboardings"))
    assert threaded_sandbox.stats.methods["POST"] - posts == rows
    second_ids = set().union(*live_ids(threaded_sandbox).values())
    assert len(second_ids) == rows and not second_ids & first_ids
    with sqlite3.connect(checkpoint) as db:
        generations = {g for (g,) in db.execute("SELECT generation FROM rows")}
        actions = {a for (a,) in db.execute("SELECT action FROM rows")}
    assert generations == {1}
    assert actions == {"created"}
    # and a second undo of the re-import deletes the new records
    assert undo(threaded_sandbox, checkpoint).exit_code == 0
    assert set().union(*live_ids(threaded_sandbox).values()) == set()


def test_generation_zero_keeps_the_keys_older_checkpoints_sent() -> None:
    assert idempotency_key("customers", "001") == idempotency_key("customers", "001", 0)
    assert idempotency_key("customers", "001", 1) != idempotency_key("customers", "001")
    assert idempotency_key("customers", "001", 1) != idempotency_key("customers", "001", 2)


def test_undo_refuses_a_key_of_another_workspace_and_sends_nothing(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "import.sqlite"
    assert import_samples(threaded_sandbox, checkpoint).exit_code == 0
    writes = threaded_sandbox.stats.writes
    ours, theirs = (
        call(threaded_sandbox, "GET", "/me", key=key)[1]["organization"]["id"]
        for key in (KEY, OTHER_KEY)
    )

    result = undo(threaded_sandbox, checkpoint, key=OTHER_KEY)

    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [
        f"Error: This key belongs to workspace 'globex' ({theirs}), but the checkpoint imported "
        f"into 'acme' ({ours}): nothing was undone. Pass a key of the workspace the import "
        "wrote to."
    ]
    assert threaded_sandbox.stats.writes == writes
    assert len(threaded_sandbox.objects(WORKSPACE, "customer")) == len(source_rows("customers"))
