"""Issue 8, in-process: a run never surprises its user. `--strict` is all-or-nothing and a dry
run counts unknown customers as invalid; an export never clobbers the user's files; output paths
are checked before the first request; a dry run talks to the API once; connection errors say
what to fix; `bulk status` never changes the file it reads."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from click.testing import Result
from safe_runs_support import (
    KEY,
    assert_at_once,
    assert_one_line_error,
    bulk,
    connection,
    finish,
    html_app,
    import_customers,
    serve,
    start_bulk,
    write_customers,
    write_text,
)

from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread

WORKSPACE = "acme"


def customers_of(sandbox: Sandbox) -> list[dict[str, object]]:
    return sandbox.objects(WORKSPACE, "customer")


def table_row(stdout: str, pass_name: str) -> list[str]:
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0] == pass_name:
            return cells
    raise AssertionError(f"no {pass_name} row in:\n{stdout}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- 1. --strict is all-or-nothing; a dry run counts unknown customers as invalid ----------


def test_strict_with_an_unknown_customer_sends_nothing_and_exits_2(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write_text(tmp_path / "src" / "customers.csv", "external_id,name\nK1,Kay One\n")
    write_text(
        tmp_path / "src" / "contacts.csv",
        "customer_external_id,name,email\nK1,Ann,ann@k1.com\nNOPE2,Bob,bob@nope.com\n",
    )

    result = bulk(
        "import", str(tmp_path / "src"), *connection(threaded_sandbox), "--strict", "--quiet"
    )

    assert result.exit_code == 2, result.output
    assert "--strict" in assert_one_line_error(result.stderr)
    assert customers_of(threaded_sandbox) == []
    assert threaded_sandbox.objects(WORKSPACE, "contact") == []
    assert threaded_sandbox.stats.writes == 0


def test_dry_run_counts_contacts_of_unknown_customers_as_invalid_and_exits_1(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write_text(
        tmp_path / "src" / "contacts.csv",
        "customer_external_id,name,email\nX1,Ann,ann@x1.com\nX2,Bob,bob@x2.com\nX3,Cy,cy@x3.com\n",
    )
    report = tmp_path / "report.json"

    result = bulk(
        "import",
        str(tmp_path / "src"),
        *connection(threaded_sandbox),
        "--dry-run",
        "--report",
        str(report),
        "--quiet",
    )

    assert result.exit_code == 1, result.output
    header = table_row(result.stdout, "pass")
    contacts = dict(zip(header, table_row(result.stdout, "contacts"), strict=True))
    assert contacts["invalid"] == "3"
    assert contacts["create"] == "0"
    document = json.loads(report.read_text())
    assert document["exit_code"] == 1
    assert document["plan"]["passes"]["contacts"]["invalid"] == 3
    assert document["plan"]["passes"]["contacts"]["create"] == 0
    assert threaded_sandbox.stats.writes == 0


# -- 2. an export never clobbers the user's own files ----------------------------------------


def seed_three(sandbox: Sandbox, tmp_path: Path) -> None:
    source = write_customers(tmp_path / "seed" / "customers.csv", 3, prefix="S")
    seeded = import_customers(source, tmp_path / "seed.sqlite", *connection(sandbox))
    assert seeded.exit_code == 0, seeded.output


def test_export_refuses_a_folder_holding_the_users_own_customers_csv(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    seed_three(threaded_sandbox, tmp_path)
    out = tmp_path / "mine"
    own = write_customers(out / "customers.csv", 50)
    before, mtime = digest(own), own.stat().st_mtime_ns
    gets = threaded_sandbox.stats.methods["GET"]  # the seeding import's GET /me

    result = bulk("export", str(out), "--format", "csv", *connection(threaded_sandbox), "--quiet")

    assert result.exit_code == 2, result.output
    line = assert_one_line_error(result.stderr)
    assert "customers.csv" in line and "--overwrite" in line
    assert (digest(own), own.stat().st_mtime_ns) == (before, mtime)
    assert len(pl.read_csv(own, infer_schema=False)) == 50
    assert threaded_sandbox.stats.methods["GET"] == gets  # refused before the first request


def test_export_with_overwrite_replaces_the_users_files(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    seed_three(threaded_sandbox, tmp_path)
    out = tmp_path / "mine"
    write_customers(out / "customers.csv", 50)

    result = bulk(
        "export",
        str(out),
        "--format",
        "csv",
        "--overwrite",
        *connection(threaded_sandbox),
        "--quiet",
    )

    assert result.exit_code == 0, result.output
    exported = pl.read_csv(out / "customers.csv", infer_schema=False)
    assert sorted(exported["id"].to_list()) == sorted(
        str(c["id"]) for c in customers_of(threaded_sandbox)
    )
    assert sorted(exported["name"].to_list()) == ["Customer S1", "Customer S2", "Customer S3"]


def test_re_exporting_into_the_exports_own_folder_needs_no_overwrite(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    """Pins SPEC: only files the export did not write make it refuse (passes today)."""
    seed_three(threaded_sandbox, tmp_path)
    out = tmp_path / "export"
    first = bulk("export", str(out), "--format", "csv", *connection(threaded_sandbox), "--quiet")
    assert first.exit_code == 0, first.output

    again = bulk("export", str(out), "--format", "csv", *connection(threaded_sandbox), "--quiet")

    assert again.exit_code == 0, again.output
    assert len(pl.read_csv(out / "customers.csv", infer_schema=False)) == 3


# -- 5. output paths are checked before the first request -------------------------------------


@pytest.mark.parametrize("option", ["--errors", "--results", "--report", "--checkpoint"])
def test_an_unwritable_output_path_exits_2_before_the_first_request(
    option: str, threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 3)
    # A path under a regular file cannot be created, even by root (chmod would not stop root).
    blocker = write_text(tmp_path / "somefile.txt", "not a folder\n")
    target = blocker / "out.file"

    result = bulk(
        "import",
        "--customers",
        str(source),
        *connection(threaded_sandbox),
        option,
        str(target),
        "--quiet",
    )

    assert result.exit_code == 2, result.output
    line = assert_one_line_error(result.stderr)
    assert str(target) in line or "somefile.txt" in line
    assert threaded_sandbox.stats.requests == 0
    assert customers_of(threaded_sandbox) == []


def test_a_full_disk_for_the_report_is_one_line_not_a_traceback(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 2)

    result = bulk(
        "import",
        "--customers",
        str(source),
        *connection(threaded_sandbox),
        "--report",
        "/dev/full",
        "--quiet",
    )

    assert result.exit_code != 0
    line = assert_one_line_error(result.stderr)
    assert "space" in line.lower() or "full" in line.lower()


# -- 6. a dry run checks the key and learns the limit with one GET /me ------------------------


@pytest.fixture
def paid_sandbox() -> Iterator[Sandbox]:
    """A sandbox whose live keys get 600 requests/min, like a paid plan."""
    with sandbox_in_thread(SandboxConfig(rate_limit=600, test_rate_limit=600)) as sandbox:
        yield sandbox


def test_dry_run_with_a_revoked_key_exits_3(paid_sandbox: Sandbox, tmp_path: Path) -> None:
    paid_sandbox.revoke_key("pivotal_revoked")
    source = write_customers(tmp_path / "customers.csv", 3)

    result = bulk(
        "import",
        "--customers",
        str(source),
        "--base-url",
        paid_sandbox.base_url,
        "--api-key",
        "pivotal_revoked",
        "--dry-run",
        "--quiet",
    )

    assert result.exit_code == 3, result.output
    assert "--api-key" in assert_one_line_error(result.stderr)
    assert paid_sandbox.stats.writes == 0


def test_dry_run_makes_exactly_one_get_me_and_uses_the_keys_real_limit(
    paid_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 20)

    result = bulk(
        "import", "--customers", str(source), *connection(paid_sandbox), "--dry-run", "--quiet"
    )

    assert result.exit_code == 0, result.output
    assert paid_sandbox.stats.requests == 1
    assert dict(paid_sandbox.stats.methods) == {"GET": 1}
    assert "20 write requests" in result.stdout
    assert "at 600 requests/min" in result.stdout
    assert "the API's default" not in result.stdout


# -- 7. connection errors say what to fix -----------------------------------------------------


def import_with_a_revoked_key(sandbox: Sandbox, tmp_path: Path) -> tuple[Result, Path]:
    """An import of two customers with a key the sandbox revoked: its result and report path."""
    sandbox.revoke_key("pivotal_revoked")
    source = write_customers(tmp_path / "customers.csv", 2)
    report = tmp_path / "report.json"
    result = bulk(
        "import",
        "--customers",
        str(source),
        *connection(sandbox, "pivotal_revoked"),
        "--report",
        str(report),
        "--quiet",
    )
    return result, report


def test_a_revoked_key_says_to_check_the_key_not_to_run_again(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    result, _ = import_with_a_revoked_key(threaded_sandbox, tmp_path)

    assert result.exit_code == 3, result.output
    line = assert_one_line_error(result.stderr)
    assert "--api-key" in line and "PIVOTAL_API_KEY" in line
    assert "run the same command again" not in line.lower()
    assert "pivotal_revoked" not in result.output


def test_the_report_of_an_exit_3_run_carries_the_reason(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    result, report = import_with_a_revoked_key(threaded_sandbox, tmp_path)

    assert result.exit_code == 3, result.output
    document = json.loads(report.read_text())
    assert document["exit_code"] == 3
    reason = document.get("error") or document.get("reason")
    assert isinstance(reason, str) and "revoked" in reason.lower(), document
    assert "pivotal_revoked" not in report.read_text()


def test_a_base_url_without_api_v1_exits_3_saying_where_it_should_end(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write_customers(tmp_path / "customers.csv", 2)
    root = threaded_sandbox.base_url.removesuffix("/api/v1")

    result = bulk(
        "import", "--customers", str(source), "--base-url", root, "--api-key", KEY, "--quiet"
    )

    assert result.exit_code == 3, result.output
    assert "/api/v1" in assert_one_line_error(result.stderr)
    assert threaded_sandbox.stats.writes == 0


def test_a_base_url_without_a_scheme_is_a_usage_error_at_once(tmp_path: Path) -> None:
    write_customers(tmp_path / "customers.csv", 2)
    process = start_bulk(
        "import",
        "--customers",
        "customers.csv",
        "--base-url",
        "127.0.0.1:9/api/v1",
        "--quiet",
        cwd=tmp_path,
    )

    done = finish(process, within_s=60, what="a URL without a scheme")

    assert done.returncode == 2, done.stderr
    assert "--base-url" in assert_one_line_error(done.stderr)
    assert_at_once(done, tmp_path)  # no retries


def test_a_url_answering_html_exits_3_after_one_request_asking_if_it_is_the_api(
    tmp_path: Path,
) -> None:
    write_customers(tmp_path / "customers.csv", 2)
    with serve(html_app) as site:
        process = start_bulk(
            "import",
            "--customers",
            "customers.csv",
            "--base-url",
            site.base_url,
            "--quiet",
            cwd=tmp_path,
        )
        try:
            done = finish(process, within_s=6, what="a URL answering HTML")
        except AssertionError as error:
            raise AssertionError(f"{error} ({len(site.requests)} requests so far)") from None

    assert done.returncode == 3, done.stderr
    assert "API URL" in assert_one_line_error(done.stderr)
    assert len(site.requests) == 1, site.requests


def test_sandbox_with_a_base_url_is_a_usage_error(tmp_path: Path) -> None:
    source = write_customers(tmp_path / "customers.csv", 2)

    result = bulk(
        "import",
        "--customers",
        str(source),
        "--sandbox",
        "--base-url",
        "http://127.0.0.1:9/api/v1",
        "--quiet",
    )

    assert result.exit_code == 2, result.output
    line = assert_one_line_error(result.stderr)
    assert "--sandbox" in line and "--base-url" in line
    assert not Path("bulk-import.sqlite").exists()


# -- 8. bulk status reads, never writes ---------------------------------------------------------


def tables_of(path: Path) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return sorted(row[0] for row in db.execute("SELECT name FROM sqlite_master"))


def test_status_on_an_unrelated_sqlite_file_changes_nothing_and_says_so(tmp_path: Path) -> None:
    other = tmp_path / "notes.sqlite"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT)")
        db.execute("INSERT INTO notes (text) VALUES ('keep me')")
    db.close()
    before = (digest(other), other.stat().st_mtime_ns, tables_of(other))

    result = bulk("status", str(other))

    assert result.exit_code == 2, result.output
    assert "not a bulk checkpoint" in assert_one_line_error(result.stderr)
    assert (digest(other), other.stat().st_mtime_ns, tables_of(other)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.sqlite"]


def test_status_on_the_sandboxs_own_database_changes_nothing(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.sqlite"
    with sandbox_in_thread(SandboxConfig(rate_limit=0, db_path=database)) as sandbox:
        source = write_customers(tmp_path / "customers.csv", 2)
        imported = import_customers(source, tmp_path / "import.sqlite", *connection(sandbox))
        assert imported.exit_code == 0, imported.output
    before = (digest(database), database.stat().st_mtime_ns, tables_of(database))

    result = bulk("status", str(database))

    assert result.exit_code == 2, result.output
    assert "not a bulk checkpoint" in assert_one_line_error(result.stderr)
    assert (digest(database), database.stat().st_mtime_ns, tables_of(database)) == before


def test_status_shows_invalid_counts(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    write_text(
        tmp_path / "customers.csv",
        "external_id,name,status\nK1,Kay,active\nK2,Bee,bogus!\nK3,Cee,nonsense!\n",
    )
    imported = bulk(
        "import",
        "--customers",
        str(tmp_path / "customers.csv"),
        *connection(threaded_sandbox),
        "--quiet",
    )
    assert imported.exit_code == 1, imported.output

    result = bulk("status", "bulk-import.sqlite")

    assert result.exit_code == 0, result.output
    header = table_row(result.stdout, "pass")
    customers = dict(zip(header, table_row(result.stdout, "customers"), strict=True))
    assert customers["invalid"] == "2"
    assert customers["done"] == "1"


def test_status_rewrites_the_errors_and_results_files_from_the_checkpoint(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write_text(tmp_path / "customers.csv", "external_id,name,status\nK1,Kay,active\nK2,Bee,bad!\n")
    imported = bulk(
        "import",
        "--customers",
        str(tmp_path / "customers.csv"),
        *connection(threaded_sandbox),
        "--quiet",
    )
    assert imported.exit_code == 1, imported.output
    errors_then = pl.read_csv("bulk-import.errors.csv", infer_schema=False)
    results_then = pl.read_csv("bulk-import.results.csv", infer_schema=False)
    os.remove("bulk-import.errors.csv")
    os.remove("bulk-import.results.csv")
    requests_before = threaded_sandbox.stats.requests

    result = bulk("status", "bulk-import.sqlite", "--errors", "E.csv", "--results", "R.csv")

    assert result.exit_code == 0, result.output
    errors_now = pl.read_csv("E.csv", infer_schema=False)
    results_now = pl.read_csv("R.csv", infer_schema=False)
    assert errors_now.to_dicts() == errors_then.to_dicts()
    assert results_now.to_dicts() == results_then.to_dicts()
    assert errors_now["external_id"].to_list() == ["K2"]
    assert threaded_sandbox.stats.requests == requests_before  # status sends nothing


# -- 13. plain progress counts skipped rows as skipped -----------------------------------------


def test_plain_progress_counts_skipped_rows_as_skipped_not_failed(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    other = write_text(tmp_path / "other.csv", "external_id,name,slug\nZ9,Someone Else,taken\n")
    seeded = import_customers(other, tmp_path / "other.sqlite", *connection(threaded_sandbox))
    assert seeded.exit_code == 0, seeded.output
    write_text(tmp_path / "src" / "customers.csv", "external_id,name,slug\nK1,Kay,taken\n")
    write_text(
        tmp_path / "src" / "contacts.csv",
        "customer_external_id,name,email\nK1,Ann,ann@k1.com\nK1,Bob,bob@k1.com\n",
    )

    result = bulk("import", str(tmp_path / "src"), *connection(threaded_sandbox))  # no --quiet

    assert result.exit_code == 1, result.output
    summary = dict(
        zip(table_row(result.stdout, "pass"), table_row(result.stdout, "contacts"), strict=True)
    )
    assert (summary["skipped"], summary["failed"]) == ("2", "0")
    contact_lines = [line for line in result.stderr.splitlines() if line.startswith("contacts")]
    assert contact_lines, result.stderr
    assert contact_lines[-1] == "contacts: 2/2 rows, 2 skipped"
    assert threaded_sandbox.objects(WORKSPACE, "contact") == []
