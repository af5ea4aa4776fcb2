"""Finding and reading source files: exact cells, exact line numbers, one-line errors."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from bulk.errors import InputError
from bulk.importing import sources
from bulk.importing.source_types import rows_per_batch
from bulk.importing.sources import SourceFile, SourceRecord, discover_sources, open_source

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def read(path: Path, *, encoding: str | None = None, size: int = 50_000) -> list[SourceRecord]:
    source_format = "parquet" if path.suffix == ".parquet" else "csv"
    with open_source(SourceFile("customers", path, source_format), encoding=encoding) as source:
        records = [record for batch in source.batches(size) for record in batch]
        assert source.row_count() == len(records)
        return records


def error_of(path: Path, *, encoding: str | None = None) -> str:
    with pytest.raises(InputError) as caught:
        read(path, encoding=encoding)
    return str(caught.value)


# -- discovery -------------------------------------------------------------------------------


def test_discover_finds_the_three_passes_in_order_and_ignores_everything_else(
    tmp_path: Path,
) -> None:
    for name in ("onboardings.csv", "Customers.CSV", "contacts.parquet", "notes.txt"):
        write(tmp_path, name, "a\n")
    write(tmp_path, "customers.csv.bak", "a\n")
    write(tmp_path, "old/contacts.csv", "a\n")
    (tmp_path / "onboardings.parquet").mkdir()  # a folder with a source's name is not a source

    found = discover_sources([tmp_path], {})

    assert found == [
        SourceFile("customers", tmp_path / "Customers.CSV", "csv"),
        SourceFile("contacts", tmp_path / "contacts.parquet", "parquet"),
        SourceFile("onboardings", tmp_path / "onboardings.csv", "csv"),
    ]


def test_discover_lets_explicit_files_override_folders(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    write(folder, "customers.csv", "a\n")
    write(folder, "customers.parquet", "a\n")  # two customers files, but --customers decides
    write(folder, "contacts.csv", "a\n")
    chosen = write(tmp_path, "crm-export.txt", "a\n")
    onboardings = write(tmp_path, "ob.parquet", "a\n")

    found = discover_sources([folder], {"customers": chosen, "onboardings": onboardings})

    assert found == [
        SourceFile("customers", chosen, "csv"),
        SourceFile("contacts", folder / "contacts.csv", "csv"),
        SourceFile("onboardings", onboardings, "parquet"),
    ]


def test_discover_with_files_only(tmp_path: Path) -> None:
    contacts = write(tmp_path, "people.csv", "a\n")
    assert discover_sources([], {"contacts": contacts}) == [SourceFile("contacts", contacts, "csv")]


def test_discover_errors(tmp_path: Path) -> None:
    write(tmp_path, "both/customers.csv", "a\n")
    write(tmp_path, "both/customers.parquet", "a\n")
    write(tmp_path, "a/customers.csv", "a\n")
    write(tmp_path, "b/customers.csv", "a\n")
    write(tmp_path, "nested/deeper/customers.csv", "a\n")
    write(tmp_path, "nothing/readme.md", "hello\n")
    plain = write(tmp_path, "customers.csv", "a\n")

    def message(folders: list[Path], files: dict[str, Path] | None = None) -> str:
        with pytest.raises(InputError) as caught:
            discover_sources(folders, files or {})
        return str(caught.value)

    assert message([tmp_path / "missing"]) == "missing: does not exist."
    assert message([], {"contacts": tmp_path / "gone.csv"}) == "gone.csv: does not exist."
    assert message([], {"contacts": tmp_path / "a"}) == (
        "a: is a folder, not a file. Name a .csv, .xlsx or .parquet file after --contacts."
    )
    assert message([plain]) == (
        "customers.csv: is not a folder or a workbook. Name a folder, or pass a file with "
        "--customers, "
        "--contacts or --onboardings."
    )
    no_sources = (
        "holds no customers, contacts or onboardings file (CSV, spreadsheet or Parquet). Name "
        "the files customers.csv, contacts.csv, onboardings.csv (or .xlsx, .parquet), name a "
        "workbook's sheets so, or pass the files with --customers, --contacts or --onboardings."
    )
    assert message([tmp_path / "nothing"]) == f"nothing: {no_sources}"
    assert message([tmp_path / "nested"]) == f"nested: {no_sources}"
    assert message([tmp_path / "both"]) == (
        "both: holds two customers files, customers.csv and customers.parquet. "
        "Keep one of them, or name the one to use with --customers."
    )
    assert message([tmp_path / "a", tmp_path / "b"]) == (
        f"customers is given twice: {tmp_path / 'a' / 'customers.csv'} and "
        f"{tmp_path / 'b' / 'customers.csv'}. Keep one of them, or name the one to use with "
        "--customers."
    )
    assert message([]) == (
        "No source files given. Name a folder holding customers, contacts or onboardings "
        "files, or pass --customers, --contacts or --onboardings."
    )


def test_discover_names_the_current_folder(tmp_path: Path) -> None:
    # the conftest fixture made tmp_path the current folder: Path(".").name is ""
    with pytest.raises(InputError, match=rf"^{tmp_path.name}: holds no customers"):
        discover_sources([Path(".")], {})


# -- CSV -------------------------------------------------------------------------------------


def test_csv_with_bom_crlf_and_quoted_commas_quotes_and_newlines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "customers.csv",
        "\ufeffexternal_id,name,notes\r\n"
        '00123,"Acme, Inc.","say ""hi"""\r\n'
        '00042,Globex,"line one\r\nline two\r\nline three"\r\n'
        '000042,"Multi\nline name",x\r\n'
        "7,Last,\r\n",
    )

    records = read(path)

    assert [record.line for record in records] == [2, 3, 6, 8]
    assert [record.cells for record in records] == [
        {"external_id": "00123", "name": "Acme, Inc.", "notes": 'say "hi"'},
        {"external_id": "00042", "name": "Globex", "notes": "line one\r\nline two\r\nline three"},
        {"external_id": "000042", "name": "Multi\nline name", "notes": "x"},
        {"external_id": "7", "name": "Last", "notes": None},
    ]


def test_csv_line_numbers_stay_exact_across_batches(tmp_path: Path) -> None:
    lines = ["id,note"]
    expected = []
    for number in range(40):
        expected.append(sum(line.count("\n") + 1 for line in lines) + 1)
        note = "\n".join(["x"] * (number % 4 + 1))
        lines.append(f'{number},"{note}"' if number % 4 else f"{number},{note}")
    path = write(tmp_path, "c.csv", "\n".join(lines) + "\n")

    for size in (1, 3, 7, 1000):
        records = read(path, size=size)
        assert [record.line for record in records] == expected
        assert [record.cells["id"] for record in records] == [str(n) for n in range(40)]


@pytest.mark.parametrize(
    "data",
    [
        "external_id,name\n00123,Acme\n0042,Globex\n",  # no quote at all: the fast path
        'external_id,name\n00123,"Acme"\n0042,"Globex"\n',  # quotes, but no newline in them
    ],
)
def test_csv_fast_path_lines(tmp_path: Path, data: str) -> None:
    records = read(write(tmp_path, "c.csv", data))
    assert [(record.line, record.cells) for record in records] == [
        (2, {"external_id": "00123", "name": "Acme"}),
        (3, {"external_id": "0042", "name": "Globex"}),
    ]


def test_csv_cells_are_text_and_empty_means_none(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.csv",
        'id,mrr,flag,quoted_empty,spaces,date\n00123,0012.50,TRUE,"",  padded  ,2026-03-15\n',
    )

    [record] = read(path)

    assert record.cells == {
        "id": "00123",
        "mrr": "0012.50",
        "flag": "TRUE",
        "quoted_empty": None,
        "spaces": "  padded  ",
        "date": "2026-03-15",
    }


def test_csv_skips_blank_records_and_keeps_counting_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", 'a,b\n1,2\n\n,\n"",""\n3,"x\ny"\n4,\n\n\n')

    records = read(path)

    assert [(record.line, record.cells) for record in records] == [
        (2, {"a": "1", "b": "2"}),
        (6, {"a": "3", "b": "x\ny"}),
        (8, {"a": "4", "b": None}),
    ]


def test_csv_short_records_get_empty_cells(tmp_path: Path) -> None:
    [record] = read(write(tmp_path, "c.csv", "a,b,c\n1\n"))
    assert record.cells == {"a": "1", "b": None, "c": None}


def test_csv_header_only_has_no_rows(tmp_path: Path) -> None:
    for data in ("external_id,name", "external_id,name\n", "\ufeffexternal_id,name\r\n"):
        path = write(tmp_path, "c.csv", data)
        with open_source(SourceFile("customers", path, "csv")) as source:
            assert source.columns == ("external_id", "name")
            assert source.row_count() == 0
            assert list(source.batches()) == []


def test_csv_header_spanning_lines_and_blank_lines_before_it(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", '\n\n"external\nid",name\n1,a\n2,b\n')
    with open_source(SourceFile("customers", path, "csv")) as source:
        assert source.columns == ("external\nid", "name")
        assert [record.line for batch in source.batches() for record in batch] == [5, 6]


def test_csv_bom_stays_out_of_the_first_name(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", b"\xef\xbb\xbfexternal_id\n1\n")
    with open_source(SourceFile("customers", path, "csv")) as source:
        assert source.columns == ("external_id",)
        assert [r.cells for b in source.batches() for r in b] == [{"external_id": "1"}]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "c.csv: is empty."),
        (b"\xef\xbb\xbf", "c.csv: is empty. Start it with a line of column names."),
        (b"\n\n", "c.csv: is empty. Start it with a line of column names."),
        (
            b"a,b\n1,\x002\n",
            "c.csv: is not a CSV file (it holds binary data). Export it from the spreadsheet "
            "as CSV (UTF-8), or pass a .parquet file.",
        ),
        (
            b"PAR1\x15\x04\x15\x00",
            "c.csv: is not a CSV file (it is a Parquet file). Give it a .parquet extension.",
        ),
        (
            b"a,b\n1,2\nCaf\xe9,3\n",
            "c.csv line 3: is not valid UTF-8 (byte 0xE9). "
            "Pass --encoding cp1252 (what Excel writes on Windows), or the file's encoding.",
        ),
        (
            b'a,b\n1,"two\nlines"\n3,\xc3\n',  # a truncated sequence at the very end
            "c.csv line 4: is not valid UTF-8 (byte 0xC3). "
            "Pass --encoding cp1252 (what Excel writes on Windows), or the file's encoding.",
        ),
        (
            b"a\n\xe2\x82",  # cut inside the last character
            "c.csv line 2: is not valid UTF-8 (byte 0xE2). "
            "Pass --encoding cp1252 (what Excel writes on Windows), or the file's encoding.",
        ),
        (
            b"a,a,b\n1,2,3\n",
            "c.csv line 1, column 'a': column 'a' appears twice in the header. "
            "Rename or delete one of them.",
        ),
        (
            b"a,b,\n1,2,3\n",
            "c.csv line 1: column 3 of the header has no name, but holds values. "
            "Name it, or delete the column.",
        ),
        (
            b"a,b\n1,2\n3,4\n5,6,7\n",
            "c.csv line 4: has 3 cells but the header has 2 columns. Quote cells that contain "
            "commas, or add the missing column names to the header.",
        ),
        (
            b'a,b\n1,"two\nlines"\n3,"open\n4,5\n',
            "c.csv line 4: is not valid CSV: unexpected end of data. Check the quotes: a quoted "
            'cell ends at a lone ", and a quote inside a quoted cell is written "".',
        ),
        (
            b'a,b\n1,"x"y\n',
            "c.csv line 2: is not valid CSV: ',' expected after '\"'. Check the quotes: a "
            'quoted cell ends at a lone ", and a quote inside a quoted cell is written "".',
        ),
    ],
)
def test_csv_bad_input(tmp_path: Path, data: bytes, message: str) -> None:
    assert error_of(write(tmp_path, "c.csv", data)) == message


def test_csv_missing_file(tmp_path: Path) -> None:
    assert error_of(tmp_path / "c.csv") == "c.csv: does not exist."


def test_csv_invalid_utf8_far_into_the_file_and_characters_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "_SCAN_CHUNK", 7)  # cut multi-byte characters everywhere
    body = "".join(f"{n},Zoë \u2013 東京 ✓\n" for n in range(300))
    good = write(tmp_path, "good.csv", "id,name\n" + body)
    assert [record.cells["name"] for record in read(good)] == ["Zoë \u2013 東京 ✓"] * 300

    bad = write(tmp_path, "c.csv", ("id,name\n" + body).encode() + b"300,\xff\n")
    assert error_of(bad).startswith("c.csv line 302: is not valid UTF-8 (byte 0xFF).")


def test_csv_encoding_is_transcoded_to_a_temporary_file_that_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    path = write(tmp_path, "c.csv", 'id,name\n1,Café Crème\n2,"Zoë\'s\nBakery"\n3,Ørsted\n')
    path.write_bytes(path.read_text("utf-8").encode("latin-1"))

    assert error_of(path).startswith("c.csv line 2: is not valid UTF-8 (byte 0xE9).")

    with open_source(SourceFile("customers", path, "csv"), encoding="latin-1") as source:
        assert list(scratch.iterdir()) != []
        records = [record for batch in source.batches() for record in batch]
    assert [(r.line, r.cells["name"]) for r in records] == [
        (2, "Café Crème"),
        (3, "Zoë's\nBakery"),
        (5, "Ørsted"),
    ]
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize("encoding", ["utf-16", "cp1252"])
def test_csv_other_encodings(tmp_path: Path, encoding: str) -> None:
    path = write(tmp_path, "c.csv", b"")
    path.write_bytes("id,price\r\n00123,€ 12\r\n".encode(encoding))
    [record] = read(path, encoding=encoding)
    assert record.cells == {"id": "00123", "price": "€ 12"}


def test_csv_utf8_spelled_any_way_is_not_transcoded(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", "id\nZoë\n")
    for encoding in ("utf-8", "UTF8", "utf_8", "utf-8-sig"):
        assert [r.cells for r in read(path, encoding=encoding)] == [{"id": "Zoë"}]


def test_csv_encoding_errors(tmp_path: Path) -> None:
    path = write(tmp_path, "c.csv", b"id,name\n1,ok\n2,Caf\xe9\n")
    assert error_of(path, encoding="klingon") == (
        "Unknown encoding 'klingon'. Pass a Python codec name to --encoding, such as latin-1, "
        "cp1252 or utf-16."
    )
    assert error_of(path, encoding="ascii") == (
        "c.csv line 3: is not valid ascii (byte 0xE9). "
        "Pass --encoding cp1252 (what Excel writes on Windows), or the file's encoding."
    )


# -- Parquet ---------------------------------------------------------------------------------


def test_parquet_types_become_text(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "text": ["00123", "", None],
            "int": pl.Series([42, -7, None], dtype=pl.Int64),
            "small": pl.Series([1, 0, None], dtype=pl.UInt8),
            "float": [3.0, 2.5, float("nan")],
            "big_float": [1e20, -0.0, None],
            "flag": [True, False, None],
            "naive": pl.Series(
                [datetime(2026, 3, 15, 9, 30, 0, 999_999), datetime(2026, 1, 1), None]
            ),
            "zoned": pl.Series(
                [datetime(2026, 3, 15, 9, 30, tzinfo=UTC), None, None]
            ).dt.convert_time_zone("Europe/Paris"),
            "day": [date(2026, 3, 15), None, None],
            "tags": [["a, b", 'say "hi"', "Zoë\n"], [], None],
            "nothing": pl.Series([None, None, None], dtype=pl.Null),
            "category": pl.Series(["x", None, "y"], dtype=pl.Categorical),
        }
    ).with_columns(pl.col("naive").cast(pl.Datetime("ms")))
    path = tmp_path / "customers.parquet"
    frame.write_parquet(path)

    records = read(path)

    assert [record.line for record in records] == [2, 3, 4]
    first, second, third = (record.cells for record in records)
    assert first == {
        "text": "00123",
        "int": "42",
        "small": "1",
        "float": "3",
        "big_float": "1e+20",
        "flag": "true",
        "naive": "2026-03-15T09:30:00.999Z",
        "zoned": "2026-03-15T09:30:00.000Z",
        "day": "2026-03-15",
        "tags": first["tags"],
        "nothing": None,
        "category": "x",
    }
    assert json.loads(first["tags"] or "") == ["a, b", 'say "hi"', "Zoë\n"]
    assert second == {
        "text": None,
        "int": "-7",
        "small": "0",
        "float": "2.5",
        "big_float": "0",
        "flag": "false",
        "naive": "2026-01-01T00:00:00.000Z",
        "zoned": None,
        "day": None,
        "tags": "[]",
        "nothing": None,
        "category": None,
    }
    assert third["float"] is None  # NaN is no value
    assert third["tags"] is None


def test_parquet_skips_empty_rows_and_keeps_their_numbers(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame({"a": ["1", None, "", "4"], "b": [None, None, None, "x"]}).write_parquet(path)
    assert [(r.line, r.cells) for r in read(path, size=2)] == [
        (2, {"a": "1", "b": None}),
        (5, {"a": "4", "b": "x"}),
    ]


@pytest.mark.parametrize(
    ("series", "type_name"),
    [
        (pl.Series("st", [{"x": 1}]), "Struct({'x': Int64})"),
        (pl.Series("st", [b"\x00\x01"]), "Binary"),
        (pl.Series("st", [[1, 2]]), "List(Int64)"),
    ],
)
def test_parquet_column_that_cannot_be_text(
    tmp_path: Path, series: pl.Series, type_name: str
) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame([pl.Series("name", ["a"]), series]).write_parquet(path)
    assert error_of(path) == (
        f"p.parquet, column 'st': has type {type_name}, which cannot be read as text. "
        "Convert the column to text, numbers, booleans, dates or lists of text."
    )


def test_parquet_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "good.parquet"
    pl.DataFrame({"a": [str(n) for n in range(1000)]}).write_parquet(good)
    data = good.read_bytes()

    assert error_of(write(tmp_path, "p.parquet", b"")) == "p.parquet: is empty."
    assert error_of(write(tmp_path, "p.parquet", b"a,b\n1,2\n")) == (
        "p.parquet: is not a Parquet file. Pass a Parquet file, or a CSV file with a .csv "
        "extension."
    )
    assert error_of(write(tmp_path, "p.parquet", data[:4] + data[-300:])).startswith(
        "p.parquet: is not a valid Parquet file ("
    )
    assert error_of(write(tmp_path, "p.parquet", b"PAR1" + b"\x00" * 64 + b"PAR1")).startswith(
        "p.parquet: is not a valid Parquet file ("
    )


def test_parquet_names_are_trimmed_and_duplicates_checked(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame({" name ": ["a"], "": [None]}).write_parquet(path)
    assert [record.cells for record in read(path)] == [{"name": "a"}]
    pl.DataFrame({"name ": ["a"], "name": ["b"]}).write_parquet(path)
    assert error_of(path) == (
        "p.parquet, column 'name': column 'name' appears twice in the header. "
        "Rename or delete one of them."
    )


# -- samples ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pass_name", "rows"), [("customers", 50), ("contacts", 100), ("onboardings", 40)]
)
def test_samples_read_cleanly_and_csv_equals_parquet(pass_name: str, rows: int) -> None:
    [csv_file] = [s for s in discover_sources([SAMPLES], {}) if s.pass_name == pass_name]
    [parquet_file] = [
        s for s in discover_sources([SAMPLES / "parquet"], {}) if s.pass_name == pass_name
    ]
    assert csv_file.format == "csv"
    assert parquet_file.format == "parquet"

    csv_records = read(csv_file.path)
    parquet_records = read(parquet_file.path)

    assert len(csv_records) == len(parquet_records) == rows
    assert [r.cells for r in csv_records] == [r.cells for r in parquet_records]
    assert [r.line for r in parquet_records] == list(range(2, rows + 2))
    # CSV lines are physical: a record starts after the previous one's last line
    raw_lines = csv_file.path.read_text("utf-8").split("\n")
    for record in csv_records:
        first_cell = next(iter(record.cells.values())) or ""
        assert raw_lines[record.line - 1].startswith(first_cell.split("\n")[0])
    assert csv_records[-1].line + _spanned(csv_records[-1]) == len(raw_lines) - 1


def _spanned(record: SourceRecord) -> int:
    return sum((value or "").count("\n") for value in record.cells.values())


def batch_sizes(path: Path, size: int) -> list[int]:
    with open_source(SourceFile("customers", path, "csv")) as source:
        return [len(batch) for batch in source.batches(size)]


def test_batches_are_sized_by_bytes_so_wide_rows_come_fewer_at_a_time(tmp_path: Path) -> None:
    width = 1_000
    header = ",".join(f"c{n}" for n in range(width))
    row = ",".join("x" * 20 for _ in range(width))
    wide = write(tmp_path, "wide.csv", header + "\n" + "\n".join([row] * 600) + "\n")
    narrow = write(tmp_path, "narrow.csv", "a,b\n" + "1,2\n" * 600)

    wide_sizes = batch_sizes(wide, 500)

    assert sum(wide_sizes) == 600
    assert max(wide_sizes) <= rows_per_batch(width, len(row) + 1, 500) < 500
    assert batch_sizes(narrow, 500) == [500, 100]  # narrow rows: the row limit decides
