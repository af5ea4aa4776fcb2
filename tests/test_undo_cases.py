"""`bulk undo` case by case, on small sources: the dry run, `bulk status`, an adopted record
changed by somebody else, values remembered across runs, a primary contact our own import
demoted, a record somebody else deleted, a checkpoint in use, and one that has nothing to
undo."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from safe_runs_support import KEY, bulk, connection, write_text
from undo_support import call, made, undo

from bulk.lock import CheckpointLock
from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread
from bulk.status import describe_checkpoint

WORKSPACE = "acme"


def write_source(folder: Path, customers: str, contacts: str | None = None) -> Path:
    write_text(folder / "customers.csv", customers)
    if contacts is not None:
        write_text(folder / "contacts.csv", contacts)
    return folder


def run_import(sandbox: Sandbox, folder: Path, checkpoint: Path) -> None:
    result = bulk(
        "import", str(folder), "--checkpoint", str(checkpoint), "--quiet", *connection(sandbox)
    )
    assert result.exit_code == 0, result.output


def customers(sandbox: Sandbox) -> dict[str, dict[str, object]]:
    return {
        str((c.get("metadata") or {}).get("external_id")): c
        for c in sandbox.objects(WORKSPACE, "customer")
    }


def later() -> None:
    """A millisecond at least, so that the next write's `updated_at` is newer."""
    time.sleep(0.005)


def test_dry_run_counts_deletes_and_restores_times_them_and_sends_nothing(
    tmp_path: Path,
) -> None:
    """Imported on a sandbox without limits; the dry run meets the same data on a paid plan's
    600 requests/min, its window fresh, as a dry run the next day would."""
    data = tmp_path / "sandbox.sqlite"
    folder = write_source(
        tmp_path / "src",
        "external_id,name,plan\nA,Old,new\nB,Bee,gold\nC,Cee,gold\n",
        "customer_external_id,name,email\nB,Bo,bo@b.com\n",
    )
    checkpoint = tmp_path / "import.sqlite"
    with sandbox_in_thread(SandboxConfig(rate_limit=0, test_rate_limit=0, db_path=data)) as free:
        made(free, "/customers", {"name": "Old", "plan": "x", "metadata": {"external_id": "A"}})
        run_import(free, folder, checkpoint)
    paid = SandboxConfig(rate_limit=600, test_rate_limit=600, db_path=data)
    with sandbox_in_thread(paid) as sandbox:
        result = undo(sandbox, checkpoint, "--dry-run")
        forced = undo(sandbox, checkpoint, "--dry-run", "--force")
        methods = dict(sandbox.stats.methods)

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "undo         delete  restore  resend",
        "onboardings       0        0       0",
        "contacts          1        0       0",
        "customers         2        1       0",
        "8 requests; about 0 s at 600 requests/min. Dry run: nothing was sent.",
    ]
    assert forced.stdout.splitlines()[-1].startswith("4 requests; ")
    assert methods == {"GET": 2}  # one GET /me each
    assert "undo" not in describe_checkpoint(checkpoint)  # the dry runs left no undo state


def test_status_shows_the_undo_by_state(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    folder = write_source(tmp_path / "src", "external_id,name\nA,Ay\nB,Bee\n")
    checkpoint = tmp_path / "import.sqlite"
    run_import(threaded_sandbox, folder, checkpoint)
    assert undo(threaded_sandbox, checkpoint).exit_code == 0

    text = describe_checkpoint(checkpoint)

    lines = text.splitlines()
    assert lines[1].split() == ["customers", "2", "0", "0", "0", "0", "0"]  # pending again
    assert lines[3].split() == [
        "undo",
        "undo_pending",
        "undo_in_flight",
        "undone",
        "conflict",
        "failed",
    ]
    assert lines[4].split() == ["customers", "0", "0", "2", "0", "0"]


def test_an_adopted_record_somebody_changed_since_is_a_conflict_until_force(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    theirs = made(
        threaded_sandbox,
        "/customers",
        {"name": "Acme", "plan": "bronze", "mrr": 10, "metadata": {"external_id": "A"}},
    )
    folder = write_source(tmp_path / "src", "external_id,name,plan\nA,Acme,gold\n")
    checkpoint = tmp_path / "import.sqlite"
    run_import(threaded_sandbox, folder, checkpoint)
    later()
    status, changed = call(threaded_sandbox, "PATCH", f"/customers/{theirs['id']}", {"mrr": 99})
    assert status == 200

    result = undo(threaded_sandbox, checkpoint)

    assert result.exit_code == 1, result.output
    assert customers(threaded_sandbox)["A"] == changed  # neither restored nor touched
    forced = undo(threaded_sandbox, checkpoint, "--force")
    assert forced.exit_code == 0, forced.output
    now = customers(threaded_sandbox)["A"]
    assert (now["plan"], now["mrr"], now["metadata"]) == ("bronze", 99, theirs["metadata"])


def test_values_an_adopted_record_had_before_the_first_run_are_what_the_undo_restores(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    theirs = made(
        threaded_sandbox,
        "/customers",
        {"name": "Acme", "plan": "bronze", "status": "active", "metadata": {"external_id": "A"}},
    )
    checkpoint = tmp_path / "import.sqlite"
    folder = write_source(tmp_path / "src", "external_id,name,plan\nA,Acme,gold\n")
    run_import(threaded_sandbox, folder, checkpoint)  # plan changed, status not
    write_source(folder, "external_id,name,plan,status\nA,Acme,platinum,churned\n")
    run_import(threaded_sandbox, folder, checkpoint)  # plan changed again, status too
    patches = threaded_sandbox.stats.methods["PATCH"]

    result = undo(threaded_sandbox, checkpoint)

    assert result.exit_code == 0, result.output
    assert threaded_sandbox.stats.methods["PATCH"] - patches == 1  # one restore
    now = customers(threaded_sandbox)["A"]
    for name in ("name", "slug", "plan", "status", "metadata", "tags", "mrr"):
        assert now[name] == theirs[name], name


def test_a_primary_contact_our_own_import_demoted_is_not_a_conflict(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = write_source(
        tmp_path / "src",
        "external_id,name\nA,Acme\n",
        "customer_external_id,name,email,is_primary\nA,Ann,ann@a.com,yes\nA,Bob,bob@a.com,yes\n",
    )
    checkpoint = tmp_path / "import.sqlite"
    result = bulk(
        "import", str(folder), "--checkpoint", str(checkpoint), "--quiet", "--concurrency", "1",
        *connection(threaded_sandbox),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ann = next(c for c in threaded_sandbox.objects(WORKSPACE, "contact") if c["name"] == "Ann")
    assert ann["is_primary"] is False  # demoted when Bob became primary

    undone = undo(threaded_sandbox, checkpoint)

    assert undone.exit_code == 0, undone.output
    assert threaded_sandbox.objects(WORKSPACE, "contact") == []


def test_a_record_somebody_else_deleted_already_counts_as_gone(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = write_source(tmp_path / "src", "external_id,name\nA,Ay\nB,Bee\n")
    checkpoint = tmp_path / "import.sqlite"
    run_import(threaded_sandbox, folder, checkpoint)
    status, _ = call(
        threaded_sandbox, "DELETE", f"/customers/{customers(threaded_sandbox)['A']['id']}"
    )
    assert status == 200

    result = undo(threaded_sandbox, checkpoint)

    assert result.exit_code == 0, result.output
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith("customers"))
    assert row == ["customers", "2", "1", "0", "1", "0", "0", "0"]
    assert threaded_sandbox.objects(WORKSPACE, "customer") == []


def test_undo_on_a_checkpoint_in_use_exits_2_and_sends_nothing(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = write_source(tmp_path / "src", "external_id,name\nA,Ay\n")
    checkpoint = tmp_path / "import.sqlite"
    run_import(threaded_sandbox, folder, checkpoint)
    requests = threaded_sandbox.stats.requests

    with CheckpointLock(checkpoint, "bulk import"):
        result = undo(threaded_sandbox, checkpoint)

    assert result.exit_code == 2
    assert result.stderr.startswith(
        f"Error: The checkpoint {checkpoint} is in use by another process: pid {os.getpid()} "
        f"on {socket.gethostname()}, since "
    )
    assert threaded_sandbox.stats.requests == requests
    assert len(threaded_sandbox.objects(WORKSPACE, "customer")) == 1


def test_a_checkpoint_that_imported_nothing_has_nothing_to_undo(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = write_source(tmp_path / "src", "external_id,name,status\nA,Ay,bogus!\n")
    checkpoint = tmp_path / "import.sqlite"
    imported = bulk(
        "import", str(folder), "--checkpoint", str(checkpoint), "--quiet",
        *connection(threaded_sandbox),
    )  # fmt: skip
    assert imported.exit_code == 1  # the only row is invalid

    result = undo(threaded_sandbox, checkpoint)

    assert result.exit_code == 0, result.output
    assert threaded_sandbox.stats.writes == 0
    assert result.stdout.splitlines()[1:4] == [
        "onboardings      0        0         0     0          0       0        0",
        "contacts         0        0         0     0          0       0        0",
        "customers        0        0         0     0          0       0        0",
    ]


def test_the_key_is_never_written_into_the_undo_outputs(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = write_source(tmp_path / "src", "external_id,name\nA,Ay\n")
    checkpoint = tmp_path / "import.sqlite"
    run_import(threaded_sandbox, folder, checkpoint)
    report = tmp_path / "undo.json"

    result = undo(threaded_sandbox, checkpoint, "--report", str(report))

    assert result.exit_code == 0, result.output
    for path in tmp_path.iterdir():
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path
    assert '"deleted": 1' in report.read_text()
