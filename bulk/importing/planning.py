"""Validate-first: read every source row, check it, and record the plan in the checkpoint.

One pipeline, once per row and in this order: the source yields a record of cells
(`sources`); the record becomes a planned row or a problem (`rows`, which parses each cell
with `cells`); the planned row is checked against the rest of the source (duplicate keys) and
compared with what the checkpoint holds (unchanged? its customer known?); and the outcome is
stored. Nothing is sent here. Each valid row lands in the checkpoint as `pending` (to create or
to update), `done` (unchanged since it was last synced) or `skipped` (its customer is invalid);
each invalid row lands in `invalid_rows` with its line and every problem it has (its cells',
a duplicate key, a customer invalid or nowhere to be found), replacing that pass's invalid
rows of the plan before (a pass's invalid rows are always its latest plan's). Files stream in
batches, so memory stays flat however large the source; what the planner remembers of the
whole source (each key's first line, each slug's, the valid customers) is kept in `KeyLines`,
25 to 40 bytes a key instead of ~250, looked up a batch at a time. Planning polls a stop check every
`CHECK_EVERY` records, so a Ctrl-C or SIGTERM while planning a large file takes effect at once:
the batch being planned is dropped (nothing of it was stored) and the run stays resumable.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bulk.checkpoint import Checkpoint, InvalidRow, KnownRow, PlannedRecord, Run, planned_row
from bulk.errors import InputError
from bulk.importing.key_lines import KeyLines, LineLookup
from bulk.importing.mapping import NO_MAPPING, SourceMapping
from bulk.importing.rows import Issue, PlannedRow, RowPlanner, RowProblem, predicted_slug
from bulk.importing.sources import Source, SourceFile, SourceRecord, open_source
from bulk.schema import CUSTOMER, ONBOARDING, canonical_json, now_timestamp, text_digest
from bulk.settings import PASSES, pass_order

BATCH_ROWS = 20_000
CODE_SEPARATOR = ";"
MESSAGE_SEPARATOR = "; "
"""A row with several problems is one line of the errors file: its codes and its messages
joined, in the same order."""
CHECK_EVERY = 1_000
"""Records planned between two polls of the stop check (cheap: an attribute test)."""
_CELLS_ENCODER = json.JSONEncoder(ensure_ascii=False)
"""Every row's source cells as JSON, with one encoder (`json.dumps` builds one a call)."""

StopCheck = Callable[[], None]
"""Raises (`RunInterrupted`) when the run must stop; returns otherwise."""


def _keep_going() -> None:
    """The stop check of a plan nobody can interrupt."""


@dataclass(frozen=True)
class PlanOptions:
    """The import options that shape the plan, and nothing else."""

    mapping: SourceMapping = NO_MAPPING
    """The `--map` and `--map-file` maps."""
    encoding: str | None = None
    force: bool = False
    """Plan done, unchanged rows to be sent again."""
    passes: tuple[str, ...] = PASSES
    delimiter: str | None = None
    """CSV delimiter (`--delimiter`); None: detected from the header."""


@dataclass
class OpenSource:
    file: SourceFile
    source: Source
    planner: RowPlanner


@dataclass
class PlanOutcome:
    warnings: list[str] = field(default_factory=list)
    invalid_by_pass: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, Counter[str]] = field(default_factory=dict)
    """Per pass, what each valid row needs: create, update, resend, unchanged or skipped."""

    @property
    def invalid(self) -> int:
        return sum(self.invalid_by_pass.values())


def open_sources(files: Sequence[SourceFile], options: PlanOptions) -> list[OpenSource]:
    """Open every source and check its header before any row is read (file errors first)."""
    opened = []
    for file in sorted(files, key=lambda f: pass_order(f.pass_name)):
        if file.pass_name not in options.passes:
            continue
        source = open_source(file, encoding=options.encoding, delimiter=options.delimiter)
        planner = RowPlanner(file.pass_name, source.columns, options.mapping, path=file.shown_path)
        _check_list_columns(source, planner)
        opened.append(OpenSource(file, source, planner))
    return opened


LIST_FIELDS = frozenset({"tags", "labels"})
"""The only fields a list-typed column may feed (the API's arrays of strings)."""


def _check_list_columns(source: Source, planner: RowPlanner) -> None:
    """Refuse a list column that feeds anything but `tags`/`labels`: its text would be sent
    as, say, the name `["List","Name"]`."""
    feeds = {column: field for field, column in planner.column_map.fields.items()}
    for column, dtype in source.list_columns.items():
        if feeds.get(column) not in LIST_FIELDS:
            raise InputError(
                f"has type {dtype}, a list; only tags and labels can hold lists.",
                path=source.shown_path,
                column=column,
                remedy="Make the column text, or map it to tags or labels with --map.",
            )


def fingerprint(sources: Sequence[OpenSource], options: PlanOptions) -> str:
    """Changes whenever a source file or an option that shapes the plan changes."""
    parts: list[Any] = [options.mapping.canonical(), options.encoding, options.force]
    if options.delimiter is not None:  # absent before --delimiter: old fingerprints still match
        parts.append(options.delimiter)
    for opened in sources:
        file = opened.file
        stat = file.path.stat()
        where = str(file.path.resolve()) + (f"#{file.sheet}" if file.sheet else "")
        parts.append([file.pass_name, where, stat.st_size, stat.st_mtime_ns])
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()


def plan_import(
    checkpoint: Checkpoint,
    run: Run,
    sources: Sequence[OpenSource],
    options: PlanOptions,
    *,
    record: bool = True,
    check: StopCheck = _keep_going,
) -> PlanOutcome:
    """Record every source row's plan in the checkpoint for this run.

    With `record=False` (a dry run) valid rows are only tallied in `PlanOutcome.kinds`;
    invalid rows are still recorded, for the errors file. `check` is called every
    `CHECK_EVERY` records and may raise to stop planning between two batches' transactions.
    """
    outcome = PlanOutcome()
    checkpoint.forget_invalid([opened.file.pass_name for opened in sources])
    customers = _SourceCustomers()
    for opened in sources:
        outcome.warnings.extend(opened.source.warnings)
        if opened.planner.warning is not None:
            outcome.warnings.append(opened.planner.warning)
        planner = _PassPlanner(checkpoint, run, opened, options.force, customers, check)
        kinds = outcome.kinds.setdefault(opened.file.pass_name, Counter())
        outcome.invalid_by_pass[opened.file.pass_name] = planner.plan_all(
            kinds if not record else None
        )
        outcome.warnings.extend(opened.planner.undocumented_warnings)
    return outcome


@dataclass
class _SourceCustomers:
    """The customers pass as the children's passes see it (customers are planned first)."""

    valid: KeyLines = field(default_factory=KeyLines)
    """Valid customer keys of this source and their lines (the customers pass's `seen.valid`)."""
    invalid: KeyLines = field(default_factory=KeyLines)
    """Invalid customer keys of this source and their first lines."""


class _SeenKeys(LineLookup):
    """Every key met in one file and its first line, the keys of valid rows apart: for the
    customers pass they are `_SourceCustomers.valid`, kept once."""

    def __init__(self, valid: KeyLines) -> None:
        self.valid = valid
        self.invalid = KeyLines()
        """Keys first met on an invalid row."""

    def get(self, key: str) -> int | None:
        line = self.valid.get(key)
        return line if line is not None else self.invalid.get(key)

    def add_invalid(self, key: str, line: int) -> None:
        """An invalid row's key, unless an earlier row had it."""
        if key not in self.valid:
            self.invalid.setdefault(key, line)

    def start_batch(self, keys: Sequence[str]) -> None:
        self.valid.start_batch(keys)
        self.invalid.start_batch(keys)


class _PassPlanner:
    """Plans one source file, batch by batch."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        run: Run,
        opened: OpenSource,
        force: bool,
        customers: _SourceCustomers,
        check: StopCheck = _keep_going,
    ) -> None:
        self.checkpoint = checkpoint
        self.check = check
        self.run = run
        self.opened = opened
        self.pass_name = opened.file.pass_name
        self.force = force
        self.customers = customers
        is_customers = self.pass_name == CUSTOMER.collection
        self.seen = _SeenKeys(customers.valid if is_customers else KeyLines())
        """Every key met in this file (valid or not) and its first line."""
        self.slugs = KeyLines()
        """Customers: every valid row's given or predicted slug and its line."""

    def plan_all(self, tally: Counter[str] | None = None) -> int:
        """Plan every record; with a `tally`, count the planned rows instead of storing them."""
        invalid = 0
        for records in self.opened.source.batches(BATCH_ROWS):
            planned, problems = self._plan_records(records)
            stored, kinds, orphans = self._compare_with_checkpoint(planned, store=tally is None)
            rows = [
                self._invalid(invalid.problem, invalid.key)
                for invalid in self._with_customer_problems(problems)
            ]
            rows += orphans
            self._store(stored, kinds, rows, tally)
            invalid += len(rows)
        return invalid

    # -- the pipeline, one step a method

    def _plan_records(
        self, records: Sequence[SourceRecord]
    ) -> tuple[list[PlannedRow], list[_Invalid]]:
        """Records → row plans checked against the rest of the source, and the invalid rows
        with every problem the source alone shows."""
        results: list[PlannedRow | RowProblem] = []
        for index, record in enumerate(records):
            if index % CHECK_EVERY == 0:
                self.check()
            results.append(self.opened.planner.plan(record))
        self._start_batch(results)
        planned: list[PlannedRow] = []
        problems: list[_Invalid] = []
        for result in results:
            problem = (
                self._also_duplicate(result)
                if isinstance(result, RowProblem)
                else self._duplicate(result)
            )
            if problem is None:
                assert isinstance(result, PlannedRow)
                self.seen.valid.setdefault(result.key, result.line)
                if result.slug is not None:
                    self.slugs.setdefault(result.slug, result.line)
                planned.append(result)
            else:
                key = result.key if isinstance(result, PlannedRow) else self._cell_key(problem)
                if key is not None:  # a later row with this key is a duplicate all the same
                    self.seen.add_invalid(key, problem.line)
                problems.append(_Invalid(problem, key))
        return planned, problems

    def _start_batch(self, results: Sequence[PlannedRow | RowProblem]) -> None:
        """Look up at once every key, slug and customer the batch's rows name (`KeyLines`)."""
        keys: list[str] = []
        slugs: list[str] = []
        parents: list[str] = []
        parent_column = self.opened.planner.column_map.get("customer_external_id")
        for result in results:
            key: str | None
            if isinstance(result, PlannedRow):
                key, slug, parent = result.key, result.slug, result.customer_key
            else:
                key, slug = self._cell_key(result), self._cell_slug_text(result)[0]
                parent = _cell_text(result, parent_column)
            if key is not None:
                keys.append(key)
            if slug:
                slugs.append(slug)
            if parent is not None:
                parents.append(parent)
        self.seen.start_batch(keys)
        if self.pass_name == CUSTOMER.collection:
            self.slugs.start_batch(slugs)
            self.customers.invalid.start_batch(keys)
        else:
            self.customers.valid.start_batch(parents)
            self.customers.invalid.start_batch(parents)

    def _with_customer_problems(self, problems: list[_Invalid]) -> list[_Invalid]:
        """Invalid children say too what is wrong with their customer: invalid itself, or
        nowhere to be found (the problems a valid child is skipped or refused for)."""
        column = self.opened.planner.column_map.get("customer_external_id")
        if self.pass_name == CUSTOMER.collection or column is None:
            return problems
        parents = {
            invalid: parent
            for invalid in problems
            if (parent := invalid.problem.cells.get(column)) is not None
            and parent not in self.customers.valid
        }
        known = self._known_to_checkpoint(
            {parent for parent in parents.values() if parent not in self.customers.invalid}
        )
        with_issues = []
        for invalid in problems:
            parent = parents.get(invalid)
            issue = None if parent is None else self._customer_issue(column, parent, known)
            if issue is None:
                with_issues.append(invalid)
            else:
                with_issues.append(_Invalid(_with_issue(invalid.problem, issue), invalid.key))
        return with_issues

    def _customer_issue(self, column: str, parent: str, known: set[str]) -> Issue | None:
        """What is wrong with a customer that is not among the source's valid ones."""
        if parent in self.customers.invalid:
            line = self.customers.invalid[parent]
            return Issue(column, "customer_invalid", _invalid_customer(parent, line))
        if parent not in known:
            return Issue(column, "unknown_customer", _unknown_customer(parent))
        return None

    def _compare_with_checkpoint(
        self, planned: Sequence[PlannedRow], *, store: bool = True
    ) -> tuple[list[PlannedRecord], list[str], list[InvalidRow]]:
        """Row plans → the rows to store, each valid row's kind (what a dry run reports), and
        the rows whose customer is nowhere to be found.

        Without `store` (a dry run's tally) only the kinds are kept: no cells' JSON, and no
        payload hash but for a row the checkpoint knows (unchanged or changed?)."""
        stored: list[PlannedRecord] = []
        kinds: list[str] = []
        orphans: list[InvalidRow] = []
        known_parents = self._checkpoint_parents(planned)
        existing = self.checkpoint.existing(self.pass_name, [row.key for row in planned])
        now = now_timestamp()
        for row in planned:
            known = existing.get(row.key)
            payload = canonical_json(row.payload) if store or known is not None else None
            digest = text_digest(payload) if payload is not None else None
            state, action, code, message = self._state(row, digest, known, known_parents)
            if state == "invalid":
                assert code is not None and message is not None
                problem = _problem(row, "customer_external_id", code, message)
                orphans.append(self._invalid(problem, row.key))
                continue
            kinds.append(_kind(state, known))
            if store:
                assert payload is not None and digest is not None
                stored.append(
                    planned_row(
                        self.run,
                        self.pass_name,
                        row.key,
                        row.line,
                        self.opened.file.label,
                        payload,
                        _CELLS_ENCODER.encode(row.cells),
                        payload_hash=digest,
                        state=state,
                        action=action,
                        customer_key=row.customer_key,
                        customer_ref=row.customer_ref,
                        error_code=code,
                        error_message=message,
                        updated_at=now,
                    )
                )
        return stored, kinds, orphans

    def _store(
        self,
        stored: list[PlannedRecord],
        kinds: list[str],
        invalid: list[InvalidRow],
        tally: Counter[str] | None,
    ) -> None:
        """Store a batch in one transaction; with a `tally`, count its planned rows' kinds
        instead."""
        with self.checkpoint.transaction():
            if tally is None:
                self.checkpoint.upsert_planned(stored)
            else:
                tally.update(kinds)
            self.checkpoint.record_invalid(self.run, invalid)

    # -- the checks

    def _duplicate(self, row: PlannedRow) -> RowProblem | None:
        """A problem when this key, or this customer's slug, already appeared in the file."""
        seen = row.key in self.seen
        if row.slug is not None and not seen and row.slug in self.slugs:
            return self._same_slug(row)
        if seen:
            message = self._duplicate_message(row.key)
            return _problem(row, "external_id", "duplicate_key", message)
        return None

    def _also_duplicate(self, problem: RowProblem) -> RowProblem:
        """An invalid row whose external_id appeared before is a duplicate as well; a customer
        whose slug is taken by an earlier row collides as well."""
        key = self._cell_key(problem)
        if key is not None and key in self.seen:
            message = self._duplicate_message(key)
            return _with_issue(problem, Issue("external_id", "duplicate_key", message))
        if self.pass_name == CUSTOMER.collection:
            slug_issue = self._cell_slug(problem)
            if slug_issue is not None:
                return _with_issue(problem, slug_issue)
        return problem

    def _duplicate_message(self, key: str) -> str:
        mapped = self.opened.planner.column_map.get("external_id") is not None
        if self.pass_name == ONBOARDING.collection and not mapped:
            return (
                f"a second onboarding for customer '{key}' (first on line {self.seen[key]}); "
                "add an external_id column to import several onboardings per customer"
            )
        return f"external_id '{key}' already appears on line {self.seen[key]}"

    def _cell_key(self, problem: RowProblem) -> str | None:
        """An invalid row's external_id as its cell says, read from the mapped column."""
        return self.opened.planner.external_id_of(problem.cells)

    def _same_slug(self, row: PlannedRow) -> RowProblem:
        """The later of two customers that would get one slug: the API would refuse it."""
        issue = self._slug_issue(row.slug or "", "slug" in row.payload, row.payload["name"])
        return _problem(row, issue.column or "slug", issue.code, issue.message)

    def _slug_issue(self, slug: str, given: bool, name: str) -> Issue:
        first = self.slugs[slug]
        if given:
            message = f"slug '{slug}' is also the slug of line {first}; give each its own"
            return Issue("slug", "duplicate_slug", message)
        name_column = self.opened.planner.column_map.shown("name")
        message = (
            f"{name_column} {name!r} gives the slug '{slug}' that line {first} gets too (the "
            "API derives slugs from names); add a slug column to give each customer its own"
        )
        return Issue(name_column, "duplicate_slug", message)

    def _cell_slug(self, problem: RowProblem) -> Issue | None:
        """An invalid customer whose slug cell, or the slug its name cell predicts, is an
        earlier valid row's: the collision is one more problem to fix in the same round."""
        slug, given, name = self._cell_slug_text(problem)
        if not slug or slug not in self.slugs:
            return None
        return self._slug_issue(slug, given, name or "")

    def _cell_slug_text(self, problem: RowProblem) -> tuple[str | None, bool, str | None]:
        """An invalid customer's slug as its cells give or predict it, whether it was given,
        and its name; (None, False, None) for the other passes."""
        if self.pass_name != CUSTOMER.collection:
            return None, False, None
        columns = self.opened.planner.column_map
        given = _cell(problem, columns.get("slug"))
        name = _cell(problem, columns.get("name"))
        slug = given or (predicted_slug(name) if name is not None else None)
        return slug, given is not None, name

    def _checkpoint_parents(self, rows: Sequence[PlannedRow]) -> set[str]:
        """Customer keys these rows name that only the checkpoint knows (an earlier run's)."""
        unknown = {
            row.customer_key
            for row in rows
            if row.customer_key is not None
            and row.customer_key not in self.customers.valid
            and row.customer_key not in self.customers.invalid
        }
        return self._known_to_checkpoint(unknown)

    def _known_to_checkpoint(self, customer_keys: set[str]) -> set[str]:
        """The keys the checkpoint knows as rows, or as invalid rows — which, like this
        source's invalid customers, make their valid children skipped (`customers.invalid`)."""
        if not customer_keys:
            return set()
        keys = sorted(customer_keys)
        known = set(self.checkpoint.existing(CUSTOMER.collection, keys))
        invalid = self.checkpoint.invalid_lines(CUSTOMER.collection, keys)
        for key, line in invalid.items():
            if key not in known:
                self.customers.invalid.setdefault(key, line)
        return known | set(invalid)

    def _state(
        self,
        row: PlannedRow,
        digest: str | None,
        existing: KnownRow | None,
        known_parents: set[str],
    ) -> tuple[str, str | None, str | None, str | None]:
        """(state, action, error code, error message) for a valid row."""
        parent = row.customer_key
        if parent is not None and parent not in self.customers.valid:
            if parent in self.customers.invalid:
                line = self.customers.invalid[parent]
                return "skipped", "skipped", "customer_invalid", _invalid_customer(parent, line)
            if parent not in known_parents:
                return "invalid", None, "unknown_customer", _unknown_customer(parent)
        if existing is None:
            return "pending", None, None, None
        if existing.state == "done" and existing.synced_hash == digest and not self.force:
            return "done", None if self.run.resumed else "unchanged", None, None
        return "pending", None, None, None

    def _invalid(self, problem: RowProblem, key: str | None) -> InvalidRow:
        """The row as the checkpoint keeps it: one line of the errors file, every problem in
        it (codes joined by `;`, messages by `; `), its cells in their source order."""
        if self.pass_name == CUSTOMER.collection and key is not None:
            self.customers.invalid.setdefault(key, problem.line)
        issues = problem.issues
        return InvalidRow(
            pass_name=self.pass_name,
            line=problem.line,
            source=self.opened.file.label,
            key=key,
            column=problem.column,
            code=CODE_SEPARATOR.join(issue.code for issue in issues),
            message=MESSAGE_SEPARATOR.join(issue.message for issue in issues),
            cells_json=json.dumps(problem.cells, ensure_ascii=False),
        )


def _kind(state: str, known: KnownRow | None) -> str:
    """What the row needs from the API, as a dry run reports it."""
    if known is not None and known.has_request:
        return "resend"
    if state == "pending":
        return "update" if known is not None and known.pivotal_id is not None else "create"
    return "unchanged" if state == "done" else state


def _problem(row: PlannedRow, column: str, code: str, message: str) -> RowProblem:
    return RowProblem(row.pass_name, row.line, column, code, message, row.cells)


def _cell(problem: RowProblem, column: str | None) -> str | None:
    """A cell of an invalid row as its source has it, trimmed; None when empty or absent."""
    value = problem.cells.get(column) if column is not None else None
    return (value.strip() or None) if value is not None else None


def _cell_text(problem: RowProblem, column: str | None) -> str | None:
    """A cell of an invalid row exactly as its source has it."""
    return problem.cells.get(column) if column is not None else None


def _with_issue(problem: RowProblem, issue: Issue) -> RowProblem:
    return replace(problem, more=(*problem.more, issue))


def _invalid_customer(parent: str, line: int) -> str:
    return f"customer '{parent}' is invalid (line {line})"


def _unknown_customer(parent: str) -> str:
    return (
        f"customer_external_id '{parent}' is neither in the customers source nor known to the "
        "checkpoint"
    )


@dataclass(frozen=True, eq=False)
class _Invalid:
    """A row the source alone shows invalid, and its key (if its cells give one)."""

    problem: RowProblem
    key: str | None
