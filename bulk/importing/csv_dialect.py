"""CSV as spreadsheets write it: which delimiter, and text that was decoded with the wrong codec.

Excel writes `;`-separated files where the decimal separator is a comma (most of Europe), and
Windows text in cp1252. The delimiter is read off the header line: it is the only one of `,`
`;` tab `|` that occurs there outside quotes (a header of one column has none, and is `,`).
A header holding two of them is ambiguous and must be told with `--delimiter`.

Bytes 0x80-0x9F are printable in cp1252 (an en dash is 0x96) but C1 control characters in latin-1,
which decodes any byte without complaint: text holding U+0080-U+009F was almost certainly
decoded with the wrong codec, so it gets a warning suggesting cp1252.
"""

from __future__ import annotations

import re
from pathlib import Path

from bulk.errors import InputError, UsageError

DELIMITERS = (",", ";", "\t", "|")
_NAMES = {",": "','", ";": "';'", "\t": "tab", "|": "'|'"}
_SPELLINGS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
TAB_SUFFIXES = frozenset({".tsv"})
_HEADER_SCAN = 1024 * 1024
C1_CONTROLS = re.compile("[\u0080-\u009f]")
C1_CONTROLS_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
"""The same characters as UTF-8 bytes, to find them without decoding the file."""


def delimiter_name(delimiter: str) -> str:
    """`','`, `tab`: how messages show a delimiter."""
    return _NAMES.get(delimiter, repr(delimiter))


def parse_delimiter(text: str) -> str:
    """The character `--delimiter` names: one character, or `tab` (`\\t`, `comma`, ...)."""
    delimiter = _SPELLINGS.get(text.lower(), text)
    if len(delimiter) != 1 or delimiter in '"\r\n':
        raise UsageError(
            f"--delimiter {text!r} is not one character.",
            "Example: --delimiter ';' (or --delimiter tab).",
        )
    return delimiter


def detect_delimiter(text: str, path: Path) -> str:
    """The delimiter of a CSV file whose text starts with `text` (its header line first)."""
    if path.suffix.lower() in TAB_SUFFIXES:
        return "\t"
    header, line = _header_line(text)
    found = [delimiter for delimiter in DELIMITERS if delimiter in header]
    if len(found) > 1:
        shown = " and ".join(delimiter_name(delimiter) for delimiter in found)
        raise InputError(
            f"the header holds both {shown}, so its delimiter is ambiguous.",
            path=path,
            line=line,
            remedy="Pass the file's delimiter: "
            + " or ".join(f"--delimiter {_option_value(delimiter)}" for delimiter in found)
            + ".",
        )
    return found[0] if found else ","


def _option_value(delimiter: str) -> str:
    return "tab" if delimiter == "\t" else f"'{delimiter}'"


def _header_line(text: str) -> tuple[str, int]:
    """The first non-blank record of `text`, without its quoted parts, and its line."""
    line = 1
    start = 0
    while True:
        end = _record_end(text, start)
        record = text[start:end]
        if record.strip() or end >= len(text):
            return _unquoted(record), line
        line += record.count("\n") + 1
        start = end + 1


def _record_end(text: str, start: int) -> int:
    """Where the record starting at `start` ends: the first newline outside quotes."""
    quoted = False
    for index in range(start, len(text)):
        char = text[index]
        if char == '"':
            quoted = not quoted
        elif char == "\n" and not quoted:
            return index
    return len(text)


def _unquoted(record: str) -> str:
    return "".join(part for index, part in enumerate(record.split('"')) if index % 2 == 0)


def read_start(data_path: Path) -> str:
    """The first MiB of a UTF-8 file as text, for the header line (a cut character dropped)."""
    with data_path.open("rb") as stream:
        return stream.read(_HEADER_SCAN).decode("utf-8-sig", "ignore")


def c1_warning(label: str, line: int, encoding: str | None) -> str:
    """The warning for C1 control characters first found on `line`."""
    decoded = f"decoded as {encoding}" if encoding else "in UTF-8"
    return (
        f"{label} line {line}: holds control characters U+0080-U+009F ({decoded}), which "
        "usually means Windows text read with the wrong encoding (an en dash \u2013 becomes "
        "U+0096 in latin-1). Check the text, or pass --encoding cp1252."
    )
