"""OpenDocument spreadsheets (`.ods`) for tests, written with odfpy as LibreOffice Calc writes them.

Each typed cell carries its value in the attribute ODF 1.2 gives its `office:value-type`
(`office:value`, `office:boolean-value`, `office:date-value`, `office:time-value`) and what Calc
displays in a `text:p`; dates and times point at a data style, as Calc's do. As in Calc's files,
identical consecutive cells (empty ones too) are one cell with `table:number-columns-repeated`,
and identical consecutive rows (blank ones too) one row with `table:number-rows-repeated`.
`padded` adds what Calc writes after the data of a sheet whose columns or rows were formatted:
each row filled to 1,024 columns and the sheet to 1,048,576 rows of repeated empty cells.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from itertools import groupby
from pathlib import Path
from typing import Any

from odf.element import Element
from odf.number import DateStyle, Day, Hours, Minutes, Month, Seconds, Text, TimeStyle, Year
from odf.opendocument import OpenDocument, OpenDocumentSpreadsheet
from odf.style import Style
from odf.table import Table, TableCell, TableColumn, TableRow
from odf.text import P

Sheet = Sequence[Sequence[Any] | None]
"""Rows from row 1; None is a blank row, a None cell an empty one."""

CALC_COLUMNS = 1024
CALC_ROWS = 1_048_576


def write_ods(path: Path, sheets: Mapping[str, Sheet], *, padded: bool = False) -> Path:
    """A workbook of `sheets` (name → rows) saved at `path`."""
    document = OpenDocumentSpreadsheet()
    styles = _CellStyles(document)
    for name, rows in sheets.items():
        table = Table(name=name)
        width = CALC_COLUMNS if padded else max((len(row) for row in rows if row), default=1)
        table.addElement(TableColumn(numbercolumnsrepeated=width))
        for _, group in groupby(rows, key=_identity):
            grouped = list(group)
            row, count = grouped[0], len(grouped)
            if row:
                element = _row(row, styles, pad_to=width if padded else None)
                if count > 1:
                    element.setAttribute("numberrowsrepeated", count)
            else:
                element = _blank_rows(count, width)
            table.addElement(element)
        if padded:
            table.addElement(_blank_rows(CALC_ROWS - len(rows), width))
        document.spreadsheet.addElement(table)
    document.save(str(path))
    return path


class _CellStyles:
    """The data styles of date, datetime and time cells (`YYYY-MM-DD`, `… HH:MM:SS`, `HH:MM`)."""

    def __init__(self, document: OpenDocument) -> None:
        self.date = self._add(document, "ce-date", DateStyle(name="N-date"), date=True)
        self.datetime = self._add(
            document, "ce-datetime", DateStyle(name="N-datetime"), date=True, clock=True
        )
        self.time = self._add(document, "ce-time", TimeStyle(name="N-time"), clock=True)

    @staticmethod
    def _add(
        document: OpenDocument,
        name: str,
        data_style: Element,
        *,
        date: bool = False,
        clock: bool = False,
    ) -> Element:
        parts: list[Element] = []
        if date:
            parts += [Year(style="long"), Text(text="-"), Month(style="long")]
            parts += [Text(text="-"), Day(style="long")]
        if date and clock:
            parts.append(Text(text=" "))
        if clock:
            parts += [Hours(style="long"), Text(text=":"), Minutes(style="long")]
        if date and clock:
            parts += [Text(text=":"), Seconds(style="long")]
        for part in parts:
            data_style.addElement(part)
        document.automaticstyles.addElement(data_style)
        style = Style(name=name, family="table-cell", datastylename=data_style.getAttribute("name"))
        document.automaticstyles.addElement(style)
        return style


def _identity(row: Sequence[Any] | None) -> tuple[Any, ...]:
    """What makes two rows the same row for Calc (`1` and `True` are different cells)."""
    return tuple((type(value), value) for value in row or ())


def _blank_rows(count: int, width: int) -> Element:
    """`count` empty rows `width` cells wide (a row holds at least one cell)."""
    row = TableRow(numberrowsrepeated=count)
    row.addElement(TableCell(numbercolumnsrepeated=width))
    return row


def _row(values: Sequence[Any], styles: _CellStyles, *, pad_to: int | None) -> Element:
    row = TableRow()
    cells = list(values)
    if pad_to is not None:
        cells += [None] * (pad_to - len(cells))
    for (_, value), group in groupby(cells, key=lambda value: (type(value), value)):
        count = len(list(group))
        cell = TableCell() if value is None else _cell(value, styles)
        if count > 1:
            cell.setAttribute("numbercolumnsrepeated", count)
        row.addElement(cell)
    return row


def _cell(value: Any, styles: _CellStyles) -> Element:
    """A typed cell: its value in the attribute of its value type, Calc's display in `text:p`."""
    if isinstance(value, str):
        cell, shown = TableCell(valuetype="string"), value
    elif isinstance(value, bool):
        word = "true" if value else "false"
        cell, shown = TableCell(valuetype="boolean", booleanvalue=word), word.upper()
    elif isinstance(value, int | float):
        cell, shown = TableCell(valuetype="float", value=repr(value)), f"{value:g}"
    elif isinstance(value, datetime):
        shown = value.isoformat(sep=" ")
        cell = TableCell(valuetype="date", datevalue=value.isoformat(), stylename=styles.datetime)
    elif isinstance(value, date):
        shown = value.isoformat()
        cell = TableCell(valuetype="date", datevalue=shown, stylename=styles.date)
    elif isinstance(value, time):
        shown = value.strftime("%H:%M")
        duration = f"PT{value.hour:02d}H{value.minute:02d}M{value.second:02d}S"
        cell = TableCell(valuetype="time", timevalue=duration, stylename=styles.time)
    else:
        raise TypeError(f"no ODS cell for {value!r}")
    cell.addElement(P(text=shown))
    return cell
