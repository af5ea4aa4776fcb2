"""Which source column, or template over columns, each field of a pass is read from.

Two steps, so that a wrong map is refused before anything is read:

- `load_mapping` turns the `--map` options and the `--map-file` TOML into one frozen
  `SourceMapping`, checked against the schema alone: unknown passes and fields, two maps for one
  field of one pass. A `--map` without a pass applies to every pass that has the field; `--map`
  options override the file's maps of the same field.
- `ColumnMap.build` resolves one pass's fields against a file's header, once (a mapped column the
  file lacks is an error naming the closest one); `ColumnMap.apply` then gives each row the texts
  of its templated and translated fields, so the planner reads every field with one dictionary
  lookup. Plain column maps cost nothing per row.

Templates (`{First Name} {Last Name}`): each `{Column}` is that cell's text, trimmed; `{{` and
`}}` are literal braces. The field is not set when every cell the template names is empty. An
empty part takes the whitespace around it along, so the result never holds the doubled or
leading space it would leave: the literal text on both sides of it meets with one space if
either side had whitespace there; the result is trimmed. Only whitespace collapses:
`{City}, {Country}` without a city is `, France`. A column whose name holds a brace cannot be
mapped. (Templates are parsed here, not by `string.Formatter`, whose grammar would read
`{Amount: EUR}` as a field and a format spec.)

`values` tables (map file only) translate a field's text: matched after trimming,
case-insensitively; `""` matches an empty cell and an empty value leaves the field not set; a
text that matches no entry is kept as it is and validated as usual.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from bulk.errors import BulkError, InputError, UsageError
from bulk.importing.cells import CellError, Parser, cell_parser
from bulk.schema import COLLECTIONS, CUSTOMER, Field, Kind, ObjectSchema
from bulk.settings import PASSES

READ_ONLY_COLUMNS: Final = frozenset(
    {"id", "display_id", "created_at", "updated_at", "livemode", "started_at", "completed_at"}
)
KEY_COLUMNS: Final = ("external_id", "customer_external_id", "customer_id")
"""Columns that say which row this is, or which customer it belongs to: never payload fields."""
METADATA_PREFIX: Final = "metadata."
COMPUTED: Final = "\x00"
"""Prefixes the cell name a templated or translated field's text is stored under for a row, so
it never hides a real column: no header holds a NUL (a CSV with one is refused as binary)."""

_TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_TOML_POSITION = re.compile(r"^(.*?) \(at (?:line (\d+), column (\d+)|end of document)\)$")
_RULE_KEYS: Final = ("column", "values")
_SHOWN_COLUMNS = 8


def payload_fields(schema: ObjectSchema) -> tuple[Field, ...]:
    """The fields a source row can set: the writable ones but the parent reference."""
    return tuple(field for field in schema.writable() if field.kind is not Kind.REFERENCE)


def has_metadata(schema: ObjectSchema) -> bool:
    return any(field.kind is Kind.JSON_OBJECT for field in schema.fields)


def pass_fields(schema: ObjectSchema) -> tuple[str, ...]:
    """Every field a map of this pass may name, `metadata.<key>` aside."""
    keys = ("external_id",) if schema is CUSTOMER else KEY_COLUMNS
    return (*keys, *(field.name for field in payload_fields(schema)))


def has_field(schema: ObjectSchema, name: str) -> bool:
    if name.startswith(METADATA_PREFIX):
        return has_metadata(schema) and len(name) > len(METADATA_PREFIX)
    return name in pass_fields(schema)


def closest(word: str, choices: Sequence[str]) -> str | None:
    """The choice most like `word` (ignoring case), or None when none is close."""
    folded = {choice.casefold(): choice for choice in choices}
    found = difflib.get_close_matches(word.casefold(), list(folded), n=1)
    return folded[found[0]] if found else None


def _did_you_mean(word: str, choices: Sequence[str]) -> str | None:
    match = closest(word, choices)
    return f"Did you mean {match!r}?" if match is not None else None


# -- templates -------------------------------------------------------------------------------


class TemplateError(ValueError):
    """A template that cannot be read; the caller says where it came from."""


@dataclass(frozen=True, slots=True)
class Template:
    """Literal text around column placeholders: `literals[0] {columns[0]} literals[1] ...`."""

    literals: tuple[str, ...]
    columns: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        literals: list[str] = []
        columns: list[str] = []
        literal: list[str] = []
        position = 0
        for match in _TEMPLATE_TOKEN.finditer(text):
            literal.append(text[position : match.start()])
            position = match.end()
            token = match.group()
            if token in ("{{", "}}"):
                literal.append(token[0])
                continue
            name = match.group(1)
            if name is None:
                raise TemplateError(f"has a lone {token!r} (write {token * 2} for a brace)")
            if not name.strip():
                raise TemplateError("has an empty {} (put a column name inside)")
            literals.append("".join(literal))
            literal = []
            columns.append(name.strip())
        literals.append("".join(literal) + text[position:])
        if not columns:
            raise TemplateError("names no {Column}")
        return cls(tuple(literals), tuple(columns))

    def render(self, cells: Mapping[str, str | None]) -> str | None:
        """The text for one row, or None when every cell it names is empty."""
        parts = [(cells.get(column) or "").strip() for column in self.columns]
        if not any(parts):
            return None
        text = self.literals[0]
        for part, literal in zip(parts, self.literals[1:], strict=True):
            text = text + part + literal if part else _close_gap(text, literal)
        return text.strip() or None


def _close_gap(left: str, right: str) -> str:
    """Join the texts on both sides of an empty part: their whitespace there becomes one space."""
    kept_left, kept_right = left.rstrip(), right.lstrip()
    spaced = len(kept_left) < len(left) or len(kept_right) < len(right)
    return kept_left + (" " if spaced else "") + kept_right


def is_template(text: str) -> bool:
    return "{" in text or "}" in text


# -- maps ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldMap:
    """One map: where a field of one pass (or of every pass that has it) is read from."""

    pass_name: str | None
    """None: every pass that has the field (`--map name=…`)."""
    field: str
    source: str
    """As written: a column name, or a template when it holds a brace."""
    origin: str
    """Where the map was written, for messages: `--map name=Company`, `[customers] name`."""
    file: Path | None = None
    """The map file it comes from; None for a `--map` option."""
    template: Template | None = None
    values: Mapping[str, str | None] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )
    """Trimmed, case-folded cell text → field value (None: not set)."""

    @classmethod
    def of(
        cls,
        pass_name: str | None,
        name: str,
        source: str,
        origin: str,
        file: Path | None = None,
        values: Mapping[str, str | None] | None = None,
    ) -> FieldMap:
        """A map whose `source` is parsed as a template when it holds a brace."""
        template = None
        if is_template(source):
            try:
                template = Template.parse(source)
            except TemplateError as error:
                raise _map_error(file, f"{origin}: the template {source!r} {error}.") from None
        else:
            source = source.strip()
        return cls(
            pass_name, name, source, origin, file, template, MappingProxyType(dict(values or {}))
        )

    @property
    def columns(self) -> tuple[str, ...]:
        return self.template.columns if self.template is not None else (self.source,)

    @property
    def is_plain(self) -> bool:
        """Read straight from one column, untranslated."""
        return self.template is None and not self.values

    @property
    def described(self) -> str:
        """Where a message says it was written: the file too when it comes from one."""
        return f"{self.file.name} {self.origin}" if self.file is not None else self.origin

    def read(self, cells: Mapping[str, str | None]) -> str | None:
        """The field's text for one row (None: not set)."""
        text = self.template.render(cells) if self.template is not None else cells.get(self.source)
        if self.values:
            key = (text or "").strip().casefold()
            if key in self.values:
                return self.values[key]
        return text

    def canonical(self) -> list[Any]:
        """What the map reads, as JSON-ready data (where it was written aside)."""
        return [self.source, sorted(self.values.items())]


@dataclass(frozen=True)
class SourceMapping:
    """Every pass's maps, field by field, with `--map` options over the map file's."""

    passes: Mapping[str, Mapping[str, FieldMap]] = dataclasses.field(
        default_factory=lambda: MappingProxyType({})
    )

    def for_pass(self, pass_name: str) -> Mapping[str, FieldMap]:
        return self.passes.get(pass_name, MappingProxyType({}))

    def canonical(self) -> list[Any]:
        """What the maps mean, as JSON-ready data, for the plan's fingerprint: the same for the
        same maps however they were written (option or file, with or without a pass)."""
        return [
            [pass_name, name, *rule.canonical()]
            for pass_name in sorted(self.passes)
            for name, rule in sorted(self.passes[pass_name].items())
        ]


NO_MAPPING: Final = SourceMapping()


def load_mapping(maps: Sequence[str] = (), map_file: Path | None = None) -> SourceMapping:
    """`--map` options (FIELD=COLUMN, in order) over the maps of `map_file`, checked."""
    from_file = _by_pass(read_map_file(map_file) if map_file is not None else [])
    from_options = _by_pass([parse_map_option(text) for text in maps])
    return SourceMapping(
        MappingProxyType(
            {
                name: MappingProxyType({**from_file[name], **from_options[name]})
                for name in PASSES
                if from_file[name] or from_options[name]
            }
        )
    )


def _by_pass(maps: Sequence[FieldMap]) -> dict[str, dict[str, FieldMap]]:
    """Each pass's maps by field; two maps of one field of one pass are an error."""
    passes: dict[str, dict[str, FieldMap]] = {name: {} for name in PASSES}
    for rule in maps:
        targets = [rule.pass_name] if rule.pass_name is not None else list(PASSES)
        for name in targets:
            if not has_field(COLLECTIONS[name], rule.field):
                continue
            earlier = passes[name].get(rule.field)
            if earlier is not None:
                raise _map_error(
                    rule.file,
                    f"{earlier.origin} and {rule.origin} both map the {name}' {rule.field}.",
                    "Keep one of them.",
                )
            passes[name][rule.field] = rule
    return passes


def parse_map_option(text: str) -> FieldMap:
    """One `--map [PASS.]FIELD=COLUMN` (or `=TEMPLATE`)."""
    target, equals, source = text.partition("=")
    if not equals or not target.strip() or not source.strip():
        raise UsageError(
            f"--map {text!r} is not FIELD=COLUMN.",
            "Example: --map name=Company, --map 'contacts.name={First Name} {Last Name}'.",
        )
    origin = f"--map {text}"
    pass_name, name = _split_target(target.strip(), origin)
    _check_field(pass_name, name, origin, None)
    return FieldMap.of(pass_name, name, source, origin)


def _split_target(target: str, origin: str) -> tuple[str | None, str]:
    """`contacts.name` → (contacts, name); `name` and `metadata.region` name no pass."""
    prefix, dot, rest = target.partition(".")
    if not dot or prefix == METADATA_PREFIX[:-1]:
        return None, target
    if prefix in PASSES:
        return prefix, rest
    raise UsageError(
        f"{origin}: there is no pass {prefix!r}.",
        _did_you_mean(prefix, PASSES) or f"Write PASS.FIELD with a pass of {', '.join(PASSES)}.",
    )


def _check_field(pass_name: str | None, name: str, origin: str, file: Path | None) -> None:
    """A map must name a field of its pass, or of some pass when it names none."""
    schemas = [COLLECTIONS[pass_name]] if pass_name is not None else list(COLLECTIONS.values())
    if any(has_field(schema, name) for schema in schemas):
        return
    known = sorted({known for schema in schemas for known in pass_fields(schema)})
    subject = f"{pass_name} have no field" if pass_name is not None else "no pass has a field"
    raise _map_error(
        file,
        f"{origin}: {subject} {name!r}.",
        _did_you_mean(name, known) or f"Map one of {', '.join(known)}, or metadata.<key>.",
    )


def _map_error(file: Path | None, message: str, remedy: str | None = None) -> BulkError:
    """A wrong map: an input error naming the map file, or a usage error of a `--map`."""
    if file is not None:
        return InputError(message, path=file, remedy=remedy)
    return UsageError(message, remedy)


# -- the map file ----------------------------------------------------------------------------


def read_map_file(path: Path) -> list[FieldMap]:
    """The maps of a `--map-file` TOML file: one table per pass."""
    document = _parse_toml(path)
    maps: list[FieldMap] = []
    for table, entries in document.items():
        if not isinstance(entries, dict):
            raise InputError(
                f"{table} = {entries!r} is outside any table.",
                path=path,
                remedy="Put each map under [customers], [contacts] or [onboardings].",
            )
        if table not in PASSES:
            raise InputError(
                f"[{table}]: there is no pass {table!r}.",
                path=path,
                remedy=_did_you_mean(table, PASSES)
                or f"Name the tables {', '.join(f'[{name}]' for name in PASSES)}.",
            )
        maps.extend(
            _table_map(path, table, key, shown, value) for key, shown, value in _entries(entries)
        )
    return maps


def _parse_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise InputError("does not exist.", path=path) from None
    except UnicodeDecodeError as error:
        raise InputError(
            f"is not UTF-8 text (byte 0x{error.object[error.start]:02X}).",
            path=path,
            remedy="Save it as UTF-8.",
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise _toml_error(path, str(error)) from None


def _toml_error(path: Path, text: str) -> InputError:
    """tomllib's message as one line with the file, line and column it names."""
    match = _TOML_POSITION.match(text)
    reason, line, column = match.groups() if match else (text, None, None)
    where = f" at column {column}" if column is not None else ""
    remedy = (
        "A key is given twice: keep one map per field."
        if reason.startswith("Cannot overwrite")
        else 'Quote column names and templates: name = "Company name".'
    )
    return InputError(
        f"is not valid TOML{where}: {reason[:1].lower()}{reason[1:]}.",
        path=path,
        line=int(line) if line is not None else None,
        remedy=remedy,
    )


def _entries(entries: Mapping[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """A table's (field, key as written, value), with `metadata.key = …` (which TOML nests)
    read as `"metadata.key"`."""
    for key, value in entries.items():
        if key == METADATA_PREFIX[:-1] and isinstance(value, dict) and "column" not in value:
            for metadata_key, metadata_value in value.items():
                name = METADATA_PREFIX + metadata_key
                yield name, name, metadata_value
        else:
            yield key, f'"{key}"' if "." in key else key, value


def _table_map(path: Path, table: str, key: str, shown: str, value: Any) -> FieldMap:
    origin = f"[{table}] {shown}"
    _check_field(table, key, origin, path)
    if isinstance(value, str):
        return FieldMap.of(table, key, value, origin, path)
    if isinstance(value, dict):
        for name in value:
            if name not in _RULE_KEYS:
                raise InputError(
                    f"{origin}: has {name!r}, which a map does not take.",
                    path=path,
                    remedy=_did_you_mean(name, _RULE_KEYS) or "Give only column and values.",
                )
        if not isinstance(value.get("column"), str):
            raise InputError(
                f"{origin}: has no column.",
                path=path,
                remedy=f'Write {key} = {{ column = "Column", values = {{ … }} }}.',
            )
        values = _values(path, origin, value.get("values", {}), _parser(COLLECTIONS[table], key))
        return FieldMap.of(table, key, value["column"], origin, path, values)
    raise InputError(
        f"{origin}: is {value!r}, not a column name, a template or a table.",
        path=path,
        remedy=f'Write {key} = "Column", or {key} = {{ column = "Column", values = {{ … }} }}.',
    )


def _parser(schema: ObjectSchema, name: str) -> Parser | None:
    """The parser of a payload field (key columns and metadata keys take any text)."""
    if name not in schema.field_names() or name in KEY_COLUMNS:
        return None
    return cell_parser(schema.field(name), name)


def _values(path: Path, origin: str, table: Any, parse: Parser | None) -> dict[str, str | None]:
    """A `values` table, keyed for matching; a value the field cannot take is the map file's
    mistake, not every row's."""
    if not isinstance(table, dict):
        raise InputError(
            f"{origin}: values is {table!r}, not a table.",
            path=path,
            remedy='Write values = { Customer = "active", Lead = "onboarding" }.',
        )
    values: dict[str, str | None] = {}
    spelled: dict[str, str] = {}
    for text, value in table.items():
        if not isinstance(value, str | bool | int):
            raise InputError(
                f"{origin}: values gives {text!r} the value {value!r}; give text.", path=path
            )
        key = text.strip().casefold()
        if key in spelled:
            raise InputError(
                f"{origin}: values has both {spelled[key]!r} and {text!r}, which match the "
                "same cells (trimmed, ignoring case).",
                path=path,
                remedy="Keep one of them.",
            )
        spelled[key] = text
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        if shown and parse is not None:
            try:
                parse(shown)
            except CellError as error:
                raise InputError(
                    f"{origin}: values gives {text!r} the value {shown!r}, but {error.message}.",
                    path=path,
                    remedy="Give a value the API takes.",
                ) from None
        values[key] = shown or None
    return values


# -- one pass against one header -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Where one pass reads each field from, resolved once from a file's header and maps.

    A field without a map is read from its own column when the file has one; `metadata.<key>`
    columns each set one key of a customer's metadata (a map of the key wins).
    """

    schema: ObjectSchema
    header: tuple[str, ...]
    path: Path | None
    """Only improves the messages."""
    fields: dict[str, str]
    """Field (or key column) name → the cell it is read from (see `apply`), for those present."""
    labels: dict[str, str]
    """Mapped field → what a message names: its column, or its template (`shown`)."""
    metadata_keys: tuple[tuple[str, str], ...]
    """(key, cell) for every `metadata.<key>` column or map."""
    computed: tuple[tuple[str, FieldMap], ...]
    """(cell, map) for the templated and translated fields, filled in by `apply`."""
    unknown: tuple[str, ...]
    """Columns read by nothing, for one warning (read-only columns are ignored silently)."""

    @classmethod
    def build(
        cls,
        schema: ObjectSchema,
        header: Sequence[str],
        maps: Mapping[str, FieldMap] | None = None,
        path: Path | None = None,
    ) -> ColumnMap:
        """Resolve every field's column; a mapped column the file lacks is an error."""
        maps = maps or {}
        header = tuple(header)
        _check_columns(maps.values(), header, path)
        binder = _Binder(frozenset(header))
        fields = {
            name: cell
            for name in (*KEY_COLUMNS, *(field.name for field in payload_fields(schema)))
            if (cell := binder.bind(name, maps.get(name))) is not None
        }
        metadata_keys = _metadata_keys(header, maps, binder) if has_metadata(schema) else {}
        read = {*fields.values(), *metadata_keys.values()}
        read |= {column for rule in maps.values() for column in rule.columns}
        columns = cls(
            schema,
            header,
            path,
            fields,
            binder.labels,
            tuple(metadata_keys.items()),
            tuple(binder.computed),
            _unknown_columns(schema, header, read),
        )
        columns._check_required()
        return columns

    def get(self, name: str) -> str | None:
        """The cell `name` is read from, or None when the source has none."""
        return self.fields.get(name)

    def shown(self, name: str) -> str:
        """The column a message about `name` should name: its own (or its template), else
        the field's."""
        return self.labels.get(name, name)

    def apply(self, cells: Mapping[str, str | None]) -> Mapping[str, str | None]:
        """A row's cells with its templated and translated fields' texts: the mapping every
        `get` cell is read from (the row's own cells when every map is a plain column)."""
        if not self.computed:
            return cells
        texts = dict(cells)
        for cell, rule in self.computed:
            texts[cell] = rule.read(cells)
        return texts

    @property
    def warning(self) -> str | None:
        """The one warning about unknown columns, or None."""
        if not self.unknown:
            return None
        where = f"{self.path.name}: " if self.path is not None else f"{self.schema.collection}: "
        names = ", ".join(repr(column) for column in self.unknown)
        plural = "s" if len(self.unknown) > 1 else ""
        return f"{where}ignoring unknown column{plural} {names}."

    def _check_required(self) -> None:
        is_customer = self.schema is CUSTOMER
        required = ["external_id"] if is_customer else []
        required += [field.name for field in payload_fields(self.schema) if field.required]
        for name in required:
            if name not in self.fields:
                message = f"has no {name!r} column, and {self.schema.collection} need one."
                raise InputError(
                    self._subject(message), path=self.path, remedy=self._map_remedy(name)
                )
        if not is_customer and not (
            "customer_external_id" in self.fields or "customer_id" in self.fields
        ):
            raise InputError(
                self._subject(
                    "has neither a 'customer_external_id' nor a 'customer_id' column, and "
                    f"{self.schema.collection} need one of them."
                ),
                path=self.path,
                remedy=self._map_remedy("customer_external_id"),
            )

    def _subject(self, message: str) -> str:
        """Messages start with a verb after the file name; without one, name the source."""
        return (
            message if self.path is not None else f"The {self.schema.collection} source {message}"
        )

    def _map_remedy(self, name: str) -> str:
        similar = [column for column in self.header if _normalised(column) == name]
        if similar:
            return f"Read it from column {similar[0]!r} with --map {name}={similar[0]}."
        return f"Add the column, or read {name} from another column with --map {name}=COLUMN."


@dataclass
class _Binder:
    """Decides the cell each field is read from while `ColumnMap.build` walks the fields."""

    header: frozenset[str]
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    """Mapped field → its column or template (an unmapped field's label is its name)."""
    computed: list[tuple[str, FieldMap]] = dataclasses.field(default_factory=list)

    def bind(self, name: str, rule: FieldMap | None) -> str | None:
        """The cell `name` is read from: its map's column, a computed cell, its own column
        when the file has it, or None."""
        if rule is None:
            return name if name in self.header else None
        self.labels[name] = rule.source
        if rule.is_plain:
            return rule.source
        self.computed.append((COMPUTED + name, rule))
        return COMPUTED + name


def _metadata_keys(
    header: Sequence[str], maps: Mapping[str, FieldMap], binder: _Binder
) -> dict[str, str]:
    """metadata key → cell, from `metadata.<key>` columns and maps (a map wins)."""
    keys = {
        column[len(METADATA_PREFIX) :]: column
        for column in header
        if column.startswith(METADATA_PREFIX) and len(column) > len(METADATA_PREFIX)
    }
    for name, rule in maps.items():
        cell = binder.bind(name, rule) if name.startswith(METADATA_PREFIX) else None
        if cell is not None:
            keys[name[len(METADATA_PREFIX) :]] = cell
    return keys


def _unknown_columns(
    schema: ObjectSchema, header: Sequence[str], read: set[str]
) -> tuple[str, ...]:
    """Columns nothing reads: not mapped, not a field's own, not read-only, not metadata."""
    known = read | READ_ONLY_COLUMNS | set(KEY_COLUMNS) | set(pass_fields(schema))
    metadata = has_metadata(schema)
    return tuple(
        column
        for column in header
        if column not in known and not (metadata and column.startswith(METADATA_PREFIX))
    )


def _check_columns(maps: Iterable[FieldMap], header: tuple[str, ...], path: Path | None) -> None:
    """Every column a map reads is in the header; else the closest one is named."""
    for rule in maps:
        for column in rule.columns:
            if column in header:
                continue
            message = f"has no column {column!r} ({rule.described})."
            remedy = _did_you_mean(column, header)
            if remedy is None:
                shown = ", ".join(repr(name) for name in header[:_SHOWN_COLUMNS])
                more = ", …" if len(header) > _SHOWN_COLUMNS else ""
                remedy = f"Its columns are {shown}{more}."
                if rule.pass_name is None:
                    remedy += (
                        f" A map without a pass applies to every pass that has {rule.field}; "
                        f"write PASS.{rule.field}=… to map it for one pass."
                    )
            if path is None:
                message = f"The source {message}"
            raise InputError(message, path=path, remedy=remedy)


def _normalised(column: str) -> str:
    return re.sub(r"[\s\-]+", "_", column.strip().lower())
