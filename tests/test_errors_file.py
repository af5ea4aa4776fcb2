"""The errors file round-trips, and the errors and results files cover the whole checkpoint.

Issue 10 §4: an errors file is valid input as it is (rows routed by `_pass`, `_` columns
ignored), so fix-and-feed-back repeats without hand editing; a dry run or a run of fewer passes
never loses an earlier run's failures or ids; every problem of a row is reported at once.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import Result
from helpers import WORKSPACE
from safe_runs_support import bulk, connection, write_text

from bulk.checkpoint import MIGRATIONS, Checkpoint, migrate
from bulk.sandbox import Sandbox

ERRORS = Path("bulk-import.errors.csv")
RESULTS = Path("bulk-import.results.csv")
TOOL_COLUMNS = ["_pass", "_file", "_line", "_error_code", "_error_message"]


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header as written, and the rows (empty cells as "")."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.DictReader(stream)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """As a spreadsheet saves it: with a BOM, CRLF line ends."""
    with path.open("w", encoding="utf-8-sig", newline="") as stream:
        writer = csv.DictWriter(stream, header)
        writer.writeheader()
        writer.writerows(rows)


def imported(sandbox: Sandbox, *arguments: str) -> Result:
    return bulk("import", *arguments, *connection(sandbox), "--quiet")


def round_one_source(folder: Path) -> Path:
    """Customers: C2 has a bad status. Contacts: bob's email is bad; cat's customer is C2."""
    write_text(
        folder / "customers.csv",
        "external_id,name,status,domain\n"
        "C1,Acme,active,acme.com\n"
        "C2,Globex Café,bogus!,globex.com\n"
        "C3,Initech,active,initech.com\n",
    )
    write_text(
        folder / "contacts.csv",
        "customer_external_id,email,name,title\n"
        "C1,ann@acme.com,Ann,CEO\n"
        "C1,bob@,Bob,CTO\n"
        "C2,cat@globex.com,Cat,CFO\n",
    )
    return folder


def by_key(rows: list[dict[str, str]]) -> dict[str, dict[str, str]]:
    return {row["external_id"] or row["email"]: row for row in rows}


# -- the file's layout -----------------------------------------------------------------------


def test_columns_are_each_pass_s_source_columns_in_order_then_the_tool_s(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")

    result = imported(threaded_sandbox, str(source))

    assert result.exit_code == 1, result.output
    assert ERRORS.read_bytes().startswith(b"\xef\xbb\xbfexternal_id,name,")  # Excel: UTF-8
    header, rows = read_csv(ERRORS)
    assert header == [
        "external_id", "name", "status", "domain",  # customers.csv, in its order
        "customer_external_id", "email", "title",  # contacts.csv adds these
        *TOOL_COLUMNS,
    ]  # fmt: skip
    assert rows == [
        {
            "external_id": "C2", "name": "Globex Café", "status": "bogus!", "domain": "globex.com",
            "customer_external_id": "", "email": "", "title": "",
            "_pass": "customers", "_file": "customers.csv", "_line": "3",
            "_error_code": "invalid_enum_value",
            "_error_message": rows[0]["_error_message"],
        },
        {
            "external_id": "", "name": "Bob", "status": "", "domain": "",
            "customer_external_id": "C1", "email": "bob@", "title": "CTO",
            "_pass": "contacts", "_file": "contacts.csv", "_line": "3",
            "_error_code": "invalid_string",
            "_error_message": "email 'bob@' is not an email address",
        },
        {
            "external_id": "", "name": "Cat", "status": "", "domain": "",
            "customer_external_id": "C2", "email": "cat@globex.com", "title": "CFO",
            "_pass": "contacts", "_file": "contacts.csv", "_line": "4",
            "_error_code": "customer_invalid",
            "_error_message": "customer 'C2' is invalid (line 3)",
        },
    ]  # fmt: skip
    assert "status 'bogus!'" in rows[0]["_error_message"]


def fix_globex_status() -> None:
    """The first fix, made in the errors file: C2's status (its first row)."""
    header, rows = read_csv(ERRORS)
    rows[0]["status"] = "active"
    write_csv(ERRORS, header, rows)


# -- the loop: fix, feed back, repeat ----------------------------------------------------------


def test_the_errors_file_fed_back_twice_imports_the_fixed_rows(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")
    assert imported(threaded_sandbox, str(source)).exit_code == 1

    # round 2: fix C2's status only; bob's email stays bad; cat follows C2
    fix_globex_status()
    second = imported(threaded_sandbox, str(ERRORS))

    assert second.exit_code == 1, second.output
    customers = {
        c["metadata"]["external_id"]: c for c in threaded_sandbox.objects(WORKSPACE, "customer")
    }
    assert sorted(customers) == ["C1", "C2", "C3"]
    globex = customers["C2"]
    assert (globex["name"], globex["status"], globex["domain"]) == (
        "Globex Café",
        "active",
        "globex.com",
    )
    contacts = {c["email"]: c for c in threaded_sandbox.objects(WORKSPACE, "contact")}
    assert sorted(contacts) == ["ann@acme.com", "cat@globex.com"]
    cat = contacts["cat@globex.com"]
    assert (cat["name"], cat["title"], cat["customer_id"]) == ("Cat", "CFO", globex["id"])
    header, rows = read_csv(ERRORS)
    assert header == ["name", "customer_external_id", "email", "title", *TOOL_COLUMNS]
    assert rows == [
        {
            "name": "Bob", "customer_external_id": "C1", "email": "bob@", "title": "CTO",
            "_pass": "contacts", "_file": "bulk-import.errors.csv", "_line": "3",
            "_error_code": "invalid_string",
            "_error_message": "email 'bob@' is not an email address",
        }
    ]  # fmt: skip

    # round 3: the rest, fed back the same way
    rows[0]["email"] = "bob@acme.com"
    write_csv(ERRORS, header, rows)
    third = imported(threaded_sandbox, str(ERRORS))

    assert third.exit_code == 0, third.output
    assert not ERRORS.exists()
    contacts = {c["email"]: c for c in threaded_sandbox.objects(WORKSPACE, "contact")}
    assert sorted(contacts) == ["ann@acme.com", "bob@acme.com", "cat@globex.com"]
    bob = contacts["bob@acme.com"]
    assert (bob["name"], bob["title"], bob["customer_id"]) == ("Bob", "CTO", customers["C1"]["id"])
    assert len(threaded_sandbox.objects(WORKSPACE, "customer")) == 3  # nothing created twice


def test_a_pass_option_naming_an_errors_file_reads_that_pass_s_rows_only(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")
    assert imported(threaded_sandbox, str(source)).exit_code == 1
    fix_globex_status()

    result = imported(threaded_sandbox, "--customers", str(ERRORS))

    assert result.exit_code == 0, result.output  # every row of this run's one pass is done
    assert [line.split()[0] for line in result.stdout.splitlines()[1:2]] == ["customers"]
    customers = threaded_sandbox.objects(WORKSPACE, "customer")
    assert sorted(c["metadata"]["external_id"] for c in customers) == ["C1", "C2", "C3"]
    header, rows = read_csv(ERRORS)
    assert len(header) == len(set(header))
    assert [(row["_pass"], row["email"], row["_error_code"]) for row in rows] == [
        ("contacts", "bob@", "invalid_string"),
        ("contacts", "cat@globex.com", "customer_invalid"),  # not sent again since
    ]


@pytest.mark.parametrize(
    ("cell", "message"),
    [("customer", "'customer' is not a pass."), ("", "is empty: every row needs its pass.")],
)
def test_an_unknown_pass_in_an_errors_file_is_an_input_error(cell: str, message: str) -> None:
    write_text(
        ERRORS,
        "external_id,name,_pass,_file,_line,_error_code,_error_message\n"
        "C1,Acme,Customers,customers.csv,2,x,y\n"
        f"C2,Globex,{cell},customers.csv,3,x,y\n",
    )

    result = bulk("import", str(ERRORS), "--sandbox", "--quiet")

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: bulk-import.errors.csv line 3, column '_pass': {message} "
        "Write customers, contacts or onboardings.\n"
    )


def test_the_summary_reminds_to_carry_the_fixes_into_the_source(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")

    first = imported(threaded_sandbox, str(source))

    assert first.stdout.splitlines()[-2:] == [
        "Problem rows: bulk-import.errors.csv (fix them there and import that file again)",
        "Carry the fixes into your source too, or its next run reverts them.",
    ]
    fix_globex_status()

    second = imported(threaded_sandbox, str(ERRORS))

    assert (
        "Read from the errors file bulk-import.errors.csv: carry the fixes into your source too, "
        "or its next run reverts them." in second.stdout.splitlines()
    )


# -- the whole checkpoint, not the latest run ------------------------------------------------


def test_a_dry_run_leaves_the_errors_and_results_files_alone(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")
    assert imported(threaded_sandbox, str(source)).exit_code == 1
    errors_then, results_then = ERRORS.read_bytes(), RESULTS.read_bytes()
    write_text(source / "customers.csv", "external_id,name\nC1,Acme\n")

    result = imported(threaded_sandbox, str(source), "--dry-run")

    assert result.exit_code == 1, result.output
    assert (ERRORS.read_bytes(), RESULTS.read_bytes()) == (errors_then, results_then)


def test_a_dry_run_shows_its_invalid_rows(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    source = round_one_source(tmp_path / "source")

    result = imported(threaded_sandbox, str(source), "--dry-run")

    assert result.exit_code == 1, result.output
    assert not ERRORS.exists()
    lines = result.stdout.splitlines()
    start = lines.index("Invalid rows (a real run writes them to bulk-import.errors.csv):")
    assert lines[start + 1 : start + 3] == [
        "  customers.csv line 3: " + lines[start + 1].split(": ", 1)[1],
        "  contacts.csv line 3: email 'bob@' is not an email address",
    ]
    assert "status 'bogus!'" in lines[start + 1]


def test_a_run_of_other_passes_keeps_the_customers_failures_and_ids(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")
    assert imported(threaded_sandbox, str(source)).exit_code == 1
    _, results_then = read_csv(RESULTS)
    ids_then = {row["external_id"]: row["id"] for row in results_then}
    assert all(ids_then[key] for key in ("C1", "C3", "C1/ann@acme.com"))

    result = imported(threaded_sandbox, str(source), "--passes", "contacts")

    assert result.exit_code == 1, result.output
    _, errors = read_csv(ERRORS)
    assert [(row["_pass"], row["_line"]) for row in errors] == [
        ("customers", "3"),
        ("contacts", "3"),
        ("contacts", "4"),
    ]
    header, results = read_csv(RESULTS)
    assert header == ["_pass", "_file", "_line", "external_id", "action", "id", "display_id"]
    assert [(r["_pass"], r["_line"], r["external_id"], r["action"]) for r in results] == [
        ("customers", "2", "C1", "created"),
        ("customers", "3", "C2", "invalid"),
        ("customers", "4", "C3", "created"),
        ("contacts", "2", "C1/ann@acme.com", "unchanged"),
        ("contacts", "3", "", "invalid"),
        ("contacts", "4", "C2/cat@globex.com", "skipped"),
    ]
    assert {row["external_id"]: row["id"] for row in results if row["id"]} == {
        key: value for key, value in ids_then.items() if value
    }


def test_a_row_made_invalid_later_keeps_its_id_in_the_results(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    customers = write_text(tmp_path / "customers.csv", "external_id,name,status\nC1,Acme,active\n")
    assert imported(threaded_sandbox, "--customers", str(customers)).exit_code == 0
    _, results = read_csv(RESULTS)
    created = results[0]
    write_text(customers, "external_id,name,status\nC1,Acme,bogus!\n")

    result = imported(threaded_sandbox, "--customers", str(customers))

    assert result.exit_code == 1, result.output
    assert "not in source" not in result.stdout  # C1 is in the source, only invalid
    _, results = read_csv(RESULTS)
    assert [(r["external_id"], r["action"], r["id"], r["display_id"]) for r in results] == [
        ("C1", "invalid", created["id"], created["display_id"])
    ]
    _, errors = read_csv(ERRORS)
    assert [(row["external_id"], row["_error_code"]) for row in errors] == [
        ("C1", "invalid_enum_value")
    ]


def test_a_row_fixed_in_the_source_leaves_the_errors_file(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    customers = write_text(
        tmp_path / "customers.csv", "external_id,name,status\nC1,Acme,bogus!\nC2,Globex,bad!\n"
    )
    assert imported(threaded_sandbox, "--customers", str(customers)).exit_code == 1
    write_text(customers, "external_id,name,status\nC1,Acme,active\nC2,Globex,bad!\n")

    result = imported(threaded_sandbox, "--customers", str(customers))

    assert result.exit_code == 1, result.output
    _, errors = read_csv(ERRORS)
    assert [row["external_id"] for row in errors] == ["C2"]


def test_status_rewrites_both_files_from_the_whole_checkpoint(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")
    assert imported(threaded_sandbox, str(source)).exit_code == 1
    assert imported(threaded_sandbox, str(source), "--passes", "contacts").exit_code == 1

    result = bulk("status", "bulk-import.sqlite", "--errors", "E.csv", "--results", "R.csv")

    assert result.exit_code == 0, result.output
    assert Path("E.csv").read_bytes() == ERRORS.read_bytes()
    assert Path("R.csv").read_bytes() == RESULTS.read_bytes()
    assert len(read_csv(Path("E.csv"))[1]) == 3


# -- every problem of a row ------------------------------------------------------------------


def test_every_problem_of_a_row_is_in_its_one_line(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    folder = tmp_path / "source"
    write_text(folder / "customers.csv", "external_id,name\nC1,Acme\n")
    write_text(
        folder / "onboardings.csv",
        "customer_external_id,name,phase,target_launch_date\nC1,Launch,orbit!,next tuesday\n",
    )

    result = imported(threaded_sandbox, str(folder), "--report", "report.json")

    assert result.exit_code == 1, result.output
    _, errors = read_csv(ERRORS)
    assert len(errors) == 1
    codes = errors[0]["_error_code"].split(";")
    messages = errors[0]["_error_message"].split("; ")
    assert len(codes) == len(messages) == 2
    assert messages[0].startswith("phase 'orbit!'")
    assert messages[1].startswith("target_launch_date 'next tuesday'")
    report = json.loads(Path("report.json").read_text(encoding="utf-8"))
    assert report["summary"]["passes"]["onboardings"]["invalid"] == 1  # rows, not problems


def test_a_bad_cell_and_a_duplicate_key_are_both_reported(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    customers = write_text(
        tmp_path / "customers.csv", "external_id,name,status\nC1,Acme,active\nC1,Again,bogus!\n"
    )

    result = imported(threaded_sandbox, "--customers", str(customers))

    assert result.exit_code == 1, result.output
    _, errors = read_csv(ERRORS)
    assert [row["_error_code"] for row in errors] == ["invalid_enum_value;duplicate_key"]
    assert errors[0]["_error_message"].endswith("; external_id 'C1' already appears on line 2")


def test_a_bad_cell_and_a_name_whose_slug_is_taken_are_both_reported(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    customers = write_text(
        tmp_path / "customers.csv",
        "external_id,name,status\nC1,Acme Inc.,active\nC2,ACME inc,bogus!\n",
    )

    result = imported(threaded_sandbox, "--customers", str(customers))

    assert result.exit_code == 1, result.output
    _, errors = read_csv(ERRORS)
    assert [row["_error_code"] for row in errors] == ["invalid_enum_value;duplicate_slug"]
    assert errors[0]["_error_message"].endswith(
        "; name 'ACME inc' gives the slug 'acme-inc' that line 2 gets too (the API derives slugs "
        "from names); add a slug column to give each customer its own"
    )


def test_an_invalid_contact_of_an_invalid_customer_says_both(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    customers = write_text(tmp_path / "customers.csv", "external_id,name,status\nC1,Acme,bogus!\n")
    contacts = write_text(
        tmp_path / "contacts.csv", "customer_external_id,name,email\nC1,Ann,not-an-email\n"
    )

    result = imported(threaded_sandbox, "--customers", str(customers), "--contacts", str(contacts))

    assert_contact_names_its_invalid_customer(result, customer_line=2)


def test_an_invalid_contact_of_a_customer_an_earlier_run_found_invalid_says_both(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    customers = write_text(
        tmp_path / "customers.csv", "external_id,name,status\nC0,Globex,active\nC1,Acme,bogus!\n"
    )
    contacts = write_text(
        tmp_path / "contacts.csv", "customer_external_id,name,email\nC1,Ann,not-an-email\n"
    )
    assert imported(threaded_sandbox, "--customers", str(customers)).exit_code == 1

    result = imported(threaded_sandbox, "--contacts", str(contacts))

    assert_contact_names_its_invalid_customer(result, customer_line=3)


def assert_contact_names_its_invalid_customer(result: Result, customer_line: int) -> None:
    """The contact row of the errors file gives its own problem and its customer's."""
    assert result.exit_code == 1, result.output
    _, errors = read_csv(ERRORS)
    contact = next(row for row in errors if row["_pass"] == "contacts")
    assert contact["_error_code"] == "invalid_string;customer_invalid"
    assert contact["_error_message"].endswith(f"; customer 'C1' is invalid (line {customer_line})")


# -- rows that left the source ---------------------------------------------------------------


def test_rows_that_left_the_source_are_counted_in_summary_and_report(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    customers = write_text(
        tmp_path / "customers.csv", "external_id,name\nC1,Acme\nC2,Globex\nC3,Initech\n"
    )
    assert imported(threaded_sandbox, "--customers", str(customers)).exit_code == 0
    write_text(customers, "external_id,name\nC1,Acme\n")

    result = imported(threaded_sandbox, "--customers", str(customers), "--report", "r.json")

    assert result.exit_code == 0, result.output
    assert "not in source: 2, left as they are in Pivotal" in result.stdout.splitlines()
    report = json.loads(Path("r.json").read_text(encoding="utf-8"))
    assert report["summary"]["passes"]["customers"]["not_in_source"] == 2
    _, results = read_csv(RESULTS)
    assert [row["external_id"] for row in results] == ["C1", "C2", "C3"]  # all, with their ids
    assert all(row["id"] for row in results)


# -- old checkpoints ---------------------------------------------------------------------------


def test_an_older_checkpoint_keeps_only_each_pass_s_latest_invalid_rows(tmp_path: Path) -> None:
    """Before 005 every run kept its own invalid rows; the latest plan of a pass wins."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, [step for step in MIGRATIONS if step.name < "005"])
    insert = (
        "INSERT INTO invalid_rows VALUES (?, ?, ?, 'customers.csv', ?, 'status', 'c', 'm', '{}')"
    )
    db.execute("INSERT INTO runs (id, started_at, finished_at) VALUES (1, 'a', 'b'), (2, 'c', 'd')")
    db.execute(insert, (1, "customers", 2, "K1"))
    db.execute(insert, (1, "contacts", 3, None))
    db.execute(insert, (2, "customers", 2, "K1"))
    db.close()

    for read_only in (True, False):  # `bulk status` reads it as it is; a run migrates it
        checkpoint = Checkpoint(path, read_only=read_only)
        try:
            assert checkpoint.invalid_counts() == {"customers": 1, "contacts": 1}
            assert [(row.pass_name, row.line) for row in checkpoint.problem_rows()] == [
                ("customers", 2),
                ("contacts", 3),
            ]
        finally:
            checkpoint.close()


def test_an_unfinished_run_leaves_the_errors_file_it_reads_for_its_resume(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    source = round_one_source(tmp_path / "source")
    assert imported(threaded_sandbox, str(source)).exit_code == 1
    fix_globex_status()
    fixed = ERRORS.read_bytes()

    stopped = imported(threaded_sandbox, str(ERRORS), "--strict")  # bob is still invalid

    assert stopped.exit_code == 2, stopped.output
    assert ERRORS.read_bytes() == fixed  # C2's fix is not lost before it was sent
    assert (
        "bulk-import.errors.csv is this run's source: it is rewritten when the run finishes."
        in (stopped.stderr)
    )

    resumed = imported(threaded_sandbox, str(ERRORS))

    assert resumed.exit_code == 1, resumed.output
    customers = threaded_sandbox.objects(WORKSPACE, "customer")
    assert sorted(c["metadata"]["external_id"] for c in customers) == ["C1", "C2", "C3"]
    _, rows = read_csv(ERRORS)
    assert [row["email"] for row in rows] == ["bob@"]


def test_a_malformed_errors_file_is_one_line_naming_its_line() -> None:
    write_text(ERRORS, 'external_id,name,_pass\nC1,Acme,customers\nC2,"Glo"bex,customers\n')

    result = bulk("import", str(ERRORS), "--sandbox", "--quiet")

    assert result.exit_code == 2, result.output
    assert result.stderr == (
        "Error: bulk-import.errors.csv line 3: is not valid CSV: ',' expected after '\"'.\n"
    )
