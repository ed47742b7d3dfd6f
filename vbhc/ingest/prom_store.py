"""PROM answers into prom_questionnaires: a file's staged item rows packed into one row per questionnaire.

A PROM file stays item rows (cycle, instrument, timepoint, item, value, completed date) and is staged and checked
as every file is (vbhc.ingest.stage: duplicate items, references). Then, set-based in the database:
- each new item gets its position in prom_items (never changed later: a catalog update moves no answer); an
  instrument with more items than a questionnaire row has answer columns is refused;
- the staged rows are packed into one row per questionnaire (GROUP BY) in a temporary table, which also finds
  the questionnaires whose rows give different completed dates (refused: a questionnaire has one date);
- the packed rows are upserted answer by answer: a new answer replaces the stored one, an answer the file does
  not give keeps it (COALESCE per column), so a questionnaire split over chunks or files ends up whole.

The import's counts stay counts of answers (item rows), as the user gave them: inserted (no stored answer),
updated (another value, or the questionnaire's date changed), unchanged. A questionnaire's batch_id moves to this
import only when its answers or date change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import (
    Column,
    Connection,
    Date,
    Integer,
    MetaData,
    Table,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite

from vbhc import models
from vbhc.ingest import stage as staging
from vbhc.ingest.problems import ImportReport, Rule
from vbhc.ingest.read import Source
from vbhc.ingest.tables import TableSpec

#: The column of a PROM file that gives the questionnaire's date.
COMPLETED_DATE = "completed_date"
_KEYS = ("cycle_id", "instrument", "timepoint")


#: A questionnaire as packed from a file's item rows (the rows of one chunk, or of the whole file): its key, how
#: many item rows gave it, how many of them a date, the earliest and latest of those dates, its answers by position.
PACKED = Table(
    "prom_packed",
    MetaData(),
    *[Column(k, models.PromQuestionnaire.c[k].type) for k in _KEYS],
    Column("n_rows", Integer),
    Column("dated", Integer),
    Column("min_date", Date),
    Column("max_date", Date),
    *[Column(c, models.PromQuestionnaire.c[c].type) for c in models.PROM_ANSWER_COLUMNS],
)
#: PACKED as an import table: staged as any file's rows are (vbhc.ingest.stage.stage_table and load), each packed
#: questionnaire numbered by its first item row.
PACKED_SPEC = TableSpec("prom_packed", PACKED, _KEYS, tuple(c.name for c in PACKED.columns), (), {})


def packed_table(suffix: str = "") -> Table:
    """A temporary table of packed questionnaires (PACKED), with the row number of each one's first item row:
    staging.stage_table's shape, so that staging.load fills it."""
    columns = [Column("row_no", Integer), *[Column(c.name, c.type) for c in PACKED.columns]]
    return Table(staging.STAGE_PREFIX + "prom_packed" + suffix, MetaData(), *columns, prefixes=["TEMPORARY"])


def assign_positions(conn: Connection, source: Source, stage: Table, report: ImportReport) -> None:
    """Give each staged item that prom_items does not hold yet the next free position of its instrument, in the
    order of the file; an instrument that would pass PROM_ANSWER_SLOTS is refused in one line."""
    i = models.PromItem.__table__
    known = select(literal(1)).where(i.c.instrument == stage.c.instrument, i.c.item == stage.c.item).exists()
    new = conn.execute(
        select(stage.c.instrument, stage.c.item)
        .where(~known)
        .group_by(stage.c.instrument, stage.c.item)
        .order_by(func.min(stage.c.row_no))
    ).all()
    if not new:
        return
    instruments = sorted({instrument for instrument, _ in new})
    last = select(i.c.instrument, func.max(i.c.position)).where(i.c.instrument.in_(instruments))
    taken = dict(conn.execute(last.group_by(i.c.instrument)).all())
    rows, refused = [], set()
    for instrument, item in new:
        position = taken[instrument] = (taken.get(instrument) or 0) + 1
        rows.append({"instrument": instrument, "item": item, "position": position})
    for instrument in instruments:
        if taken[instrument] > models.PROM_ANSWER_SLOTS:
            refused.add(instrument)
            count, limit = taken[instrument], models.PROM_ANSWER_SLOTS
            rule = Rule("read.prom_too_many_items", instrument=instrument, count=count, limit=limit)
            report.add(source.problem(rule, None, "instrument", instrument))
    if not refused:
        conn.execute(i.insert(), rows)


def pack(conn: Connection, stage: Table) -> Table:
    """The staged item rows as one row per questionnaire, in a temporary table (packed_table)."""
    packed = packed_table()
    staging.create(conn, packed)
    i = models.PromItem.__table__
    s = stage.c
    date = s[COMPLETED_DATE]
    answers = [func.max(case((i.c.position == n, s.value))) for n in range(1, models.PROM_ANSWER_SLOTS + 1)]
    query = (
        select(
            func.min(s.row_no),
            *[s[k] for k in _KEYS],
            func.count(),
            func.count(date),
            func.min(date),
            func.max(date),
            *answers,
        )
        .join(i, and_(i.c.instrument == s.instrument, i.c.item == s.item))
        .group_by(*[s[k] for k in _KEYS])
    )
    conn.execute(packed.insert().from_select([c.name for c in packed.columns], query))
    return packed


def check_dates(conn: Connection, source: Source, stage: Table, packed: Table, report: ImportReport) -> None:
    """One problem per questionnaire whose item rows give different completed dates (an empty one included): at
    its first row that differs from the questionnaire's first row, naming both rows and both dates."""
    p = packed.c
    split = _split_dates(packed)
    if not dates_differ(conn, packed):
        return
    first, later = stage.alias("stage_first"), stage.alias("stage_later")
    same = and_(*[later.c[k] == p[k] for k in _KEYS])
    differs = (
        select(p.row_no.label("first_row"), func.min(later.c.row_no).label("row_no"))
        .join(later, same)
        .where(split, later.c[COMPLETED_DATE].is_distinct_from(first.c[COMPLETED_DATE]))
        .join(first, first.c.row_no == p.row_no)
        .group_by(p.row_no)
        .subquery()
    )
    count = conn.execute(select(func.count()).select_from(differs)).scalar_one()
    shown = (
        select(differs.c.row_no, later.c[COMPLETED_DATE], differs.c.first_row, first.c[COMPLETED_DATE])
        .join(later, later.c.row_no == differs.c.row_no)
        .join(first, first.c.row_no == differs.c.first_row)
        .order_by(differs.c.row_no)
        .limit(max(report.room, 0))
    )
    rows = conn.execute(shown).all()
    for row, value, first_row, seen in rows:
        if seen is None:
            rule = Rule("read.prom_dates_differ_empty", row=int(first_row))
        else:
            rule = Rule("read.prom_dates_differ", row=int(first_row), seen=_iso(seen))
        report.add(source.problem(rule, int(row), COMPLETED_DATE, "empty" if value is None else _iso(value)))
    report.problem_count += count - len(rows)


def _split_dates(packed: Table):
    p = packed.c
    return or_(p.min_date != p.max_date, and_(p.dated > 0, p.dated < p.n_rows))


def dates_differ(conn: Connection, packed: Table) -> bool:
    """Whether a packed questionnaire's item rows gave different completed dates (an empty one included)."""
    return conn.execute(select(literal(1)).select_from(packed).where(_split_dates(packed)).limit(1)).first() is not None


def _iso(value: object) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def upsert(
    conn: Connection, packed: Table, batch_id: int, date_given: bool, *, skip_row_triggers: bool = False
) -> tuple[int, int, int]:
    """Write the packed questionnaires answer by answer: (inserted, updated, unchanged) answers.

    `date_given`: whether the file has a completed_date column (without one, a stored date is kept).
    `skip_row_triggers` (PostgreSQL, once the references are checked): no per-row foreign-key trigger."""
    q = models.PromQuestionnaire
    p = packed.c
    answers = models.PROM_ANSWER_COLUMNS
    on = and_(*[q.c[k] == p[k] for k in _KEYS])
    total = conn.execute(select(func.coalesce(func.sum(p.n_rows), 0)).select_from(packed)).scalar_one()
    stored = conn.execute(select(literal(1)).select_from(q).limit(1)).first() is not None
    inserted, updated, unchanged = int(total), 0, 0
    if stored:
        redated = q.c.completed_date.is_distinct_from(p.max_date) if date_given else literal(False)

        def per_answer(condition) -> object:
            return sum((case((condition(c), 1), else_=0) for c in answers), literal(0))

        new = per_answer(lambda c: and_(p[c].is_not(None), q.c[c].is_(None)))
        changed = per_answer(lambda c: and_(p[c].is_not(None), q.c[c].is_not(None), or_(redated, p[c] != q.c[c])))
        kept = per_answer(lambda c: and_(p[c].is_not(None), q.c[c].is_not(None), ~redated, p[c] == q.c[c]))
        found = conn.execute(
            select(func.count(), func.sum(p.n_rows), func.sum(new), func.sum(changed), func.sum(kept)).select_from(
                packed.join(q, on)
            )
        ).one()
        if found[0]:
            inserted = int(total) - int(found[1]) + int(found[2])
            updated, unchanged = int(found[3]), int(found[4])
    dialect_insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    names = [*_KEYS, "completed_date", *answers, "batch_id"]
    # "WHERE true" keeps SQLite from reading ON CONFLICT as the join's ON (its documented parsing ambiguity)
    # in the order of the questionnaires' first rows in the file: the same ids whichever path packed them
    source = select(*[p[k] for k in _KEYS], p.max_date, *[p[c] for c in answers], literal(batch_id)).where(true())
    source = source.order_by(p.row_no)
    statement = dialect_insert(q).from_select(names, source)
    if stored:
        excluded = statement.excluded
        values = {c: func.coalesce(excluded[c], q.c[c]) for c in answers}
        change = [and_(excluded[c].is_not(None), excluded[c].is_distinct_from(q.c[c])) for c in answers]
        if date_given:
            values["completed_date"] = excluded.completed_date
            change.append(excluded.completed_date.is_distinct_from(q.c.completed_date))
        statement = statement.on_conflict_do_update(
            index_elements=list(_KEYS), set_={**values, "batch_id": excluded.batch_id}, where=or_(*change)
        )
    set_role = skip_row_triggers and conn.dialect.name == "postgresql"
    if set_role:
        conn.exec_driver_sql(staging._ROW_TRIGGERS_OFF)
    conn.execute(statement)
    if set_role:
        conn.exec_driver_sql(staging._ROW_TRIGGERS_ON)
    return inserted, updated, unchanged


class NeedsItemRows(Exception):
    """Packing in memory met what only the item rows can name (two dates in one questionnaire, a questionnaire
    listed apart on a first import's direct write): the caller sends the file through the staging path instead."""


class Packer:
    """A PROM file's valid chunks packed in memory, one row per questionnaire: the fast path of a file alone of
    its table in the batch, which stages no item row.

    Two ways to write them:
    - into a temporary table (PACKED), upserted afterwards answer by answer (prom_store.upsert);
    - with `batch_id` (SQLite, prom_questionnaires empty: a first import), straight into prom_questionnaires under
      that batch, with the ids the upsert would give (1, 2, ... in the order of the questionnaires' first rows).
      Its unique key refuses a questionnaire listed apart (IntegrityError) and two dates in one questionnaire
      raise NeedsItemRows: the caller takes these rows back (batch_id) and stages the file.

    A questionnaire that runs over a chunk's end is held back and joined with the next chunk's first one, so only
    a questionnaire listed apart is ever split. Each instrument's questionnaires are written with a statement of
    its own answer columns only (a01 .. its last position): SQLite binds every parameter of every row, and the
    demo's instruments use 6-30 of the 64 columns.

    Positions of new items are given in memory in the order of the file (written to prom_items by
    assign_positions once the file is read). What needs the item rows to be named (duplicate items, two dates in
    one questionnaire) sends the file through the staging path instead (vbhc.ingest.run), which names them."""

    def __init__(self, conn: Connection, batch_id: int | None = None):
        self.conn = conn
        i = models.PromItem.__table__
        rows = conn.execute(select(i.c.instrument, i.c.item, i.c.position)).all()
        self.positions: dict[tuple[str, str], int] = {(a, b): int(n) for a, b, n in rows}
        self.taken: dict[str, int] = {}
        for (instrument, _), n in self.positions.items():
            self.taken[instrument] = max(self.taken.get(instrument, 0), n)
        self.new: list[dict[str, object]] = []  # prom_items rows to write, in the order of the file
        self.too_many: set[str] = set()
        self.batch_id = batch_id
        self.next_id = 1  # the direct write's next questionnaire id (the table is empty)
        self.answers_written = 0  # item rows the direct write stored
        self.held: _Pieces | None = None  # the last questionnaire read, which the next chunk may continue
        self.held_items: np.ndarray | None = None  # the positions of held's items (a duplicate item across chunks)
        self.key_hashes: list[np.ndarray] = []  # a 64-bit hash of each written piece's key, for _split()
        self._any_split: bool | None = None
        self._statements: dict[tuple[str, int], str] = {}
        self._narrow: dict[int, tuple[Table, TableSpec]] = {}  # _narrowed's tables per answer width
        self.pieces = packed_table("_pieces")
        if batch_id is None:
            staging.create(conn, self.pieces)

    def _position(self, instrument: str, item: str) -> int:
        key = (instrument, item)
        if key not in self.positions:
            position = self.taken[instrument] = self.taken.get(instrument, 0) + 1
            self.positions[key] = position
            if position > models.PROM_ANSWER_SLOTS:
                self.too_many.add(instrument)
            else:
                self.new.append({"instrument": instrument, "item": item, "position": position})
        return self.positions[key]

    def write(self, valid: pd.DataFrame, rows: np.ndarray) -> None:
        """Pack one chunk's valid item rows (numbered by `rows`) and write its questionnaires, the last one held
        back for the next chunk (finish writes it)."""
        n = len(valid)
        if n == 0:
            return
        c_codes, c_values = _factorized(valid["cycle_id"])
        i_codes, i_values = _factorized(valid["instrument"])
        t_codes, t_values = _factorized(valid["timepoint"])
        combined = (c_codes.astype(np.int64) * len(i_values) + i_codes) * len(t_values) + t_codes
        q, _ = pd.factorize(combined)  # the chunk's questionnaires, in the order of their first rows
        count = int(q.max()) + 1
        first = np.empty(count, dtype=np.int64)
        first[q[::-1]] = np.arange(n - 1, -1, -1)
        item_codes, item_values = _factorized(valid["item"])
        pair_codes, pairs = pd.factorize(i_codes.astype(np.int64) * len(item_values) + item_codes)
        found = np.array(
            [
                self._position(str(i_values[p // len(item_values)]), str(item_values[p % len(item_values)]))
                for p in pairs
            ]
        )
        position = found[pair_codes]
        fits = position <= models.PROM_ANSWER_SLOTS  # the rest is refused (too_many)
        wide = np.full((count, len(models.PROM_ANSWER_COLUMNS)), np.nan)
        values = valid["value"].to_numpy(dtype=float)
        wide[q[fits], position[fits] - 1] = values[fits]
        _refuse_duplicate_items(q, position, wide, values, fits)
        dates = pd.to_datetime(valid[COMPLETED_DATE]).to_numpy(dtype="datetime64[ns]")
        has = ~np.isnat(dates)
        days = dates.view(np.int64)
        dated = np.bincount(q[has], minlength=count)
        low = np.full(count, np.iinfo(np.int64).max)
        high = np.full(count, np.iinfo(np.int64).min)
        np.minimum.at(low, q[has], days[has])
        np.maximum.at(high, q[has], days[has])
        pieces = _Pieces(
            # each questionnaire's key from the distinct values: no Python object for every item row's text
            _objects(c_values)[c_codes[first]],
            _objects(i_values)[i_codes[first]],
            _objects(t_values)[t_codes[first]],
            np.asarray(rows)[first].astype(np.int64),
            np.bincount(q, minlength=count),
            dated,
            low,
            high,
            wide,
        )
        held, self.held = self.held, None
        held_items, self.held_items = self.held_items, None
        last_items = position[q == count - 1]
        if held is not None:
            if held.key(-1) == pieces.key(0):
                if np.isin(position[q == 0], held_items).any():
                    raise NeedsItemRows  # an item both sides of the chunk's end give: the staged path names it
                pieces.absorb(held)
                if count == 1:  # the joined questionnaire is also this chunk's last one
                    last_items = np.concatenate([held_items, last_items])
            else:
                self._emit(held)
        self.held = pieces.take_last()
        self.held_items = last_items
        if len(pieces):
            self._emit(pieces)

    def finish(self) -> None:
        """Write the questionnaire held back at the last chunk's end."""
        held, self.held = self.held, None
        if held is not None:
            self._emit(held)

    def _emit(self, pieces: _Pieces) -> None:
        """Write packed questionnaires, one statement per instrument (its answer columns only)."""
        direct = self.batch_id is not None
        if direct and pieces.split_dates().any():
            raise NeedsItemRows  # the staged path names the rows with different dates
        ids = np.arange(self.next_id, self.next_id + len(pieces), dtype=np.int64)
        if direct:
            self.next_id += len(pieces)
            self.answers_written += int(pieces.n_rows.sum())
        else:
            keys = pd.DataFrame({"c": pieces.cycle_id, "i": pieces.instrument, "t": pieces.timepoint})
            self.key_hashes.append(pd.util.hash_pandas_object(keys, index=False).to_numpy())
        if self.conn.dialect.name != "sqlite":  # PostgreSQL: one COPY of every column (empty fields cost little)
            self._copy(pieces)
            return
        codes, instruments = pd.factorize(pieces.instrument)
        for code, instrument in enumerate(instruments):
            mine = np.flatnonzero(codes == code)
            width = min(self.taken.get(str(instrument), 0), models.PROM_ANSWER_SLOTS)
            answers = pieces.answers[mine, :width]
            shown = answers.astype(object)
            shown[np.isnan(answers)] = None
            if direct:
                dates = _iso_days(pieces.high[mine], pieces.dated[mine] > 0)
                head = [ids[mine], pieces.cycle_id[mine], pieces.instrument[mine], pieces.timepoint[mine], dates]
                tail = [np.full(len(mine), self.batch_id, dtype=object)]
            else:
                some = pieces.dated[mine] > 0
                head = [
                    pieces.row_no[mine],
                    pieces.cycle_id[mine],
                    pieces.instrument[mine],
                    pieces.timepoint[mine],
                    pieces.n_rows[mine],
                    pieces.dated[mine],
                    _iso_days(pieces.low[mine], some),
                    _iso_days(pieces.high[mine], some),
                ]
                tail = []
            table = np.empty((len(mine), len(head) + width + len(tail)), dtype=object)
            for j, column in enumerate(head):
                table[:, j] = column
            table[:, len(head) : len(head) + width] = shown
            for j, column in enumerate(tail):
                table[:, len(head) + width + j] = column
            staging.executemany(self.conn, self._statement(width), table.tolist())

    def _copy(self, pieces: _Pieces) -> None:
        """The temporary table's rows through staging.load's fast path (PostgreSQL's COPY), with the answer
        columns up to the last one these questionnaires fill: the others stay NULL, as an empty field leaves them.

        Why: the demo's instruments fill 6-30 of the 64 answer columns; writing the empty rest as CSV fields was
        half of the PROM file's conversion to COPY text, and the server parsed each of them again.

        A direct write (`batch_id`, PostgreSQL's first import) copies them into prom_questionnaires instead, each
        with its one completed date (NULL where no item row gave one) under the batch."""
        missing = np.datetime64("NaT", "ns")
        some = pieces.dated > 0
        filled = np.flatnonzero(~np.isnan(pieces.answers).all(axis=0))
        width = int(filled[-1]) + 1 if len(filled) else 0
        answers = pd.DataFrame(pieces.answers[:, :width], columns=list(models.PROM_ANSWER_COLUMNS[:width]))
        if self.batch_id is not None:
            keys = pd.DataFrame(
                {
                    "cycle_id": pieces.cycle_id,
                    "instrument": pieces.instrument,
                    "timepoint": pieces.timepoint,
                    COMPLETED_DATE: np.where(some, pieces.high.view("datetime64[ns]"), missing),
                }
            )
            frame = pd.concat([keys, answers], axis=1)
            staging.copy_directly(self.conn, self._direct_spec(width), frame, self.batch_id)
            return
        frame = pd.DataFrame(
            {
                "cycle_id": pieces.cycle_id,
                "instrument": pieces.instrument,
                "timepoint": pieces.timepoint,
                "n_rows": pieces.n_rows,
                "dated": pieces.dated,
                "min_date": np.where(some, pieces.low.view("datetime64[ns]"), missing),
                "max_date": np.where(some, pieces.high.view("datetime64[ns]"), missing),
            }
        )
        frame = pd.concat([frame, answers], axis=1)
        stage, spec = self._narrowed(width)
        staging.load(self.conn, stage, spec, frame, pieces.row_no)

    def _narrowed(self, width: int) -> tuple[Table, TableSpec]:
        """The temporary table and PACKED_SPEC as staging.load sees them, with answer columns a01 .. a<width> only
        (the same table: staging.load names it and the columns it writes)."""
        if width not in self._narrow:
            dropped = set(models.PROM_ANSWER_COLUMNS[width:])
            stage = Table(
                self.pieces.name,
                MetaData(),
                *[Column(c.name, c.type) for c in self.pieces.columns if c.name not in dropped],
            )
            packed = Table(
                PACKED.name, MetaData(), *[Column(c.name, c.type) for c in PACKED.columns if c.name not in dropped]
            )
            self._narrow[width] = (stage, TableSpec(PACKED_SPEC.name, packed, _KEYS, tuple(packed.c.keys()), (), {}))
        return self._narrow[width]

    def _direct_spec(self, width: int) -> TableSpec:
        """prom_questionnaires as staging.copy_directly sees it, with answer columns a01 .. a<width> only."""
        if -width not in self._narrow:
            dropped = set(models.PROM_ANSWER_COLUMNS[width:])
            q = models.PromQuestionnaire
            table = Table(q.name, MetaData(), *[Column(c.name, c.type) for c in q.columns if c.name not in dropped])
            self._narrow[-width] = (table, TableSpec(q.name, table, _KEYS, tuple(table.c.keys()), (), {}))
        return self._narrow[-width][1]

    def _statement(self, width: int) -> str:
        """The INSERT of a questionnaire with answer columns a01 .. a<width>, compiled once per width."""
        direct = self.batch_id is not None
        key = ("direct" if direct else "pieces", width)
        if key not in self._statements:
            answers = list(models.PROM_ANSWER_COLUMNS[:width])
            if direct:
                table = models.PromQuestionnaire
                names = ["id", *_KEYS, COMPLETED_DATE, *answers, "batch_id"]
            else:
                table = self.pieces
                names = ["row_no", *_KEYS, "n_rows", "dated", "min_date", "max_date", *answers]
            compiled = table.insert().compile(dialect=self.conn.dialect, column_keys=names)
            assert compiled.positiontup == names, "the compiled INSERT must take the columns in this order"
            self._statements[key] = str(compiled)
        return self._statements[key]

    def assign_positions(self, source: Source, report: ImportReport) -> None:
        """Write the new items' positions; an instrument past PROM_ANSWER_SLOTS refused in one line, as the
        staging path's assign_positions."""
        for instrument in sorted(self.too_many):
            count, limit = self.taken[instrument], models.PROM_ANSWER_SLOTS
            rule = Rule("read.prom_too_many_items", instrument=instrument, count=count, limit=limit)
            report.add(source.problem(rule, None, "instrument", instrument))
        if self.new and not self.too_many:
            self.conn.execute(models.PromItem.__table__.insert(), self.new)

    def _split(self) -> bool:
        """Whether two written pieces may be one questionnaire listed apart (their keys' hashes are equal)."""
        if self._any_split is None:
            self.finish()
            hashes = np.sort(np.concatenate(self.key_hashes)) if self.key_hashes else np.empty(0, np.uint64)
            self.key_hashes = []
            self._any_split = bool((hashes[1:] == hashes[:-1]).any())
        return self._any_split

    def duplicate_item(self) -> bool:
        """Whether the questionnaires listed apart give an item twice (a duplicate key the staged path names),
        found by the pieces' answers: each piece gives an item at most once (write refuses the rest), and every
        valid row's value is a number. An instrument past PROM_ANSWER_SLOTS keeps some items out of the
        answers: then any questionnaire listed apart goes through the staged path, which compares the item rows.
        The direct write needs none of this: the table's unique key refuses a questionnaire listed apart."""
        if self.batch_id is not None or not self._split():
            return False
        p = self.pieces.c
        keys = [p[k] for k in _KEYS]
        twice = func.count() > 1 if self.too_many else or_(*[func.count(p[c]) > 1 for c in models.PROM_ANSWER_COLUMNS])
        found = select(literal(1)).select_from(self.pieces).group_by(*keys).having(twice).limit(1)
        return self.conn.execute(found).first() is not None

    def packed(self) -> Table:
        """The file's questionnaires, one row each: the chunks' pieces, merged where a questionnaire spans chunks
        (only those: a questionnaire listed apart; one that runs over a chunk's end is joined as it is read)."""
        if not self._split():
            return self.pieces  # no two pieces share a key hash, so none shares a key: nothing to merge
        p = self.pieces.c
        keys = [p[k] for k in _KEYS]
        split = select(*keys).group_by(*keys).having(func.count() > 1).subquery()
        if self.conn.execute(select(literal(1)).select_from(split).limit(1)).first() is None:
            return self.pieces
        in_split = tuple_(*keys).in_(select(*[split.c[k] for k in _KEYS]))
        merged = packed_table("_merged")
        staging.create(self.conn, merged)
        names = [c.name for c in merged.columns]
        query = (
            select(
                func.min(p.row_no),
                *keys,
                func.sum(p.n_rows),
                func.sum(p.dated),
                func.min(p.min_date),
                func.max(p.max_date),
                *[func.max(p[c]) for c in models.PROM_ANSWER_COLUMNS],
            )
            .where(in_split)
            .group_by(*keys)
        )
        self.conn.execute(merged.insert().from_select(names, query))
        self.conn.execute(delete(self.pieces).where(in_split))
        self.conn.execute(self.pieces.insert().from_select(names, select(*[merged.c[n] for n in names])))
        staging.drop(self.conn, merged)
        return self.pieces

    def drop(self) -> None:
        if self.batch_id is None:  # the direct write made no temporary table
            staging.drop(self.conn, self.pieces)
            staging.drop(self.conn, packed_table("_merged"))


class _Pieces:
    """Packed questionnaires as arrays, in the order of their first rows: key, first row, item rows, dated rows,
    earliest and latest date (nanoseconds), answers by position (NaN where none)."""

    def __init__(self, cycle_id, instrument, timepoint, row_no, n_rows, dated, low, high, answers):
        self.cycle_id, self.instrument, self.timepoint, self.row_no = cycle_id, instrument, timepoint, row_no
        self.n_rows, self.dated, self.low, self.high, self.answers = n_rows, dated, low, high, answers

    def __len__(self) -> int:
        return len(self.row_no)

    def key(self, i: int) -> tuple:
        return (self.cycle_id[i], self.instrument[i], self.timepoint[i])

    def _part(self, where) -> _Pieces:
        return _Pieces(*(v[where] for v in vars(self).values()))

    def take_last(self) -> _Pieces:
        """The last questionnaire, taken out of these."""
        last = self._part(slice(len(self) - 1, None))
        for name, value in vars(self._part(slice(None, len(self) - 1))).items():
            setattr(self, name, value)
        return last

    def absorb(self, earlier: _Pieces) -> None:
        """Join the first questionnaire with `earlier`'s one (the same key, its rows before these): its first row,
        counts, dates and answers (an answer both give is a duplicate item, which the import refuses anyway)."""
        self.row_no[0] = earlier.row_no[0]
        self.n_rows[0] += earlier.n_rows[0]
        self.dated[0] += earlier.dated[0]
        self.low[0] = min(self.low[0], earlier.low[0])
        self.high[0] = max(self.high[0], earlier.high[0])
        gap = np.isnan(self.answers[0])
        self.answers[0, gap] = earlier.answers[0, gap]

    def split_dates(self) -> np.ndarray:
        """Where a questionnaire's item rows give different completed dates (an empty one included)."""
        return (self.dated > 0) & ((self.low != self.high) | (self.dated < self.n_rows))


def _refuse_duplicate_items(
    q: np.ndarray, position: np.ndarray, wide: np.ndarray, values: np.ndarray, fits: np.ndarray
) -> None:
    """Raise NeedsItemRows where two of a chunk's item rows give one item of one questionnaire (a duplicate key:
    the staged path names the rows). Exact, and nothing kept for the file: a valid row's value is a number (never
    NaN), so the answers written are as many as the rows that fit unless two rows wrote one cell; the rows of an
    instrument past PROM_ANSWER_SLOTS (refused anyway, their item named) are compared by their positions."""
    if np.isnan(values).any() or np.count_nonzero(~np.isnan(wide)) != np.count_nonzero(fits) or not fits.all():
        cells = q.astype(np.int64) * (int(position.max()) + 1) + position
        if len(pd.unique(cells)) < len(cells):
            raise NeedsItemRows


def _factorized(values: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(codes, distinct values) of a key column: a categorical's own (validation codes a PROM file's keys so),
    else pd.factorize's. Packing needs codes that tell values apart, not their order (its questionnaires are
    numbered by pd.factorize of the codes combined, in the order of their first rows)."""
    if isinstance(values.dtype, pd.CategoricalDtype) and not values.hasnans:
        return values.cat.codes.to_numpy(dtype=np.int64), values.cat.categories
    return pd.factorize(values)


def _objects(values) -> np.ndarray:
    """Distinct values (pd.factorize's) as an array of Python objects."""
    return np.asarray(pd.Index(values).to_numpy(dtype=object), dtype=object)


def _iso_days(nanoseconds: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Dates (nanoseconds since 1970) as ISO text, None where not `given`: each distinct date formatted once."""
    values = np.where(given, nanoseconds, np.iinfo(np.int64).min).view("datetime64[ns]")  # int64 min is NaT
    codes, distinct = pd.factorize(values)
    shown = np.append(np.asarray(pd.DatetimeIndex(distinct).strftime("%Y-%m-%d"), dtype=object), None)
    shown[:-1][pd.isna(distinct)] = None
    return shown[codes]
