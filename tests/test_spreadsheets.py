"""Workbooks as sources: sheets found by name, typed cells as text, the sheet's own row numbers.
A three-sheet workbook imported in one command is `tests/test_spreadsheet_formats.py`'s, in
every format, `.xlsx` included."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import xlsxwriter
from helpers import WORKSPACE, against, bulk

from bulk.errors import InputError
from bulk.importing.planning import PlanOptions, fingerprint, open_sources
from bulk.importing.sources import (
    SourceFile,
    SourceRecord,
    discover_sources,
    open_source,
    split_sheet,
)
from bulk.sandbox import Sandbox

Sheet = Sequence[Sequence[Any] | None]
"""Rows from row 1; None is a blank row."""


def workbook(path: Path, sheets: Mapping[str, Sheet]) -> Path:
    """A workbook as Excel writes one: dates and datetimes are formatted numbers."""
    book = xlsxwriter.Workbook(str(path))
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    moment = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    clock = book.add_format({"num_format": "hh:mm"})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for row_index, row in enumerate(rows):
            for column, value in enumerate(row or ()):
                if value is None:
                    continue
                if isinstance(value, datetime):
                    sheet.write_datetime(row_index, column, value, moment)
                elif isinstance(value, date):
                    sheet.write_datetime(row_index, column, value, day)
                elif isinstance(value, time):
                    sheet.write_datetime(row_index, column, value, clock)
                elif isinstance(value, str):
                    sheet.write_string(row_index, column, value)
                else:
                    sheet.write(row_index, column, value)
    book.close()
    return path


def read(source: SourceFile, size: int = 50_000) -> list[SourceRecord]:
    with open_source(source) as opened:
        records = [record for batch in opened.batches(size) for record in batch]
        assert opened.row_count() == len(records)
        return records


def error_of(source: SourceFile) -> str:
    with pytest.raises(InputError) as caught:
        read(source)
    return str(caught.value)


# -- reading ---------------------------------------------------------------------------------


def test_a_column_mixing_numbers_and_text_is_text_even_late_in_the_sheet(tmp_path: Path) -> None:
    rows: list[list[Any]] = [["id", "code"]]
    rows += [[str(n), n] for n in range(1, 1500)]
    rows.append(["1500", "A-17"])  # fastexcel's default guess reads 1,000 rows: this would be lost
    path = workbook(tmp_path / "b.xlsx", {"customers": rows})

    records = read(SourceFile("customers", path, "spreadsheet"), size=400)

    assert [record.cells["code"] for record in records[:3]] == ["1", "2", "3"]
    assert records[-1].cells == {"id": "1500", "code": "A-17"}
    assert [record.line for record in records] == list(range(2, 1502))


def test_dates_in_a_column_mixing_dates_and_text_follow_the_rule(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "b.xlsx",
        {
            "customers": [
                ["id", "launch", "plain"],
                ["1", date(2026, 5, 1), "x"],
                ["2", "2026-01-02 10:00:00", "y"],  # text that looks like fastexcel's dates
                ["3", "soon", "z"],
                ["4", 46143, "w"],
                ["5", datetime(2026, 5, 1, 9, 30, 15), "v"],
            ]
        },
    )

    records = read(SourceFile("customers", path, "spreadsheet"))

    assert [record.cells["launch"] for record in records] == [
        "2026-05-01",
        "2026-01-02 10:00:00",
        "soon",
        "46143",
        "2026-05-01T09:30:15.000Z",
    ]
    assert [record.cells["plain"] for record in records] == ["x", "y", "z", "w", "v"]


def test_line_numbers_are_the_sheets_even_with_blank_rows_above_the_header(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "b.xlsx",
        {"customers": [None, None, ["", "id", "name"], ["", "1", "a"], None, None, ["", "2", "b"]]},
    )

    records = read(SourceFile("customers", path, "spreadsheet"), size=1)

    assert [(record.line, record.cells) for record in records] == [
        (4, {"id": "1", "name": "a"}),
        (7, {"id": "2", "name": "b"}),
    ]


def test_unnamed_columns_are_dropped_when_empty_and_refused_when_not(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "b.xlsx",
        {
            "customers": [["id", "", "name", None, " "], ["1", None, "a"]],
            "contacts": [["id", "", "name"], ["1", "stray", "a"]],
        },
    )

    [record] = read(SourceFile("customers", path, "spreadsheet"))
    assert record.cells == {"id": "1", "name": "a"}
    assert error_of(SourceFile("contacts", path, "spreadsheet")) == (
        "b.xlsx#contacts line 1: column 2 of the header has no name, but holds values. "
        "Name it, or delete the column."
    )


def test_sheet_errors_name_the_workbook_and_the_sheet(tmp_path: Path) -> None:
    path = workbook(
        tmp_path / "b.xlsx",
        {"customers": [["id", "id "], ["1", "2"]], "empty": [], "header only": [["id", "name"]]},
    )

    assert error_of(SourceFile("customers", path, "spreadsheet")) == (
        "b.xlsx#customers line 1, column 'id': column 'id' appears twice in the header. "
        "Rename or delete one of them."
    )
    assert error_of(SourceFile("customers", path, "spreadsheet", "Empty")) == (
        "b.xlsx#empty: is empty. Start it with a row of column names."
    )
    assert error_of(SourceFile("customers", path, "spreadsheet", "nope")) == (
        "b.xlsx: has no sheet 'nope' (its sheets: customers, empty, header only). Name one of "
        "its sheets after the #: --customers b.xlsx#SHEET."
    )
    with open_source(SourceFile("contacts", path, "spreadsheet", "header only")) as opened:
        assert opened.columns == ("id", "name")
        assert list(opened.batches()) == []
    not_a_workbook = tmp_path / "fake.xlsx"
    not_a_workbook.write_text("id,name\n")
    assert error_of(SourceFile("customers", not_a_workbook, "spreadsheet")).startswith(
        "fake.xlsx: cannot be read as a workbook (calamine error: "
    )


# -- discovery -------------------------------------------------------------------------------


def three_sheets(path: Path) -> Path:
    return workbook(
        path,
        {
            "Notes": [["anything"]],
            "CUSTOMERS": [["external_id", "name"], ["1", "a"]],
            "contacts": [["customer_external_id", "name", "email"], ["1", "b", "b@a.io"]],
            "Onboardings": [["customer_external_id", "name"], ["1", "c"]],
        },
    )


def test_a_workbook_as_source_supplies_each_pass_from_its_sheet(tmp_path: Path) -> None:
    book = three_sheets(tmp_path / "book.xlsx")

    assert discover_sources([book], {}) == [
        SourceFile("customers", book, "spreadsheet", "CUSTOMERS"),
        SourceFile("contacts", book, "spreadsheet", "contacts"),
        SourceFile("onboardings", book, "spreadsheet", "Onboardings"),
    ]


def test_a_folder_finds_workbooks_named_for_a_pass_and_sheets_of_others(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    customers = workbook(folder / "customers.xlsx", {"Sheet1": [["external_id", "name"]]})
    other = workbook(folder / "crm.xlsx", {"Contacts": [["x"]], "Summary": [["y"]]})
    workbook(folder / "unrelated.xlsx", {"Sheet1": [["x"]]})
    (folder / "~$customers.xlsx").write_bytes(b"an Excel lock file")

    assert discover_sources([folder], {}) == [
        SourceFile("customers", customers, "spreadsheet", "Sheet1"),
        SourceFile("contacts", other, "spreadsheet", "Contacts"),
    ]
    [record] = read(SourceFile("customers", customers, "spreadsheet")) or [None]  # header only
    assert record is None


def test_only_customers_xlsx_in_a_folder_is_found(tmp_path: Path) -> None:
    workbook(tmp_path / "customers.xlsx", {"Sheet1": [["external_id", "name"], ["1", "a"]]})
    [found] = discover_sources([tmp_path], {})
    assert [record.cells for record in read(found)] == [{"external_id": "1", "name": "a"}]


def test_a_workbook_named_for_a_pass_still_supplies_the_other_passes_sheets(
    tmp_path: Path,
) -> None:
    book = workbook(tmp_path / "customers.xlsx", {"Companies": [["a"]], "Contacts": [["b"]]})
    expected = [
        SourceFile("customers", book, "spreadsheet", "Companies"),
        SourceFile("contacts", book, "spreadsheet", "Contacts"),
    ]
    assert discover_sources([tmp_path], {}) == expected
    assert discover_sources([book], {}) == expected


def test_file_hash_sheet_picks_a_sheet(tmp_path: Path) -> None:
    book = three_sheets(tmp_path / "book.xlsx")
    plain = workbook(tmp_path / "people.xlsx", {"First": [["a"]], "Second": [["b"]]})

    found = discover_sources(
        [], {"customers": Path(f"{book}#notes"), "contacts": plain, "onboardings": book}
    )

    assert found == [
        SourceFile("customers", book, "spreadsheet", "Notes"),
        SourceFile("contacts", plain, "spreadsheet", "First"),
        SourceFile("onboardings", book, "spreadsheet", "Onboardings"),
    ]
    assert [r.cells for r in read(found[0])] == []
    assert read(found[1]) == []
    assert [r.cells for r in read(found[2])] == [{"customer_external_id": "1", "name": "c"}]
    with open_source(SourceFile("contacts", plain, "spreadsheet")) as opened:
        assert opened.columns == ("a",)  # no sheet named contacts: the first sheet
    with pytest.raises(InputError, match=r"^book.xlsx: has no sheet 'Nope' \(its sheets: "):
        discover_sources([], {"customers": Path(f"{book}#Nope")})


def test_split_sheet() -> None:
    assert split_sheet(Path("in/book.xlsx#Q1 #2")) == (Path("in/book.xlsx"), "Q1 #2")
    assert split_sheet(Path("in#1/book.ODS#a")) == (Path("in#1/book.ODS"), "a")
    assert split_sheet(Path("in#1/customers.csv")) == (Path("in#1/customers.csv"), None)
    assert split_sheet(Path("book.xlsx#")) == (Path("book.xlsx#"), None)


def test_discovery_errors_for_workbooks(tmp_path: Path) -> None:
    plain = workbook(tmp_path / "plain.xlsx", {"Sheet1": [["a"]]})
    folder = tmp_path / "both"
    folder.mkdir()
    workbook(folder / "book.xlsx", {"customers": [["a"]]})
    (folder / "customers.csv").write_text("a\n")

    def message(folders: list[Path]) -> str:
        with pytest.raises(InputError) as caught:
            discover_sources(folders, {})
        return str(caught.value)

    assert message([plain]) == (
        "plain.xlsx: has no sheet named customers, contacts or onboardings (its sheets: "
        "Sheet1). Rename the sheets, or pick one with --customers FILE#SHEET (and --contacts, "
        "--onboardings)."
    )
    assert message([folder]) == (
        "both: holds two customers files, book.xlsx#customers and customers.csv. Keep one of "
        "them, or name the one to use with --customers."
    )


# -- dates stored as numbers -----------------------------------------------------------------


def test_a_date_without_a_date_format_is_a_number_and_the_message_says_so(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    book = workbook(
        tmp_path / "book.xlsx",
        {
            "customers": [["external_id", "name"], ["1", "Acme"]],
            "onboardings": [
                ["customer_external_id", "name", "target_launch_date"],
                ["1", "Launch", 46143],
            ],
        },
    )

    result = bulk("import", str(book), *against(threaded_sandbox), "--quiet")

    assert result.exit_code == 1, result.output
    [problem] = pl.read_csv("bulk-import.errors.csv", infer_schema=False).to_dicts()
    assert (problem["_pass"], problem["_line"], problem["_error_code"]) == (
        "onboardings",
        "2",
        "invalid_string",
    )
    assert problem["_error_message"] == (
        "target_launch_date '46143' is a number, not a date: a spreadsheet stores a date as a "
        "number when its cell has no date format; format the column as a date (or write the "
        "dates as 2026-03-15)"
    )
    assert threaded_sandbox.objects(WORKSPACE, "onboarding") == []


# -- one command, field by field -------------------------------------------------------------


def test_the_plan_fingerprint_knows_the_sheet_and_the_delimiter(tmp_path: Path) -> None:
    customers = [["external_id", "name"], ["1", "a"]]
    book = workbook(tmp_path / "book.xlsx", {"Old": customers, "New": customers})
    csv_file = tmp_path / "customers.csv"
    csv_file.write_text("external_id;name\n1;a\n")

    def fingerprint_of(source: SourceFile, options: PlanOptions) -> str:
        opened = open_sources([source], options)
        return fingerprint(opened, options)

    plain = PlanOptions()
    assert fingerprint_of(SourceFile("customers", book, "spreadsheet", "Old"), plain) != (
        fingerprint_of(SourceFile("customers", book, "spreadsheet", "New"), plain)
    )
    detected = fingerprint_of(SourceFile("customers", csv_file, "csv"), plain)
    told = fingerprint_of(SourceFile("customers", csv_file, "csv"), PlanOptions(delimiter=";"))
    assert detected != told
