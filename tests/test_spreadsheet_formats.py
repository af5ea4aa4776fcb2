"""Every workbook format SPEC names, from real files: `.xlsm` (a macro-enabled workbook),
`.xls` (BIFF8, written by xlwt) and `.ods` (OpenDocument, written by odfpy as Calc writes it)
read as `.xlsx` does: typed cells by the one rule, the sheet's own row numbers, sheets by name,
and a three-sheet workbook imported in one command, checked field by field in the sandbox."""

from __future__ import annotations

import zipfile
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import xlsxwriter
import xlwt
from helpers import WORKSPACE, against, bulk
from ods import write_ods
from test_spreadsheets import Sheet, error_of, read, workbook

from bulk.importing.sources import SourceFile, discover_sources, open_source
from bulk.sandbox import Sandbox

Writer = Callable[[Path, Mapping[str, Sheet]], Path]

_XLSX_MAIN = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
_XLSM_MAIN = "application/vnd.ms-excel.sheet.macroEnabled.main+xml"


def xlsm(path: Path, sheets: Mapping[str, Sheet]) -> Path:
    """A macro-enabled workbook as Excel saves one without macros: an xlsx package whose main
    part has the macro-enabled content type. xlsxwriter writes that type only with a VBA
    project, a `vbaProject.bin` only Excel makes (and calamine does not read to load sheets)."""
    workbook(path, sheets)
    with zipfile.ZipFile(path) as package:
        parts = [(info, package.read(info)) for info in package.infolist()]
    with zipfile.ZipFile(path, "w") as package:
        for info, data in parts:
            if info.filename == "[Content_Types].xml":
                assert _XLSX_MAIN.encode() in data
                data = data.replace(_XLSX_MAIN.encode(), _XLSM_MAIN.encode())
            package.writestr(info, data)
    return path


def xls(path: Path, sheets: Mapping[str, Sheet]) -> Path:
    """A BIFF8 workbook (Excel 97-2003): dates and times are formatted numbers, as in Excel."""
    book = xlwt.Workbook(encoding="utf-8")
    formats = [
        (datetime, xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS")),
        (date, xlwt.easyxf(num_format_str="YYYY-MM-DD")),
        (time, xlwt.easyxf(num_format_str="HH:MM")),
    ]
    for name, rows in sheets.items():
        sheet = book.add_sheet(name)
        for row_index, row in enumerate(rows):
            for column, value in enumerate(row or ()):
                if value is None:
                    continue
                style = next((style for kind, style in formats if isinstance(value, kind)), None)
                if style is None:
                    sheet.write(row_index, column, value)
                else:
                    sheet.write(row_index, column, value, style)
    book.save(str(path))
    return path


WRITERS: dict[str, Writer] = {".xlsm": xlsm, ".xls": xls, ".ods": write_ods}
"""The formats `tests/test_spreadsheets.py` (all `.xlsx`) does not write: what is tested there
is tested here for these."""
EVERY_WRITER: dict[str, Writer] = {".xlsx": workbook, **WRITERS}


@pytest.fixture(params=list(WRITERS))
def suffix(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(params=list(EVERY_WRITER))
def any_suffix(request: pytest.FixtureRequest) -> str:
    """`.xlsx` too, for the tests only this file has."""
    name: str = request.param
    return name


def write(suffix: str, path: Path, sheets: Mapping[str, Sheet]) -> Path:
    return EVERY_WRITER[suffix](path.with_suffix(suffix), sheets)


def customers(path: Path, sheet: str | None = None) -> SourceFile:
    return SourceFile("customers", path, "spreadsheet", sheet)


def test_the_writers_write_what_their_format_is(tmp_path: Path) -> None:
    """The files are the formats they are named for, not xlsx under other names."""
    here = tmp_path
    rows: Sheet = [["a"], ["b"]]
    with zipfile.ZipFile(xlsm(here / "b.xlsm", {"s": rows})) as package:
        assert _XLSM_MAIN.encode() in package.read("[Content_Types].xml")
    assert xls(here / "b.xls", {"s": rows}).read_bytes()[:8] == bytes.fromhex("d0cf11e0a1b11ae1")
    with zipfile.ZipFile(write_ods(here / "b.ods", {"s": [*rows, ["b"], None, None]})) as package:
        first = package.infolist()[0]
        assert (first.filename, first.compress_type) == ("mimetype", zipfile.ZIP_STORED)
        assert package.read("mimetype") == b"application/vnd.oasis.opendocument.spreadsheet"
        assert "META-INF/manifest.xml" in package.namelist()
        content = package.read("content.xml").decode()
    assert content.count('table:number-rows-repeated="2"') == 2  # the two b rows, the blank ones


# -- reading ---------------------------------------------------------------------------------


def test_typed_cells_become_text_by_the_one_rule(any_suffix: str, tmp_path: Path) -> None:
    path = write(
        any_suffix,
        tmp_path / "book",
        {
            "Customers": [
                [" external_id ", "name", "mrr", "ratio", "flag", "day", "at", "huge", "clock"],
                [
                    "00123",
                    "Café Müller",
                    1200.0,
                    12.5,
                    True,
                    date(2026, 5, 1),
                    datetime(2026, 5, 1, 9, 30, 15),
                    1e20,
                    time(9, 30),
                ],
                None,  # a blank row: skipped, but still counted
                ["7", "Zoë \u2013 “quotes”", 3, 0.1, False, None, None, -0.0, None],
            ]
        },
    )

    records = read(customers(path))

    assert [record.line for record in records] == [2, 4]
    assert records[0].cells == {
        "external_id": "00123",
        "name": "Café Müller",
        "mrr": "1200",
        "ratio": "12.5",
        "flag": "true",
        "day": "2026-05-01",
        "at": "2026-05-01T09:30:15.000Z",
        "huge": "1e+20",
        "clock": "09:30:00",
    }
    assert records[1].cells == {
        "external_id": "7",
        "name": "Zoë \u2013 “quotes”",
        "mrr": "3",
        "ratio": "0.1",
        "flag": "false",
        "day": None,
        "at": None,
        "huge": "0",
        "clock": None,
    }


def test_dates_in_a_column_mixing_dates_and_text_follow_the_rule(
    suffix: str, tmp_path: Path
) -> None:
    path = write(
        suffix,
        tmp_path / "book",
        {
            "customers": [
                ["id", "launch"],
                ["1", date(2026, 5, 1)],
                ["2", "2026-01-02 10:00:00"],  # text that looks like fastexcel's dates
                ["3", "soon"],
                ["4", 46143],
                ["5", datetime(2026, 5, 1, 9, 30, 15)],
                ["6", "2026-01-02T10:00:00"],  # text that looks like an ODS datetime
            ]
        },
    )

    records = read(customers(path))

    assert [record.cells["launch"] for record in records] == [
        "2026-05-01",
        "2026-01-02 10:00:00",
        "soon",
        "46143",
        "2026-05-01T09:30:15.000Z",
        "2026-01-02T10:00:00",
    ]


def test_times_in_a_column_mixing_them_with_numbers_or_text_follow_the_rule(
    suffix: str, tmp_path: Path
) -> None:
    path = write(
        suffix,
        tmp_path / "book",
        {
            "customers": [
                ["id", "with numbers", "with text", "only times"],
                ["1", time(9, 30), time(18, 0), time(7, 5)],
                ["2", 3.5, "later", None],
                ["3", 4, "00:30", time(23, 59)],
            ]
        },
    )

    records = read(customers(path))

    assert [record.cells for record in records] == [
        {"id": "1", "with numbers": "09:30:00", "with text": "18:00:00", "only times": "07:05:00"},
        {"id": "2", "with numbers": "3.5", "with text": "later", "only times": None},
        {"id": "3", "with numbers": "4", "with text": "00:30", "only times": "23:59:00"},
    ]


def test_an_elapsed_time_next_to_numbers_in_an_xlsx_column_reads(tmp_path: Path) -> None:
    """A `[h]:mm:ss` cell is a duration to calamine, as an ODS time is."""
    path = tmp_path / "book.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("customers")
    elapsed = book.add_format({"num_format": "[h]:mm:ss"})
    sheet.write_row(0, 0, ["id", "spent"])
    sheet.write_string(1, 0, "1")
    sheet.write_datetime(1, 1, timedelta(hours=30, minutes=5), elapsed)
    sheet.write_row(2, 0, ["2", 3.5])
    sheet.write_row(3, 0, ["3", "n/a"])
    book.close()

    records = read(customers(path))

    assert [record.cells["spent"] for record in records] == ["30:05:00", "3.5", "n/a"]


def test_line_numbers_are_the_sheets_with_blank_and_repeated_rows(
    suffix: str, tmp_path: Path
) -> None:
    path = write(
        suffix,
        tmp_path / "book",
        {
            "customers": [
                None,
                None,
                ["", "id", "name"],
                ["", "1", "a"],
                None,
                None,
                ["", "2", "b"],
                ["", "2", "b"],  # identical rows: one repeated row in an ODS file
                None,
                ["", "3", "c"],
            ]
        },
    )

    records = read(customers(path), size=1)

    assert [(record.line, record.cells) for record in records] == [
        (4, {"id": "1", "name": "a"}),
        (7, {"id": "2", "name": "b"}),
        (8, {"id": "2", "name": "b"}),
        (10, {"id": "3", "name": "c"}),
    ]


def test_an_ods_sheet_padded_as_calc_pads_it_reads_only_its_data(tmp_path: Path) -> None:
    """Calc fills a formatted sheet to 1,024 columns and 1,048,576 rows of repeated empty
    cells: those are not rows or columns of the source."""
    path = write_ods(
        tmp_path / "book.ods",
        {"customers": [["id", "name"], ["1", "a"], None, ["2", "b"]]},
        padded=True,
    )

    records = read(customers(path))

    assert [(record.line, record.cells) for record in records] == [
        (2, {"id": "1", "name": "a"}),
        (4, {"id": "2", "name": "b"}),
    ]


def test_sheet_errors_name_the_workbook_and_the_sheet(suffix: str, tmp_path: Path) -> None:
    path = write(
        suffix,
        tmp_path / "b",
        {"customers": [["id", "id "], ["1", "2"]], "empty": [], "header only": [["id", "name"]]},
    )
    name = path.name

    assert error_of(customers(path)) == (
        f"{name}#customers line 1, column 'id': column 'id' appears twice in the header. "
        "Rename or delete one of them."
    )
    assert error_of(customers(path, "Empty")) == (
        f"{name}#empty: is empty. Start it with a row of column names."
    )
    with open_source(SourceFile("contacts", path, "spreadsheet", "HEADER ONLY")) as opened:
        assert opened.columns == ("id", "name")
        assert list(opened.batches()) == []
    not_a_workbook = tmp_path / f"fake{suffix}"
    not_a_workbook.write_text("id,name\n")
    assert error_of(customers(not_a_workbook)).startswith(
        f"fake{suffix}: cannot be read as a workbook (calamine error: "
    )


# -- sheets ----------------------------------------------------------------------------------


def test_sheets_are_found_by_name_in_any_letter_case(suffix: str, tmp_path: Path) -> None:
    book = write(
        suffix,
        tmp_path / "book",
        {
            "Notes": [["anything"], ["x"]],
            "CUSTOMERS": [["external_id", "name"], ["1", "a"]],
            "contacts": [["customer_external_id", "name"], ["1", "b"]],
            "Onboardings": [["customer_external_id", "name"], ["1", "c"]],
        },
    )

    found = discover_sources([book], {})

    assert found == [
        SourceFile("customers", book, "spreadsheet", "CUSTOMERS"),
        SourceFile("contacts", book, "spreadsheet", "contacts"),
        SourceFile("onboardings", book, "spreadsheet", "Onboardings"),
    ]
    assert [[record.cells for record in read(source)] for source in found] == [
        [{"external_id": "1", "name": "a"}],
        [{"customer_external_id": "1", "name": "b"}],
        [{"customer_external_id": "1", "name": "c"}],
    ]


def test_file_hash_sheet_picks_a_sheet(suffix: str, tmp_path: Path) -> None:
    book = write(
        suffix,
        tmp_path / "book",
        {"Notes": [["external_id"], ["n1"]], "Customers": [["external_id"], ["c1"]]},
    )

    [picked] = discover_sources([], {"customers": Path(f"{book}#notes")})

    assert picked == SourceFile("customers", book, "spreadsheet", "Notes")
    assert [(record.line, record.cells) for record in read(picked)] == [(2, {"external_id": "n1"})]


def test_a_folder_finds_a_workbook_named_for_a_pass(suffix: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    book = write(suffix, folder / "customers", {"Sheet1": [["external_id", "name"], ["1", "a"]]})

    [found] = discover_sources([folder], {})

    assert found == SourceFile("customers", book, "spreadsheet", "Sheet1")
    assert [record.cells for record in read(found)] == [{"external_id": "1", "name": "a"}]


# -- one command, field by field -------------------------------------------------------------


def three_sheets() -> dict[str, Sheet]:
    return {
        "Customers": [
            ["external_id", "name", "mrr", "plan", "tags", "metadata.signed_on", ""],
            ["00123", "Café Müller", 1200, "growth", "vip;eu", date(2026, 3, 1)],
            None,
            ["00042", "Zoë \u2013 Bakery", 99.0, "starter", None, None],
        ],
        "contacts": [
            ["customer_external_id", "name", "email", "is_primary", "phone"],
            ["00123", "Renée Dupont", "renee@cafe.example", True, "0612345678"],
            ["00042", "Zoë", "zoe@bakery.example", False, None],
        ],
        "ONBOARDINGS": [
            [
                "customer_external_id",
                "name",
                "phase",
                "target_launch_date",
                "reminder_frequency_days",
            ],
            ["00123", "Launch Café", "Program Design", date(2026, 6, 30), 7],
            None,
            ["00042", "Launch Zoë", None, datetime(2026, 7, 1, 9, 30), None],
        ],
    }


def by(key: str, records: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {record[key]: record for record in records}


def test_a_three_sheet_workbook_imports_exactly_in_one_command(
    any_suffix: str, threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    """Sheets found by name in any case; an empty column with an empty header is dropped."""
    book = write(any_suffix, tmp_path / "book", three_sheets())

    result = bulk("import", str(book), *against(threaded_sandbox), "--quiet")

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    companies = {
        c["metadata"]["external_id"]: c for c in threaded_sandbox.objects(WORKSPACE, "customer")
    }
    assert set(companies) == {"00123", "00042"}
    cafe, bakery = companies["00123"], companies["00042"]
    assert (cafe["name"], cafe["mrr"], cafe["plan"], cafe["tags"], cafe["metadata"]) == (
        "Café Müller",
        1200,
        "growth",
        ["vip", "eu"],
        {"external_id": "00123", "signed_on": "2026-03-01"},
    )
    assert (bakery["name"], bakery["mrr"], bakery["plan"], bakery["tags"]) == (
        "Zoë \u2013 Bakery",
        99,
        "starter",
        [],
    )
    contacts = by("email", threaded_sandbox.objects(WORKSPACE, "contact"))
    assert set(contacts) == {"renee@cafe.example", "zoe@bakery.example"}
    renee, zoe = contacts["renee@cafe.example"], contacts["zoe@bakery.example"]
    assert (renee["customer_id"], renee["name"], renee["is_primary"], renee["phone"]) == (
        cafe["id"],
        "Renée Dupont",
        True,
        "0612345678",
    )
    assert (zoe["customer_id"], zoe["name"], zoe["is_primary"], zoe["phone"]) == (
        bakery["id"],
        "Zoë",
        False,
        None,
    )
    onboardings = by("customer_id", threaded_sandbox.objects(WORKSPACE, "onboarding"))
    assert set(onboardings) == {cafe["id"], bakery["id"]}
    launch, later = onboardings[cafe["id"]], onboardings[bakery["id"]]
    assert (
        launch["name"],
        launch["phase"],
        launch["target_launch_date"],
        launch["reminder_frequency_days"],
    ) == ("Launch Café", "program_design", "2026-06-30T00:00:00.000Z", 7)
    assert (later["name"], later["target_launch_date"]) == (
        "Launch Zoë",
        "2026-07-01T09:30:00.000Z",
    )
    results = pl.read_csv("bulk-import.results.csv", infer_schema=False)
    assert sorted(zip(results["_pass"], results["_line"], strict=True)) == [
        ("contacts", "2"),
        ("contacts", "3"),
        ("customers", "2"),
        ("customers", "4"),
        ("onboardings", "2"),
        ("onboardings", "4"),
    ]

    again = bulk("import", str(book), *against(threaded_sandbox), "--quiet")

    assert again.exit_code == 0, again.output
    assert threaded_sandbox.stats.writes == 6  # the second run sends nothing
