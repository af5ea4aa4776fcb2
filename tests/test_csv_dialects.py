"""CSV as Excel and others write it: detected delimiters, Windows text, trimmed and unnamed headers,
and a semicolon cp1252 file imported in one command, checked field by field in the sandbox."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from helpers import KEY, WORKSPACE, against, bulk

from bulk.errors import InputError, UsageError
from bulk.importing.csv_dialect import parse_delimiter
from bulk.importing.sources import SourceFile, SourceRecord, discover_sources, open_source
from bulk.sandbox import Sandbox


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def opened_records(
    path: Path, *, encoding: str | None = None, delimiter: str | None = None
) -> tuple[tuple[str, ...], list[SourceRecord], list[str]]:
    source = SourceFile("customers", path, "csv")
    with open_source(source, encoding=encoding, delimiter=delimiter) as opened:
        records = [record for batch in opened.batches(2) for record in batch]
        assert opened.row_count() == len(records)
        return opened.columns, records, opened.warnings


def cells(path: Path, **options: str) -> list[dict[str, str | None]]:
    return [record.cells for record in opened_records(path, **options)[1]]


def error_of(path: Path, **options: str) -> str:
    with pytest.raises(InputError) as caught:
        opened_records(path, **options)
    return str(caught.value)


# -- delimiters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("c.csv", 'external_id;name;notes\n00123;Acme, Inc.;"a;b"\n7;Globex;\n'),
        ("c.csv", "external_id\tname\tnotes\n00123\tAcme, Inc.\ta;b\n7\tGlobex\t\n"),
        ("c.txt", "external_id|name|notes\n00123|Acme, Inc.|a;b\n7|Globex|\n"),
        ("c.tsv", "external_id\tname\tnotes\n00123\tAcme, Inc.\ta;b\n7\tGlobex\t\n"),
        ("c.csv", '"external_id","name","notes"\n00123,"Acme, Inc.",a;b\n7,Globex,\n'),
    ],
)
def test_the_delimiter_is_detected_from_the_header(tmp_path: Path, name: str, data: str) -> None:
    assert cells(write(tmp_path / name, data)) == [
        {"external_id": "00123", "name": "Acme, Inc.", "notes": "a;b"},
        {"external_id": "7", "name": "Globex", "notes": None},
    ]


def test_a_header_of_one_column_is_comma_separated(tmp_path: Path) -> None:
    assert cells(write(tmp_path / "c.csv", "external_id\n00123\n")) == [{"external_id": "00123"}]


def test_an_ambiguous_header_asks_for_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "\nexternal_id;name,first;notes\n1;a,b;c\n")

    assert error_of(path) == (
        "c.csv line 2: the header holds both ',' and ';', so its delimiter is ambiguous. "
        "Pass the file's delimiter: --delimiter ',' or --delimiter ';'."
    )
    assert cells(path, delimiter=";") == [{"external_id": "1", "name,first": "a,b", "notes": "c"}]


def test_delimiter_option_overrides_detection_and_the_tsv_rule(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", "a;b\n1;2\n")
    assert cells(path) == [{"a;b": "1;2"}]
    assert cells(path, delimiter=";") == [{"a": "1", "b": "2"}]


def test_too_many_cells_names_the_files_delimiter(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "a;b\n1;2\n3;4;5\n")
    assert error_of(path) == (
        "c.csv line 3: has 3 cells but the header has 2 columns. Quote cells that contain "
        "semicolons, or add the missing column names to the header."
    )


def test_parse_delimiter() -> None:
    assert [parse_delimiter(text) for text in (";", "tab", "\\t", "TAB", "|", ",")] == [
        ";",
        "\t",
        "\t",
        "\t",
        "|",
        ",",
    ]
    for bad in ("", ";;", '"', "semi-colon"):
        with pytest.raises(UsageError, match="is not one character"):
            parse_delimiter(bad)


# -- Windows text ----------------------------------------------------------------------------


def test_invalid_utf8_suggests_cp1252(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "id;name\n1;Caf\u00e9 \u2013 Cr\u00e8me\n".encode("cp1252"))
    assert error_of(path) == (
        "c.csv line 2: is not valid UTF-8 (byte 0xE9). Pass --encoding cp1252 (what Excel "
        "writes on Windows), or the file's encoding."
    )
    assert cells(path, encoding="cp1252") == [{"id": "1", "name": "Café \u2013 Crème"}]


def test_c1_control_characters_get_a_warning_naming_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.csv", "id;name\n1;ok\n2;Caf\u00e9 \u2013 Cr\u00e8me\n".encode("cp1252")
    )

    _, records, warnings = opened_records(path, encoding="latin-1")

    assert records[1].cells["name"] == "Café \u0096 Crème"  # what latin-1 makes of an en dash
    assert warnings == [
        "c.csv line 3: holds control characters U+0080-U+009F (decoded as iso8859-1), which "
        "usually means Windows text read with the wrong encoding (an en dash \u2013 becomes U+0096 "
        "in latin-1). Check the text, or pass --encoding cp1252."
    ]
    assert opened_records(path, encoding="cp1252")[2] == []
    utf8 = write(tmp_path / "u.csv", "id\n1\n2\nx\u0085y\n")
    assert opened_records(utf8)[2] == [
        "u.csv line 4: holds control characters U+0080-U+009F (in UTF-8), which usually means "
        "Windows text read with the wrong encoding (an en dash \u2013 becomes U+0096 in latin-1). "
        "Check the text, or pass --encoding cp1252."
    ]


# -- headers ---------------------------------------------------------------------------------


def test_header_names_are_trimmed_and_empty_unnamed_columns_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", ' external_id ;  name;;  ;\n1;a;;;\n;;;;\n2;b;"";;\n')

    columns, records, _ = opened_records(path)

    assert columns == ("external_id", "name")
    assert [(record.line, record.cells) for record in records] == [
        (2, {"external_id": "1", "name": "a"}),
        (4, {"external_id": "2", "name": "b"}),
    ]


def test_an_unnamed_column_with_data_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "external_id,name,\n1,a,\n2,b,stray\n")
    assert error_of(path) == (
        "c.csv line 1: column 3 of the header has no name, but holds values. "
        "Name it, or delete the column."
    )


def test_names_equal_once_trimmed_are_duplicates(tmp_path: Path) -> None:
    path = write(tmp_path / "c.csv", "name,name \n1,2\n")
    assert error_of(path) == (
        "c.csv line 1, column 'name': column 'name' appears twice in the header. "
        "Rename or delete one of them."
    )


def test_a_folder_finds_tsv_files(tmp_path: Path) -> None:
    write(tmp_path / "contacts.tsv", "a\tb\n")
    assert discover_sources([tmp_path], {}) == [
        SourceFile("contacts", tmp_path / "contacts.tsv", "csv")
    ]


# -- one command, field by field -------------------------------------------------------------


EXCEL_FR = (
    "external_id;name;mrr;domain;;\r\n"
    "00123;Café \u2013 Crème;1200;cafe.example;;\r\n"
    ";;;;;\r\n"
    '00042;"Zoë; Bakery";;;;\r\n'
)


def test_a_semicolon_cp1252_file_imports_exactly_in_one_command(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    write(tmp_path / "customers.csv", EXCEL_FR.encode("cp1252"))

    result = bulk(
        "import",
        str(tmp_path),
        *against(threaded_sandbox),
        "--encoding",
        "cp1252",
        "--quiet",
    )

    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    customers = {
        c["metadata"]["external_id"]: c for c in threaded_sandbox.objects(WORKSPACE, "customer")
    }
    assert set(customers) == {"00123", "00042"}
    cafe, bakery = customers["00123"], customers["00042"]
    assert (cafe["name"], cafe["mrr"], cafe["domain"]) == (
        "Café \u2013 Crème",
        1200,
        "cafe.example",
    )
    assert (bakery["name"], bakery["mrr"], bakery["domain"]) == ("Zoë; Bakery", None, None)
    results = pl.read_csv("bulk-import.results.csv", infer_schema=False)
    assert sorted(zip(results["_line"], results["external_id"], strict=True)) == [
        ("2", "00123"),
        ("4", "00042"),
    ]


def test_latin_1_on_windows_text_warns_on_stderr(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    write(tmp_path / "customers.csv", EXCEL_FR.encode("cp1252"))

    result = bulk(
        "import",
        str(tmp_path),
        *against(threaded_sandbox),
        "--encoding",
        "latin-1",
        "--dry-run",
        "--quiet",
    )

    assert result.exit_code == 0, result.output
    assert result.stderr == (
        "Warning: customers.csv line 2: holds control characters U+0080-U+009F (decoded as "
        "iso8859-1), which usually means Windows text read with the wrong encoding (an en "
        "dash \u2013 becomes U+0096 in latin-1). Check the text, or pass --encoding cp1252.\n"
    )


def test_delimiter_on_the_command_line(threaded_sandbox: Sandbox, tmp_path: Path) -> None:
    write(tmp_path / "customers.csv", "external_id;name;note, extra\n1;Acme, Inc.;x\n")
    common = ("--base-url", threaded_sandbox.base_url, "--api-key", KEY, "--quiet")

    ambiguous = bulk("import", str(tmp_path), *common)
    assert ambiguous.exit_code == 2
    assert ambiguous.stderr == (
        "Error: customers.csv line 1: the header holds both ',' and ';', so its delimiter is "
        "ambiguous. Pass the file's delimiter: --delimiter ',' or --delimiter ';'.\n"
    )
    bad = bulk("import", str(tmp_path), *common, "--delimiter", ";;")
    assert bad.exit_code == 2
    assert "--delimiter ';;' is not one character." in bad.stderr

    result = bulk("import", str(tmp_path), *common, "--delimiter", ";")

    assert result.exit_code == 0, result.output
    [customer] = threaded_sandbox.objects(WORKSPACE, "customer")
    assert (customer["name"], customer["metadata"]) == ("Acme, Inc.", {"external_id": "1"})
