"""`bulk import` and `bulk status` through the command line: bad input gets one clear line and
the right exit code, never a traceback; dry runs, --strict, reports and secrets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from helpers import KEY, SAMPLES, WORKSPACE, assert_workspace_matches_samples, bulk

from bulk.sandbox import Sandbox

SECRET_KEY = "pivotal_secretive"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def struct_parquet(path: Path) -> Path:
    pl.DataFrame({"external_id": ["1"], "name": [{"a": 1}]}).write_parquet(path)
    return path


BAD_FILES = [
    pytest.param(
        lambda tmp: tmp / "missing.csv",
        "Error: missing.csv: does not exist.",
        id="missing file",
    ),
    pytest.param(
        lambda tmp: write(tmp / "customers.csv", ""),
        "Error: customers.csv: is empty.",
        id="empty file",
    ),
    pytest.param(
        lambda tmp: write(tmp / "customers.csv", "external_id,title\n1,CEO\n"),
        "Error: customers.csv: has no 'name' column, and customers need one. Add the column, "
        "or read name from another column with --map name=COLUMN.",
        id="missing required column",
    ),
    pytest.param(
        lambda tmp: write(tmp / "customers.csv", b"\x00\x01\x02binary\x00"),
        "Error: customers.csv: is not a CSV file",
        id="binary file",
    ),
    pytest.param(
        lambda tmp: write(tmp / "customers.csv", b"external_id,name\n1,Acme\n2,Caf\xe9\n"),
        "Error: customers.csv line 3: is not valid UTF-8 (byte 0xE9). "
        "Pass --encoding cp1252 (what Excel writes on Windows), or the file's encoding.",
        id="undecodable bytes",
    ),
    pytest.param(
        lambda tmp: struct_parquet(tmp / "customers.parquet"),
        "Error: customers.parquet, column 'name': has type Struct({'a': Int64}), which cannot "
        "be read as text.",
        id="parquet column of the wrong type",
    ),
]


@pytest.mark.parametrize(("make_file", "message"), BAD_FILES)
def test_bad_files_get_one_line_and_exit_2(make_file, message: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = make_file(tmp_path)

    result = bulk("import", "--customers", str(source), "--sandbox", "--quiet")

    assert result.exit_code == 2
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert result.stdout == ""


def against(sandbox: Sandbox) -> tuple[str, ...]:
    """The options that point a command at `sandbox`'s workspace `WORKSPACE`."""
    return ("--base-url", sandbox.base_url, "--api-key", KEY)


def errors_file_rows(path: Path = Path("bulk-import.errors.csv")) -> list[dict[str, str | None]]:
    return pl.read_csv(path, infer_schema=False).to_dicts()


def test_invalid_rows_are_reported_with_line_column_and_reason(tmp_path: Path) -> None:
    folder = tmp_path / "source"
    folder.mkdir()
    write(
        folder / "customers.csv",
        'external_id,name,metadata\n001,Acme,{bad\n001,Acme Again,\n002,Globex,"{""a"": 1}"\n',
    )
    write(
        folder / "contacts.csv",
        "customer_external_id,name,email\n002,Ann,ann@globex.com\n999,Bob,bob@nowhere.com\n"
        "002,Al,al@\n",
    )

    result = bulk("import", str(folder), "--sandbox", "--quiet")

    assert result.exit_code == 1
    assert "Problem rows: bulk-import.errors.csv" in result.stdout
    problems = {(row["_pass"], row["_line"]): row for row in errors_file_rows()}
    assert set(problems) == {
        ("customers", "2"),
        ("customers", "3"),
        ("contacts", "3"),
        ("contacts", "4"),
    }
    assert problems[("customers", "2")]["_error_code"] == "invalid_json"
    assert problems[("customers", "3")]["_error_message"] == (
        "external_id '001' already appears on line 2"
    )
    assert problems[("contacts", "3")]["_error_code"] == "unknown_customer"
    assert problems[("contacts", "4")]["_error_message"] == "email 'al@' is not an email address"
    assert problems[("contacts", "4")]["email"] == "al@"


def test_strict_sends_nothing_when_a_row_is_invalid(tmp_path: Path) -> None:
    write(tmp_path / "customers.csv", "external_id,name,status\n1,Acme,active\n2,Globex,bogus!\n")

    result = bulk(
        "import", "--customers", str(tmp_path / "customers.csv"), "--sandbox", "--strict", "--quiet"
    )

    assert result.exit_code == 2
    assert "1 invalid rows and --strict: nothing was sent." in result.stderr
    results = pl.read_csv("bulk-import.results.csv", infer_schema=False)
    assert results["action"].to_list() == ["pending", "invalid"]


def test_dry_run_prints_the_plan_and_sends_no_write(tmp_path: Path) -> None:
    result = bulk("import", str(SAMPLES), "--sandbox", "--dry-run", "--quiet")

    assert result.exit_code == 0
    assert result.stdout.splitlines()[1:4] == [
        "customers        50       0       0          0        0        0",
        "contacts        100       0       0          0        0        0",
        "onboardings      40       0       0          0        0        0",
    ]
    assert "190 write requests" in result.stdout
    assert "Dry run: nothing was sent." in result.stdout
    assert not Path("bulk-import.sqlite").exists()


def test_a_dry_run_after_an_import_tells_new_changed_and_unchanged_rows_apart(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = write(tmp_path / "customers.csv", "external_id,name\nK1,Acme\nK2,Bee\n")
    where = ("--base-url", threaded_sandbox.base_url, "--api-key", KEY)
    assert bulk("import", "--customers", str(source), *where, "--quiet").exit_code == 0
    write(source, "external_id,name\nK1,Acme\nK2,Bee Ltd\nK3,Cee\n")

    result = bulk("import", "--customers", str(source), *where, "--dry-run", "--quiet")

    assert result.exit_code == 0, result.output
    header, customers = result.stdout.splitlines()[0:2]
    assert header.split() == [
        "pass",
        "create",
        "update",
        "resend",
        "unchanged",
        "skipped",
        "invalid",
    ]
    assert customers.split() == ["customers", "1", "1", "0", "1", "0", "0"]


def test_samples_with_report_then_status_and_no_secret_anywhere(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    result = bulk(
        "import",
        str(SAMPLES),
        "--base-url",
        threaded_sandbox.base_url,
        "--api-key",
        SECRET_KEY,
        "--report",
        str(report),
        "--quiet",
    )

    assert result.exit_code == 0, result.output
    document = json.loads(report.read_text())
    assert document["exit_code"] == 0
    assert document["summary"]["passes"]["contacts"]["created"] == 100
    assert document["summary"]["requests"] == 191

    status = bulk("status", "bulk-import.sqlite")
    assert status.exit_code == 0
    assert status.stdout.splitlines()[1].split() == ["customers", "0", "0", "50", "0", "0", "0"]

    for path in [*Path().iterdir(), report]:
        if path.is_file():
            assert SECRET_KEY.encode() not in path.read_bytes(), path
    assert SECRET_KEY not in result.output + status.output


def test_an_unusable_key_exits_3_before_any_write(threaded_sandbox: Sandbox) -> None:
    threaded_sandbox.revoke_key("pivotal_revoked")

    result = bulk(
        "import",
        str(SAMPLES),
        "--base-url",
        threaded_sandbox.base_url,
        "--api-key",
        "pivotal_revoked",
        "--quiet",
    )

    assert result.exit_code == 3
    assert "The API refused the run" in result.stderr
    # SPEC: a bad key says to check --api-key / PIVOTAL_API_KEY, not to re-run
    assert "--api-key" in result.stderr
    assert "run the same command again" not in result.stderr
    assert "pivotal_revoked" not in result.output
    assert threaded_sandbox.stats.writes == 0


def test_no_key_and_no_sandbox_is_a_usage_error(tmp_path: Path) -> None:
    result = bulk("import", str(SAMPLES), "--quiet")

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: No API key. Pass --api-key, set PIVOTAL_API_KEY, or add --sandbox to try bulk "
        "locally.\n"
    )


def test_map_reads_a_field_from_another_column(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    write(tmp_path / "customers.csv", "Ref,Company\n007,Bond Ltd\n")

    result = bulk(
        "import",
        "--customers",
        str(tmp_path / "customers.csv"),
        *against(threaded_sandbox),
        "--map",
        "external_id=Ref",
        "--map",
        "name=Company",
        "--quiet",
    )

    assert result.exit_code == 0, result.output
    lines = pl.read_csv("bulk-import.results.csv", infer_schema=False).to_dicts()
    assert [(line["external_id"], line["action"]) for line in lines] == [("007", "created")]
    [customer] = threaded_sandbox.objects(WORKSPACE, "customer")
    assert (customer["name"], customer["metadata"]) == ("Bond Ltd", {"external_id": "007"})


def test_latin_1_source_imports_with_encoding(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    write(tmp_path / "customers.csv", "external_id,name\n1,Café Crème\n".encode("latin-1"))

    result = bulk(
        "import",
        "--customers",
        str(tmp_path / "customers.csv"),
        *against(threaded_sandbox),
        "--encoding",
        "latin-1",
        "--quiet",
    )

    assert result.exit_code == 0, result.output
    assert "created" in pl.read_csv("bulk-import.results.csv", infer_schema=False)["action"]
    [customer] = threaded_sandbox.objects(WORKSPACE, "customer")
    # the slug is the API's own derivation (bulk sends none): accented letters become `-`
    assert (customer["name"], customer["slug"]) == ("Café Crème", "caf-cr-me")


def test_parquet_samples_import_like_the_csv_ones(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "parquet"
    shutil.copytree(SAMPLES / "parquet", folder)

    result = bulk("import", str(folder), *against(threaded_sandbox), "--quiet")

    assert result.exit_code == 0, result.output
    assert_workspace_matches_samples(threaded_sandbox, SAMPLES)  # the CSVs hold the same rows


def test_status_describes_an_export_checkpoint(tmp_path: Path) -> None:
    imported = bulk("import", str(SAMPLES), "--sandbox", "--quiet")
    assert imported.exit_code == 0, imported.output
    exported = bulk("export", str(tmp_path / "out"), "--sandbox", "--quiet")
    assert exported.exit_code == 0, exported.output

    status = bulk("status", str(tmp_path / "out" / ".bulk-export.sqlite"))

    assert status.exit_code == 0
    # one table formatter for every command (issue 7): compared word by word
    assert [line.split() for line in status.stdout.splitlines()[:5]] == [
        ["export", "of", "workspace", "'sandbox':", "finished"],
        ["type", "rows", "parts"],
        ["customers", "50", "1"],
        ["contacts", "100", "1"],
        ["onboardings", "40", "1"],
    ]
    assert status.stdout.splitlines()[-1] == "Not in use by a live process."
