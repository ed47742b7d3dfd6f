"""Checking every value of a chunk against the condition catalog; vectorised over columns.

Numbers: the decimal mark is decided per file from evidence, never guessed. A value such as 12.50 or 2,5 is
evidence for its mark; 1.250 (one to three digits, a mark, three digits) could be a thousands separator and
decides nothing. A file whose values use both marks, or only undecided ones, is refused, and a value with a
thousands separator (1.250,50) is refused: a registry number is written without grouping.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vbhc.catalog import PREM_CASEMIX, STORED_CASEMIX, SURVIVAL_KINDS, Catalog
from vbhc.ingest.ids import IdTable
from vbhc.ingest.problems import (
    EARLIEST_DATE,
    EXCEL_ERRORS,
    ImportReport,
    Number,
    Problem,
    Rule,
    case_twins,
    invisible_character,
    lookalike_character,
    says_missing,
    shown_column,
    shown_value,
)
from vbhc.ingest.read import Chunk, Source
from vbhc.settings import max_cell_chars

#: First characters (after leading whitespace) that make a spreadsheet run a cell; ASCII and full-width forms.
_FORMULA_STARTS = ["=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20"]

#: A line break or tab, which an identifier must not hold (Checker.identifier)
_BREAK = re.compile(r"[\t\n\r]")

#: Digits are ASCII 0-9: Python's \d also matches other scripts' digits (Arabic-Indic, ...), which Arrow cannot read
_NUMBER = r"[+-]?(?:[0-9]+(?:[.,][0-9]*)?|[.,][0-9]+)(?:[eE][+-]?[0-9]+)?"
_PLAIN_INTEGER = r"[+-]?[0-9]+"
#: The refusal of a number cell's text, by whether the text is a word for a missing value (says_missing)
_NOT_A_NUMBER = {False: "validate.not_a_number", True: "validate.not_a_number_missing"}
_DATE = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
#: No date of the registry (a care cycle's index date, an outcome's, a PROM's or PREM's) lies before this.
_EARLIEST_DATE = pd.Timestamp(EARLIEST_DATE)
#: The plausibility limits of one cost line, the one place they are set (and said in their refusals): the most a
#: line may count of an activity (minutes, items, days: 100,000 minutes are 69 days) and the highest price per
#: unit in euros (a proton therapy course or an organ transplant costs well under 10 million). No real care
#: activity passes either: a line past them is a typo, a cost in cents, or a line's total written as its price,
#: and it was stored (a unit cost of 10^12 made a unit's cost per care cycle a million times its peers').
MAX_QUANTITY = 100_000
MAX_UNIT_COST = 10_000_000
_GROUPED = r"[+-]?[0-9]{1,3}(?:([.,])[0-9]{3})+(?:[.,][0-9]+)?"
#: A number with one mark, in parts: the digits before it, the mark, the digits after it (Arrow's RE2 syntax).
_MARKED_NUMBER = r"^[+-]?(?P<whole>[0-9]*)(?P<mark>[.,])(?P<fraction>[0-9]*)(?:[eE][+-]?[0-9]+)?$"


#: A number as Excel's General format shows one too long for its cell (1.23457E+11, 1,23457E+11 in Dutch, 1E+15)
_EXCEL_SCIENTIFIC = r"^\s*-?[0-9](?:[.,][0-9]+)?E[+-][0-9]{2,3}\s*$"


@dataclass
class _Seen:
    row: int
    column: str
    value: str


class DecimalMarks:
    """What one file's numbers say about its decimal mark; decided at the end of the file."""

    def __init__(self, source: Source):
        self.source = source
        self.decisive: dict[str, _Seen] = {}  # mark -> first value that can only be a decimal mark
        self.undecided: dict[str, _Seen] = {}  # mark -> first value like 1.250

    def observe(self, column: str, text: pd.Series, rows: np.ndarray) -> None:
        """Note the first value that decides the mark, and the first that cannot, per mark. Arrow's regular
        expressions (C++): pandas runs an extract row by row in Python, seconds for a file of prices."""
        values = pa.array(text, type=pa.string(), from_pandas=True)
        if isinstance(values, pa.ChunkedArray):  # a column of a large file comes in several Arrow chunks
            values = values.combine_chunks()
        marked = pc.match_substring_regex(values, r"[.,]").to_numpy(zero_copy_only=False)
        if not marked.any():
            return
        candidates = values.filter(pa.array(marked))
        parts = pc.extract_regex(candidates, _MARKED_NUMBER)
        whole, fraction = parts.field("whole"), parts.field("fraction")
        mark = parts.field("mark").to_numpy(zero_copy_only=False)
        valid = parts.is_valid().to_numpy(zero_copy_only=False)
        whole_len = pc.utf8_length(whole).to_numpy(zero_copy_only=False)
        three = (pc.utf8_length(fraction).to_numpy(zero_copy_only=False) == 3) & (whole_len >= 1) & (whole_len <= 3)
        three &= pc.not_equal(whole, "0").to_numpy(zero_copy_only=False)
        three &= ~pc.match_substring_regex(candidates, r"[eE]").to_numpy(zero_copy_only=False)
        where = np.flatnonzero(marked)
        for m in (".", ","):
            is_m = valid & (mark == m)
            for bucket, mask in ((self.decisive, is_m & ~three), (self.undecided, is_m & three)):
                if m not in bucket and mask.any():
                    i = int(np.flatnonzero(mask)[0])
                    bucket[m] = _Seen(int(rows[where[i]]), column, str(text.iat[where[i]]))

    def verdict(self) -> Problem | None:
        """Why the file's numbers are ambiguous or mixed; None when every marked number reads one way."""
        decisive, undecided = self.decisive, self.undecided
        if len(decisive) == 2:
            a, b = decisive["."], decisive[","]
            first, second = sorted([(a, "."), (b, ",")], key=lambda x: x[0].row)
            return self.source.problem(
                Rule(
                    "validate.mixed_decimal_marks",
                    # quoted values masked as the problem's own value is (an identifier never reaches a message)
                    first_value=repr(shown_value(first[0].column, first[0].value)),
                    first_row=first[0].row,
                    first_column=shown_column(first[0].column),
                    first_mark=first[1],
                    second_value=repr(shown_value(second[0].column, second[0].value)),
                    second_mark=second[1],
                ),
                second[0].row,
                second[0].column,
                second[0].value,
            )
        if decisive:
            (mark, seen), other = next(iter(decisive.items())), None
            other = undecided.get("," if mark == "." else ".")
            if other is not None:
                return self.source.problem(
                    Rule(
                        "validate.thousands_separator_implied",
                        mark=mark,
                        example=repr(shown_value(seen.column, seen.value)),
                        example_row=seen.row,
                        value=shown_value(other.column, other.value),
                    ),
                    other.row,
                    other.column,
                    other.value,
                )
            return None
        if undecided:
            seen = min(undecided.values(), key=lambda s: s.row)
            mark = next(m for m, s in undecided.items() if s is seen)
            return self.source.problem(
                Rule("validate.decimal_mark_undecided", mark=mark, value=repr(shown_value(seen.column, seen.value))),
                seen.row,
                seen.column,
                seen.value,
            )
        return None


class Checker:
    """Collects the problems of one chunk; every check is vectorised over a column."""

    def __init__(self, source: Source, chunk: Chunk, report: ImportReport, marks: DecimalMarks):
        self.source, self.chunk, self.report, self.marks = source, chunk, report, marks
        self.frame = chunk.frame
        self.bad = np.zeros(len(chunk.frame), dtype=bool)
        #: rows flagged in a column of the table's key, or for the row as a whole: their key is not what the row
        #: means, so it is compared with no other row's (the others are, for a duplicate: RefusedKeys in run)
        self.key_bad = np.zeros(len(chunk.frame), dtype=bool)
        self._key_columns = frozenset(source.spec.key)
        self._found: list[Problem] = []
        #: per column read by text(): (codes, values) with values[codes] the stripped column (codes None: values
        #: is the column itself, one value per row), and the column's pd.factorize once asked (coded)
        self._texts: dict[str, tuple[np.ndarray | None, pd.Series]] = {}
        self._coded: dict[str, tuple[np.ndarray, pd.Index]] = {}

    def flag(self, mask: np.ndarray | pd.Series, column: str | None, rule: Rule | Callable[[int], Rule]) -> None:
        """Mark rows as bad; `rule` is the message (a Rule) or a function of the row's position in the chunk."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self.bad |= mask
        if column is None or column in self._key_columns:
            self.key_bad |= mask
        rows = np.flatnonzero(mask)
        # count every problem, but only materialise the ones that can still be reported
        room = max(self.report.room - len(self._found), 0)
        values = self.frame[column].to_numpy() if column in self.frame.columns else None
        for i in rows[:room]:
            value = None if values is None else str(values[i])
            message = rule(int(i)) if callable(rule) else rule
            self._found.append(
                Problem(self.source.label, self.source.sheet, int(self.chunk.rows[i]), column, value, message)
            )
        self.report.problem_count += len(rows) - min(len(rows), room)

    def flag_once(self, mask: np.ndarray, column: str, rule: Rule) -> None:
        """Mark rows as bad for what the file lacks as a whole (a column it has not): one problem per message (two
        survival outcomes without their date column are two lines, each naming its outcome), on the file's first
        such row, however many rows and chunks it holds, instead of the same line for every row."""
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        self.bad |= mask
        once = (self.source.label, self.source.sheet, rule.code, str(rule))
        if once in self.report.stated_once:
            return
        self.report.stated_once.add(once)
        if len(self._found) < self.report.room:
            row = int(self.chunk.rows[int(np.flatnonzero(mask)[0])])
            self._found.append(Problem(self.source.label, self.source.sheet, row, column, None, rule))
        else:
            self.report.problem_count += 1

    def finish(self) -> None:
        self._found.sort(key=lambda p: (p.row or 0, p.column or ""))
        for p in self._found:
            self.report.add(p)

    def cell_sizes(self) -> None:
        """Any cell longer than the limit (Excel's own by default) is refused, in every column."""
        limit = max_cell_chars()
        for column in self.frame.columns:
            # a character takes at least one UTF-8 byte: a column whose longest cell has at most `limit` bytes
            # has no cell over the limit, and its characters need not be counted
            if _longest(self.frame[column]) <= limit:
                continue
            lengths = self.frame[column].str.len().to_numpy()
            too_long = lengths > limit
            if too_long.any():
                self.flag(
                    too_long,
                    column,
                    lambda i, lengths=lengths: Rule(
                        "validate.cell_too_long", count=int(lengths[i]), limit=Number(limit)
                    ),
                )

    def optional(self, column: str) -> bool:
        return column in self.frame.columns

    def _distinct(self, column: str) -> tuple[np.ndarray | None, pd.Series]:
        """(codes, values): the column's distinct values in the order they first appear and each row's position
        among them, when the column repeats its values (a PROM file's instrument, item, date, a care cycle's id
        over its dozens of rows); (None, the column) when it does not. Arrow's dictionary encoding (C++), once: the
        checks of a text then run over a few values instead of 200,000 and are spread back by position."""
        raw = self.frame[column]
        if len(raw) < _FEW_DISTINCT_FROM or getattr(raw.dtype, "storage", None) != "pyarrow":
            return None, raw  # a short chunk, or a column not of pandas' Arrow strings (as the reader makes them)
        values = _arrow(raw)
        if values.null_count:
            return None, raw
        encoded = pc.dictionary_encode(values)
        if len(encoded.dictionary) > len(values) // 4:
            return None, raw
        codes = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp, copy=False)
        return codes, pd.Series(pd.array(encoded.dictionary, dtype=raw.dtype), name=raw.name)

    def text(self, column: str, required: bool = True, max_len: int = 64, composed: bool = True) -> pd.Series:
        """A text column, stripped and checked; `composed`: in Unicode's composed form (NFC), so é typed as e and
        an accent mark is stored as the é it reads as (two rows naming one hospital the two ways agree). Ids are
        not composed: identifier() refuses the separate mark, which would make a second key.

        Every check looks at one cell's text alone, so a column that repeats its values is checked once per
        distinct value and each finding spread to the rows holding it (_distinct): the same rows, values and
        messages as checked row by row."""
        codes, given = self._distinct(column)
        v = given.str.strip()
        if composed:
            v = _composed(v)
        if codes is None:
            s = v
        elif v.equals(given):  # nothing stripped or composed: the column as read, not a copy spread from v
            s = self.frame[column]
        else:
            s = pd.Series(v.array.take(codes), index=self.frame.index, name=column)
        self._texts[column] = (codes, v)
        self._coded.pop(column, None)
        spread = _spreader(codes)
        values = _arrow(v)
        seen = _Bytes(values)
        if required:
            self.flag(spread(v == ""), column, Rule("validate.required_empty"))
        if seen.longest > max_len:  # characters are counted only where the bytes could be too many
            self.flag(spread(v.str.len() > max_len), column, Rule("validate.too_long", count=max_len))
        if seen.first_in(_FORMULA_OR_ERROR_BYTES):
            first = v.str[:1]
            starts = first.isin(_FORMULA_STARTS)
            if starts.any():
                formula = starts & (first.isin(["=", "\uff1d"]) | v.str.contains(r"[(!]", regex=True))
                self.flag(spread(formula), column, Rule("validate.formula"))
            error = first == "#"
            if error.any():
                self.flag(spread(error & v.str.upper().isin(EXCEL_ERRORS)), column, Rule("validate.excel_error"))
        # a character no one sees makes a second key that looks like the first (C0001 and C0001 + U+200B);
        # Arrow's regular expression (C++), as the numbers' marks: pandas' would loop in Python over every PROM row.
        # Every such character is a control byte or not ASCII: a column of neither (nearly every one) skips it.
        if seen.control_or_not_ascii:
            hidden = pc.match_substring_regex(values, r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\p{Cf}]").to_numpy(
                zero_copy_only=False
            )
            if hidden.any():
                self.flag(
                    spread(hidden),
                    column,
                    lambda i: Rule("validate.invisible_character", code=invisible_character(s.iat[i]) or "?"),
                )
        return s

    def coded(self, column: str) -> tuple[np.ndarray, pd.Index]:
        """pd.factorize of the column as text() returned it (codes in the order values first appear), from its
        distinct values when text() found them: a validator's lookups per distinct value, and the frame it
        returns, need no second hashing of every row."""
        if column not in self._coded:
            codes, v = self._texts[column]
            if codes is None:
                self._coded[column] = pd.factorize(v)
            else:
                # the distinct values are in the order they first appear, so their own codes are too
                mapped, distinct = pd.factorize(v)
                self._coded[column] = (mapped[codes], distinct)
        return self._coded[column]

    def categorical(self, column: str) -> pd.Series:
        """The column as text() returned it, as a pandas Categorical of coded()'s values: equal cell by cell (and
        hashed alike), but a later pd.factorize or hash (the duplicate keys' hashes, the questionnaires' packing)
        takes the codes instead of hashing every row's text again."""
        codes, distinct = self.coded(column)
        return pd.Series(
            pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(distinct)), index=self.frame.index, name=column
        )

    def identifier(self, column: str, required: bool = True, max_len: int = 64) -> pd.Series:
        """An id column's text (a key, a pseudonym, a unit code): text() and no look-alike (lookalike_character).

        Only values that are not ASCII are looked at, through Arrow's C++ test: a file of 1.5 million PROM rows
        has none, and the few that are not are checked once per distinct value."""
        s = self.text(column, required, max_len, composed=False)
        codes, v = self._texts[column]
        spread = _spreader(codes)
        values = _arrow(v)
        seen = _Bytes(values)
        # a line break or tab inside a key (a quoted CSV field over two lines, Alt+Enter in a cell): the cell shows
        # two lines or a gap, the key is one no one can type or find; a text column keeps them as the cell shows
        if seen.control_or_not_ascii:
            broken = pc.match_substring_regex(values, r"[\t\n\r]").to_numpy(zero_copy_only=False)
            if broken.any():
                self.flag(
                    spread(broken),
                    column,
                    lambda i: Rule("validate.id_line_break", code=f"U+{ord(_BREAK.search(s.iat[i]).group()):04X}"),
                )
        # an id as Excel shows a long number (123456789012 as 1.23457E+11, or 1,23457E+11 in Dutch) and saves it
        # to CSV so: the digits are gone, and two ids may have become one (never without its "E")
        if seen.holds(b"E"):
            scientific = pc.match_substring_regex(values, _EXCEL_SCIENTIFIC).to_numpy(zero_copy_only=False)
            if scientific.any():
                self.flag(spread(scientific), column, Rule("validate.id_scientific"))
        if seen.control_or_not_ascii:
            odd = ~pc.string_is_ascii(values).to_numpy(zero_copy_only=False)
            if odd.any():
                where = np.flatnonzero(odd)
                odd_codes, distinct = pd.factorize(v.iloc[where])
                found = [lookalike_character(str(x)) for x in distinct]
                kinds = np.array([("" if f is None else f[0]) for f in found] or [""], dtype=object)[odd_codes]
                for kind in ("non_latin_letter", "variant_character"):
                    hit = np.zeros(len(v), dtype=bool)
                    hit[where] = kinds == kind
                    self.flag(
                        spread(hit), column, lambda i, kind=kind: Rule(f"validate.{kind}", character=_odd_one(s.iat[i]))
                    )
        return s

    def _number_cells(self, column: str) -> np.ndarray:
        """Per row, whether `column`'s cell is a workbook's number cell (none of a CSV's are)."""
        numeric = self.chunk.numeric
        at = self.frame.columns.get_loc(column) if column in self.frame.columns else None
        if numeric is None or not isinstance(at, int) or at >= numeric.shape[1]:
            return np.zeros(len(self.frame), dtype=bool)
        return numeric[:, at]

    def number(
        self,
        column: str,
        required: bool = True,
        mask: np.ndarray | None = None,
        stripped: pd.Series | None = None,
    ) -> pd.Series:
        """Numbers as written: either decimal mark (decided per file), no thousands separators. With `mask`, only
        those rows are read (the others are empty cells); `stripped`: the column already stripped, when the caller
        reads it more than once (a case-mix column, once per condition).

        Why a mask reads only its rows: a care cycles file's case-mix columns are read once per condition that
        uses them, each time for that condition's rows alone; the same checks over the whole column, its other
        rows blanked, were most of that file's validation. A whole column that repeats its values (_distinct: a
        cost file's quantities and prices, a few hundred values over 500,000 rows) is read once per distinct value
        and each finding spread to the rows holding it: the same rows, values and messages as row by row."""
        codes = None
        if mask is None and stripped is None:
            codes, given = self._distinct(column)
            if codes is not None and self._number_cells(column).any():
                codes = None  # a workbook's number cell decides no decimal mark: each row's cell is asked
            if codes is not None:
                plain = self._plain_numbers(column, codes, given)
                if plain is not None:
                    return plain
        if codes is not None:  # the column's distinct values, each read once and spread to its rows
            s = given.str.strip()
            t = s
            first = np.full(len(s), len(codes), dtype=np.intp)  # each value's first row (they appear in order)
            np.minimum.at(first, codes, np.arange(len(codes), dtype=np.intp))

            def spread(flags: np.ndarray) -> np.ndarray:
                """A test of the distinct values as one of every row of the chunk."""
                return np.asarray(flags, dtype=bool)[codes]

            def cell(i: int) -> str:
                return s.iat[codes[i]]

            def positions(read_at: np.ndarray) -> np.ndarray:
                return first[read_at]
        else:
            s = self.frame[column].str.strip() if stripped is None else stripped
            at = None if mask is None else np.flatnonzero(mask)  # the rows read, as positions in the chunk
            t = s if at is None else s.iloc[at]

            def spread(flags: np.ndarray) -> np.ndarray:
                """A test of the rows read, as one of every row of the chunk (False elsewhere)."""
                if at is None:
                    return flags
                out = np.zeros(len(s), dtype=bool)
                out[at[flags]] = True
                return out

            def cell(i: int) -> str:
                return s.iat[i]

            def positions(read_at: np.ndarray) -> np.ndarray:
                return read_at if at is None else at[read_at]

        empty = (t == "").to_numpy()
        if required:
            self.flag(~spread(~empty), column, Rule("validate.required_empty"))  # the rows not read are empty
        seen = _Bytes(_arrow(t))
        plain = seen.plain_integers()
        read = np.full(len(t), np.nan)
        if plain.all():  # a PROM file's answers: no copy
            read[:] = _parse_numbers(t)
        elif plain.any():
            read[plain] = _parse_numbers(t[plain])
        rest = ~plain & ~empty
        if rest.any():
            text = t[rest]
            rest_read = np.flatnonzero(rest)  # their positions among the values read
            rest_at = positions(rest_read)  # (the first of) their positions in the chunk
            number = text.str.fullmatch(_NUMBER).to_numpy()
            # a workbook's number cells decide no decimal mark (Chunk.numeric): only the numbers written as text
            written = number & ~self._number_cells(column)[rest_at]
            if written.any():
                self.marks.observe(column, text[written], self.chunk.rows[rest_at[written]])
            if number.any():
                read[rest_read[number]] = _parse_numbers(text[number].str.replace(",", ".", regex=False))
            grouped = text.str.fullmatch(_GROUPED).to_numpy() & ~number
            bad_read = np.zeros(len(t), dtype=bool)
            bad_read[rest_read[grouped]] = True
            self.flag(spread(bad_read), column, Rule("validate.thousands_separator"))
            other = np.zeros(len(t), dtype=bool)
            other[rest_read[~number & ~grouped]] = True
            # "n.v.t." or "-" for a missing value: the refusal says a missing value is an empty cell
            self.flag(spread(other), column, lambda i: Rule(_NOT_A_NUMBER[says_missing(cell(i))]))
        if codes is not None:
            values = read[codes]
        elif at is None:
            values = read
        else:
            values = np.full(len(s), np.nan)
            values[at] = read
        self.flag(np.isinf(values), column, Rule("validate.not_finite"))
        values = pd.Series(values, index=self.frame.index, dtype="float64")
        # a character takes a byte at least: no cell of at most EXACT_DIGITS bytes is long enough to be inexact
        digits = None
        if seen.longest > EXACT_DIGITS:
            digits = _inexact_digits(t, read, ~np.isnan(read))
            if digits is not None and codes is not None:
                digits = digits[codes]
            elif digits is not None and at is not None:
                spread_digits = np.zeros(len(s), dtype=np.int64)
                spread_digits[at] = digits
                digits = spread_digits
        if digits is not None:
            self.flag(
                digits > 0,
                column,
                lambda i: Rule("validate.too_many_digits", digits=int(digits[i]), stored=repr(float(values.iat[i]))),
            )
        return values

    def _plain_numbers(self, column: str, codes: np.ndarray, v: pd.Series) -> pd.Series | None:
        """number() of a column whose distinct values (`codes`, `v`: Checker._distinct) are each a plain integer of
        at most EXACT_DIGITS characters (a PROM file's answers): no empty cell, no decimal mark, no digit lost, so
        the one check left is a number too large for a float; None for any other column."""
        v = v.str.strip()
        seen = _Bytes(_arrow(v))
        if seen.longest > EXACT_DIGITS or not seen.plain_integers().all():
            return None
        values = _parse_numbers(v)[codes]
        self.flag(np.isinf(values), column, Rule("validate.not_finite"))
        return pd.Series(values, index=self.frame.index, dtype="float64")

    def date(self, column: str, required: bool = True) -> pd.Series:
        # parsed once per distinct text: 200,000 PROM rows hold a few hundred dates (stripped once per distinct
        # text too, when Arrow's dictionary finds few: _distinct)
        raw_codes, v = self._distinct(column)
        v = v.str.strip()
        codes, distinct = pd.factorize(v)
        if raw_codes is not None:
            codes = codes[raw_codes]
        parsed = pd.to_datetime(pd.Series(distinct, dtype=v.dtype), format="%Y-%m-%d", errors="coerce")
        # written with the digits 0-9 as numbers are: strptime also reads full-width and other scripts' digits
        parsed[~pd.Series(distinct, dtype=v.dtype).str.fullmatch(_DATE).to_numpy(dtype=bool)] = pd.NaT
        values = pd.Series(parsed.array.take(codes, allow_fill=True), index=self.frame.index, name=column)
        empty = _spreader(raw_codes)((v == "").to_numpy(dtype=bool))
        if required:
            self.flag(empty, column, Rule("validate.required_empty"))
        self.flag(~empty & values.isna(), column, Rule("validate.not_a_date"))
        today = pd.Timestamp(dt.date.today())
        self.flag(values > today, column, Rule("validate.future_date"))
        self.flag(
            values < _EARLIEST_DATE, column, Rule("validate.date_too_early", floor=_EARLIEST_DATE.date().isoformat())
        )
        return values

    def codes(self, column: str, values: pd.Series, allowed: set[str], code: str, **fields: object) -> None:
        """Flag values outside `allowed`; the rule is message `code`, given the allowed codes and `fields`."""
        unknown = ~values.isin(allowed) & (values != "")
        self.flag(unknown, column, Rule(code, allowed=_listed(allowed), **fields))


def _listed(allowed: set[str]) -> str:
    """The allowed codes as a refusal lists them: the first dozen, sorted."""
    return ", ".join(sorted(allowed)[:12]) + (" ..." if len(allowed) > 12 else "")


def _composed(s: pd.Series) -> pd.Series:
    """The texts in Unicode's composed form (NFC); only those that are not ASCII are looked at (ASCII is NFC)."""
    values = _arrow(s)
    if not _Bytes(values).control_or_not_ascii:
        return s
    odd = ~pc.string_is_ascii(values).to_numpy(zero_copy_only=False)
    if not odd.any():
        return s
    s = s.copy()
    s[odd] = [unicodedata.normalize("NFC", v) for v in s[odd]]
    return s


def _arrow(s: pd.Series) -> pa.StringArray | pa.LargeStringArray:
    """A text column as one Arrow string array, for Arrow's C++ string functions: pandas' Arrow strings as they are
    held (large_string, no copy), any other column as a string array.

    Why: cast to Arrow's string type, each check's column was copied (offsets of 64 to 32 bits) again and again
    (with the reader's own cast to pandas ~0.5 of a PROM file's 4 s of main-thread CPU at 100,000 cycles)."""
    values = _as_arrow(s)
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _as_arrow(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """`s` as Arrow text: its own Arrow strings where pandas holds it so, else (or any other Arrow type) cast."""
    if getattr(s.dtype, "storage", None) == "pyarrow":
        values = pa.array(s, from_pandas=True)
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            return values
    return pa.array(s, type=pa.string(), from_pandas=True)


#: A chunk of fewer rows is checked row by row (Checker._distinct): its encoding would cost more than it saves.
_FEW_DISTINCT_FROM = 1_000


def _spreader(codes: np.ndarray | None) -> Callable[[np.ndarray | pd.Series], np.ndarray | pd.Series]:
    """A test of distinct values as one of every row (the value at each row's code); as it is without codes."""
    if codes is None:
        return lambda flags: flags
    return lambda flags: np.asarray(flags, dtype=bool)[codes]


def _longest(s: pd.Series) -> int:
    """The most UTF-8 bytes of a text column's cells, from Arrow's lengths (no copy of the column's text)."""
    values = _as_arrow(s)
    if not len(values):
        return 0
    longest = pc.max(pc.binary_length(values)).as_py()
    return int(longest or 0)


#: The first bytes of a cell that may be a formula or an Excel error (_FORMULA_STARTS and "#"); every full-width
#: form starts with a byte that is not ASCII, so it is among them.
_FORMULA_OR_ERROR_BYTES = np.array([ord(c) for c in "=+-@#"], dtype=np.uint8)


class _Bytes:
    """What a text column's UTF-8 bytes say at once (numpy over Arrow's buffers, no Python string made): which
    checks cannot find anything in it. A check whose characters the bytes do not hold is skipped; one that may
    find something runs as before, over the whole column, so a refusal names the same rows either way. What
    needs every byte looked at (control_or_not_ascii) is found when first asked: cell_sizes needs the lengths
    alone."""

    def __init__(self, values: pa.StringArray | pa.LargeStringArray):
        n = len(values)
        _, offsets, data = values.buffers()
        if n and offsets is not None and data is not None:
            width = np.int64 if pa.types.is_large_string(values.type) else np.int32
            offsets = np.frombuffer(offsets, dtype=width)[values.offset : values.offset + n + 1]
            # a null's slot may hold bytes: they are looked at too, which can only make a check run
            self.data = np.frombuffer(data, dtype=np.uint8)[offsets[0] : offsets[-1]]
            self.offsets = (offsets - offsets[0]).astype(np.int64)
        else:
            self.data, self.offsets = np.zeros(0, dtype=np.uint8), np.zeros(n + 1, dtype=np.int64)
        self.lengths = np.diff(self.offsets)
        self._values = values
        self.longest = int(self.lengths.max()) if n else 0

    @cached_property
    def starts(self) -> np.ndarray:
        return self.offsets[:-1][self.lengths > 0]

    @cached_property
    def nulls(self) -> np.ndarray | None:
        return self._values.is_null().to_numpy(zero_copy_only=False) if self._values.null_count else None

    @cached_property
    def control_or_not_ascii(self) -> bool:
        """A control character (C0, DEL) is one byte below 0x20 or 0x7f; C1 and every format character are not
        ASCII."""
        return bool(((self.data < 0x20) | (self.data >= 0x7F)).any())

    def plain_integers(self) -> np.ndarray:
        """Per cell, whether it is written [+-]?[0-9]+ (_PLAIN_INTEGER, whole): counted in bytes, as no byte of a
        character that is not ASCII is an ASCII digit or sign."""
        other = np.zeros(len(self.data) + 1, dtype=np.int64)
        np.cumsum((self.data < 0x30) | (self.data > 0x39), out=other[1:])
        not_digits = other[self.offsets[1:]] - other[self.offsets[:-1]]
        first = np.zeros(len(self.lengths), dtype=np.uint8)
        filled = self.lengths > 0
        first[filled] = self.data[self.starts]
        signed = (not_digits == 1) & (self.lengths >= 2) & ((first == ord("+")) | (first == ord("-")))
        plain = filled & ((not_digits == 0) | signed)
        return plain if self.nulls is None else plain & ~self.nulls

    def holds(self, byte: bytes) -> bool:
        return bool((self.data == byte[0]).any())

    def first_in(self, bytes_: np.ndarray) -> bool:
        """Whether some cell starts with one of `bytes_` or with a character that is not ASCII."""
        first = self.data[self.starts]
        return bool(((first >= 0x80) | np.isin(first, bytes_)).any())


def _odd_one(text: str) -> str:
    found = lookalike_character(text)
    return "" if found is None else found[1]


#: Significant digits a float64 keeps for every decimal (DBL_DIG): a value of at most 15 reads back as written.
#: A longer one may too (0.30000000000000004, as Python and R write a computed number), or may not
#: (99999999999999999999 is stored as 1e+20): only those are looked at one by one.
EXACT_DIGITS = 15


def _inexact_digits(text: pd.Series, values: np.ndarray, given: np.ndarray) -> np.ndarray | None:
    """Per value, its significant digits where the stored number would not read back as written (its shortest
    form, repr, has other digits), else 0; None when no value is long enough for that. Only values longer than
    EXACT_DIGITS characters are looked at, once per distinct text, after Arrow's length test (a PROM file's
    values are one or two characters)."""
    arrow = pa.array(text, type=pa.string(), from_pandas=True)
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    long = given & (pc.utf8_length(arrow).to_numpy(zero_copy_only=False) > EXACT_DIGITS)
    if not long.any():
        return None
    digits = np.zeros(len(text), dtype=np.int64)
    rows = np.flatnonzero(long)
    codes, distinct = pd.factorize(text.iloc[rows])
    first = {code: rows[i] for i, code in reversed(list(enumerate(codes)))}
    found = np.zeros(len(distinct), dtype=np.int64)
    for code, row in first.items():
        written = _significand(str(distinct[code]))
        if len(written) > EXACT_DIGITS and written != _significand(repr(float(values[row]))):
            found[code] = len(written)
    digits[rows] = found[codes]
    return digits


def _significand(number: str) -> str:
    """A number's significant digits: its exponent, sign, marks and leading and trailing zeros left out (1200
    and 0.0012 hold "12")."""
    return re.sub(r"[^0-9]", "", re.sub(r"[eE].*$", "", number)).strip("0")


def _parse_numbers(text: pd.Series) -> np.ndarray:
    """Texts that match a number pattern as floats: Arrow's parser (C++, correctly rounded like pandas', and
    60 times faster on a million PROM values); pandas' when Arrow refuses one (NaN where neither reads it)."""
    try:
        parsed = pc.cast(pa.array(text, type=pa.string(), from_pandas=True), pa.float64())
        return parsed.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def is_bsn(values: pd.Series) -> np.ndarray:
    """9-digit numbers passing the Dutch 11-test look like a citizen service number (BSN)."""
    s = values.str.strip()
    candidates = s.str.fullmatch(r"\d{9}").fillna(False).to_numpy()
    out = np.zeros(len(s), dtype=bool)
    if candidates.any():
        digits = np.array([[int(c) for c in v] for v in s[candidates]], dtype=np.int64)
        weights = np.array([9, 8, 7, 6, 5, 4, 3, 2, -1])
        out[candidates] = (digits @ weights) % 11 == 0
    return out


class BatchState:
    """What the files of one batch know about each other: the units and care cycles they bring.

    `stored_cycles` gives the stored care cycles as Arrow columns cycle_id, condition and index_date
    (vbhc.ingest.run): a child row is checked against its cycle's condition and dated against its index date."""

    def __init__(
        self,
        catalog: Catalog,
        stored_units: Callable[[], set],
        stored_cycles: Callable[[], pd.DataFrame],
        stored_vital: Callable[[], pd.DataFrame] | None = None,
        stored_responses: Callable[[], pd.Index] | None = None,
        stored_patients: Callable[[], pd.Index] | None = None,
    ):
        self.catalog = catalog
        #: the PREM response ids stored or given by an earlier row or file, by how a reader compares them
        self.response_spellings = Spellings(stored_responses or (lambda: pd.Index([], dtype=object)))
        #: the care cycles' patient ids, stored or given by an earlier row or file, by how a reader compares them
        self.patient_spellings = Spellings(stored_patients or (lambda: pd.Index([], dtype=object)))
        self._stored_units, self._stored_cycles = stored_units, stored_cycles
        self._stored_vital = stored_vital
        self._units: set[tuple[str, str]] | None = None
        self.batch_units: set[tuple[str, str]] = set()
        # the vital status rows by cycle (an IdTable's slot) and outcome, read and kept as the care cycles are
        self._vital_cycles: IdTable | None = None
        self._vital_outcomes: dict[object, int] = {}
        self._vital_value = np.empty((0, 0))
        self._vital_date = np.empty((0, 0), "datetime64[ns]")
        self._deaths: np.ndarray | None = None  # each vital cycle's death date, by slot
        # every known care cycle (stored, then this batch's) at a slot of an IdTable, its condition (a code of
        # _condition_names, -1: none) and index date in arrays by slot: ~30 bytes a cycle instead of the ~700 a
        # frame indexed by Python strings and the dictionaries of its spellings took (vbhc.ingest.ids)
        self._cycle_ids: IdTable | None = None  # the stored ones read on first use
        self._cycle_condition = np.empty(0, np.int32)
        self._cycle_date = np.empty(0, "datetime64[ns]")
        self._condition_names: list[object] = []
        self._condition_codes: dict[object, int] = {}
        self._found: tuple[object, np.ndarray] | None = None  # the last distinct ids looked up, and their slots
        #: the known care cycles' ids, by how a reader compares them (cycle_twins); the ids themselves are the
        #: known cycles' table, which it fills as a file's cycles are added
        self._cycle_spellings = Spellings(lambda: pd.Index([], dtype=object), table=self._known_cycles)

    def units(self) -> set[tuple[str, str]]:
        if self._units is None:
            self._units = set(self._stored_units())
        return self._units | self.batch_units

    def _known_cycles(self) -> IdTable:
        """The known care cycles' ids: the stored ones, read once per batch (a cycle the batch has written since
        is among its own, which replace the stored values here, so a second read would add nothing)."""
        if self._cycle_ids is None:
            stored = self._stored_cycles()
            self._cycle_ids = IdTable()
            # Arrow columns (vbhc.ingest.run): no Python object per cycle, and no array of one per cycle either (a
            # condition is a code of the few distinct ones, a date its nanoseconds): a small file into a registry
            # of 1,000,000 cycles reads them all, and each per-cycle object array (8 MB) and its factorize cost
            # peak memory
            conditions = stored.column("condition").combine_chunks()
            if not pa.types.is_dictionary(conditions.type):
                conditions = conditions.dictionary_encode()
            codes = conditions.indices.fill_null(-1).to_numpy(zero_copy_only=False)
            dates = stored.column("index_date").combine_chunks().cast(pa.timestamp("ns"))
            slots = self._cycle_ids.add(stored.column("cycle_id"))  # each cycle once: cycle_id is the table's key
            self._grow()
            self._cycle_condition[slots] = self._condition_codes_of(conditions.dictionary.to_pylist())[codes]
            self._cycle_date[slots] = dates.to_numpy(zero_copy_only=False)
            self._found = None
        return self._cycle_ids

    def _grow(self) -> None:
        """The per-slot arrays grown to the table's size (by half again, so a chunk's few new cycles copy none)."""
        size = len(self._cycle_ids)
        if size > len(self._cycle_condition):
            room = max(size, int(len(self._cycle_condition) * 1.5))
            self._cycle_condition = np.concatenate(
                [self._cycle_condition, np.full(room - len(self._cycle_condition), -1, np.int32)]
            )
            self._cycle_date = np.concatenate(
                [self._cycle_date, np.full(room - len(self._cycle_date), np.datetime64("NaT"), "datetime64[ns]")]
            )

    def _condition_codes_of(self, names: list[object]) -> np.ndarray:
        """The codes (of _condition_names) of the distinct conditions `names` (None: no condition, -1), with a
        last -1 (for a code -1: none)."""
        known = [-1 if v is None else self._condition_codes.setdefault(v, len(self._condition_codes)) for v in names]
        self._condition_names.extend(list(self._condition_codes)[len(self._condition_names) :])
        return np.array([*known, -1], dtype=np.int32)

    def _set_cycles(self, slots: np.ndarray, conditions: object, index_dates: object) -> None:
        """The condition and index date of the cycles at `slots` (the arrays grown to the table's size)."""
        self._grow()
        codes, distinct = pd.factorize(pd.Series(conditions, dtype=object), use_na_sentinel=True)
        self._cycle_condition[slots] = self._condition_codes_of(list(distinct))[codes]
        self._cycle_date[slots] = pd.to_datetime(pd.Series(index_dates)).to_numpy(dtype="datetime64[ns]")
        self._found = None

    def _slots(self, distinct: object) -> np.ndarray:
        """The slots of the distinct cycle ids `distinct` (-1: unknown), looked up once for a chunk's checks."""
        if self._found is None or self._found[0] is not distinct:
            self._found = (distinct, self._known_cycles().find(distinct))
        return self._found[1]

    def conditions_of(self, distinct: pd.Index) -> np.ndarray:
        """The condition of each of the distinct cycle ids `distinct` (NaN where the cycle is not known)."""
        slots = self._slots(distinct)
        names = np.array([*self._condition_names, np.nan], dtype=object)  # the last: no condition
        codes = np.full(len(slots), -1, np.int32)
        codes[slots >= 0] = self._cycle_condition[slots[slots >= 0]]
        return names[codes]

    def index_dates_of(self, distinct: pd.Index) -> np.ndarray:
        """The index date of each of the distinct cycle ids `distinct` (NaT where not given or not known)."""
        slots = self._slots(distinct)
        out = np.full(len(slots), np.datetime64("NaT"), "datetime64[ns]")
        out[slots >= 0] = self._cycle_date[slots[slots >= 0]]
        return out

    def cycle_conditions(self) -> pd.Series:
        """Every known cycle's condition, indexed by cycle_id (built for the asking: the checks look up a chunk's
        cycles with conditions_of)."""
        table = self._known_cycles()
        ids = pd.Index(table.texts().to_numpy(zero_copy_only=False), dtype=object, name="cycle_id")
        return pd.Series(self.conditions_of(ids), index=ids, name="condition")

    def cycle_index_dates(self) -> pd.Series:
        """Each known cycle's index date (NaT where not given): a child row may not be dated before it."""
        table = self._known_cycles()
        ids = pd.Index(table.texts().to_numpy(zero_copy_only=False), dtype=object, name="cycle_id")
        return pd.Series(self.index_dates_of(ids), index=ids, name="index_date")

    def add_batch_cycles(self, cycle_ids: pd.Series, conditions: pd.Series, index_dates: pd.Series) -> None:
        """A chunk's care cycles (named and with a known condition): a later row of a cycle replaces its stored or
        earlier values, as the upsert will."""
        table = self._known_cycles()
        self._cycle_spellings.add(cycle_ids)  # its new ids into the table, their spellings known
        codes, distinct = pd.factorize(pd.Series(cycle_ids, dtype=object).to_numpy(dtype=object))
        if not len(distinct):
            return
        last = np.zeros(len(distinct), dtype=np.int64)
        np.maximum.at(last, codes, np.arange(len(codes)))  # each cycle's last row in the chunk
        slots = table.find(distinct)
        self._set_cycles(
            slots,
            pd.Series(conditions, dtype=object).to_numpy(dtype=object)[last],
            pd.to_datetime(pd.Series(index_dates)).to_numpy(dtype="datetime64[ns]")[last],
        )

    def cycle_twins(self, cycle_ids: pd.Series) -> dict[str, str]:
        """Each of `cycle_ids` that is no known care cycle (stored, or of an earlier row or file) but reads as
        one, or as an earlier one of `cycle_ids` (id_keys: c0000001 as C0000001, 007 as 7), mapped to that other
        spelling. Only ids that are not known exactly are looked at: a file that sends its cycles again costs
        nothing here."""
        return self._cycle_spellings.twins(cycle_ids)

    def _vital_table(self) -> IdTable:
        """The cycles with a vital status row (stored, read on first use, then this batch's)."""
        if self._vital_cycles is None:
            self._vital_cycles = IdTable()
            stored = self._stored_vital() if self._stored_vital is not None else _EMPTY_VITAL
            self._set_vital(
                stored.index.get_level_values(0),
                stored.index.get_level_values(1),
                stored["value"].to_numpy(dtype=float),
                stored["date"].to_numpy(dtype="datetime64[ns]"),
            )
        return self._vital_cycles

    def _set_vital(self, cycle_ids: object, outcomes: object, values: np.ndarray, dates: np.ndarray) -> None:
        """Rows of vital status: each (cycle, outcome)'s value and date in a cell of arrays by cycle slot and
        outcome (a few); a later row of a cycle and outcome replaces an earlier one."""
        table = self._vital_cycles
        cycles = pd.Series(cycle_ids, dtype=object).to_numpy(dtype=object)
        codes, distinct = pd.factorize(cycles)
        if not len(distinct):
            return
        slots = table.find(distinct)
        new = slots < 0
        if new.any():
            slots[new] = table.add(distinct[new])
        outcome_codes = np.array(
            [self._vital_outcomes.setdefault(o, len(self._vital_outcomes)) for o in pd.Series(outcomes, dtype=object)],
            dtype=np.int64,
        )
        rows, columns = len(table), len(self._vital_outcomes)
        if rows > self._vital_value.shape[0] or columns > self._vital_value.shape[1]:
            room = max(rows, int(self._vital_value.shape[0] * 1.5))
            value = np.full((room, columns), np.nan)
            date = np.full((room, columns), np.datetime64("NaT"), "datetime64[ns]")
            old_rows, old_columns = self._vital_value.shape
            value[:old_rows, :old_columns] = self._vital_value
            date[:old_rows, :old_columns] = self._vital_date
            self._vital_value, self._vital_date = value, date
        # in row order: numpy's assignment through repeated indices keeps the last (a later row replaces)
        order = np.arange(len(codes))
        cells = slots[codes] * columns + outcome_codes
        _, last = np.unique(cells[::-1], return_index=True)
        last = order[::-1][last]
        flat_value = self._vital_value.reshape(-1)
        flat_date = self._vital_date.reshape(-1)
        flat_value[cells[last]] = np.asarray(values, dtype=float)[last]
        flat_date[cells[last]] = np.asarray(dates, dtype="datetime64[ns]")[last]
        self._deaths = None

    def death_dates_of(self, distinct: pd.Index) -> np.ndarray:
        """The recorded date of death of each of the distinct cycle ids `distinct` (NaT where none is known): its
        vital status (the outcome a survival indicator follows) with value 1 and a date, stored or from this
        batch's earlier files and chunks; a later row of the same cycle and outcome replaces an earlier one, as
        the upsert will (a correction to "alive"); the earliest of a cycle's outcomes."""
        table = self._vital_table()
        if self._deaths is None:
            n = len(table)
            dead = (self._vital_value[:n] == 1) & ~np.isnat(self._vital_date[:n])
            never = np.iinfo(np.int64).max
            days = np.where(dead, self._vital_date[:n].view(np.int64), never).min(axis=1, initial=never)
            self._deaths = np.where(days == never, np.iinfo(np.int64).min, days).view("datetime64[ns]")
        slots = table.find(distinct)
        out = np.full(len(slots), np.datetime64("NaT"), "datetime64[ns]")
        out[slots >= 0] = self._deaths[slots[slots >= 0]]
        return out

    def death_dates(self) -> pd.Series:
        """Each care cycle's recorded date of death (cycle_id index), as death_dates_of gives it (for the asking)."""
        table = self._vital_table()
        ids = pd.Index(table.texts().to_numpy(zero_copy_only=False), dtype=object)
        deaths = self.death_dates_of(ids)
        known = ~np.isnat(deaths)
        return pd.Series(deaths[known], index=ids[known], dtype="datetime64[ns]")

    def add_batch_vital(self, cycle_ids: pd.Series, outcomes: pd.Series, values: pd.Series, dates: pd.Series) -> None:
        """A file's vital status rows, for the rows of later files and chunks dated against a death."""
        self._vital_table()
        self._set_vital(
            cycle_ids,
            outcomes,
            values.to_numpy(dtype=float),
            pd.to_datetime(dates).to_numpy(dtype="datetime64[ns]"),
        )


def id_keys(codes: pd.Series | pd.Index) -> pd.Series:
    """Each id as a person compares ids: upper and lower case alike (c0000001 is C0000001 to a reader and to
    Excel's lookups) and a number's leading zeros left off (007 and 7: Excel opens a CSV showing both as 7)."""
    values = pd.Series(codes, dtype=object).to_numpy()
    try:  # Arrow's kernels: a file's new ids (every id of a first import) without a Python call per id
        text = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        text = None
    if text is None or text.null_count:
        keys = pd.Series(values, dtype=object).str.casefold()
        digits = keys.str.fullmatch(r"[0-9]+", na=False).to_numpy()
        if digits.any():
            keys[digits] = keys[digits].str.lstrip("0").replace("", "0")
        return keys.reset_index(drop=True)
    # casefold is lower case for ASCII text; other text is folded by Python, id by id
    ascii_ = pc.string_is_ascii(text)
    keys = pc.ascii_lower(text)
    if not pc.all(ascii_).as_py():
        folded = keys.to_numpy(zero_copy_only=False)
        other = ~ascii_.to_numpy(zero_copy_only=False)
        folded[other] = [v.casefold() for v in values[other]]
        keys = pa.array(folded, type=pa.string())
    digits = pc.match_substring_regex(keys, r"\A[0-9]+\z")
    if pc.any(digits).as_py():
        stripped = pc.utf8_ltrim(keys, characters="0")
        keys = pc.if_else(digits, pc.if_else(pc.equal(stripped, ""), "0", stripped), keys)
    return pd.Series(keys.to_numpy(zero_copy_only=False), dtype=object)


class Spellings:
    """Ids known exactly and by how a reader compares them (id_keys): those `stored` gives (read on a file's first
    chunk, in its order), then those later rows and files add. `twins` maps each id that differs from a known one,
    or from an earlier one of its own, only as id_keys leaves out, to that other spelling (the first one known of
    that key). The keys are built only once a file brings an id that is not known exactly: a file that sends its
    responses again costs a look-up per distinct id.

    Why tables grown in place: each chunk looks up and adds its own distinct ids only. An index of every known
    id, rebuilt and hashed again for each chunk, made the check of a file's first import grow with its rows times
    its chunks (a million care cycles: five chunks, each hashing up to a million ids three times). Why IdTables
    (vbhc.ingest.ids) rather than dictionaries: a batch knows every stored and imported id, and a dictionary of
    Python strings cost ~200 bytes an id (10,000,000 care cycles: gigabytes). `table`: the known ids' table when
    another structure shares it (BatchState's known care cycles); it holds the stored ids already."""

    def __init__(self, stored: Callable[[], pd.Index], table: Callable[[], IdTable] | None = None):
        self._stored = stored
        self._table = table
        self._known: IdTable | None = None  # every known id once, at a slot in the order first known
        self._first: IdTable | None = None  # each known id_keys key ...
        self._first_slot = np.empty(0, np.int64)  # ... and the slot (in _known) of its first known spelling
        self._pending: tuple[pd.Series, tuple[list, list]] | None = None  # the last ids looked at, for add()

    def _ids(self) -> IdTable:
        if self._known is None:
            if self._table is not None:
                self._known = self._table()
            else:
                self._known = IdTable()
                self._known.add(pd.Index(self._stored(), dtype=object).unique())
        return self._known

    def _keys(self) -> IdTable:
        if self._first is None:
            texts = self._ids().texts()
            keys = _arrow_keys(texts)
            encoded = keys.dictionary_encode()
            _, first = np.unique(encoded.indices.to_numpy(zero_copy_only=False), return_index=True)
            self._first = IdTable()
            self._first.add(keys.take(pa.array(first)))
            self._first_slot = first.astype(np.int64)
        return self._first

    def _fresh(self, ids: pd.Series) -> tuple[list, list]:
        """The distinct non-empty `ids` that are not known, in the order they first appear, and their keys. Kept
        for add() when it is given the same ids next (the known ids are the same then)."""
        if self._pending is not None and self._pending[0] is ids:
            return self._pending[1]
        known = self._ids()
        distinct = _distinct(ids)
        if distinct and len(known):
            slots = known.find(distinct)
            new = [v for v, slot in zip(distinct, slots.tolist(), strict=True) if slot < 0 and v != ""]
        else:
            new = [v for v in distinct if v != ""] if "" in distinct else distinct
        found = (new, id_keys(new).tolist() if new and self._first is not None else [])
        self._pending = (ids, found)
        return found

    def twins(self, ids: pd.Series) -> dict[str, str]:
        new, keys = self._fresh(ids)
        if not new:
            return {}
        first = self._keys()
        if len(keys) != len(new):  # the keys were built just now
            keys = id_keys(new).tolist()
            self._pending = (ids, (new, keys))
        key_slots = first.find(keys)
        if (key_slots < 0).all() and len(set(keys)) == len(keys):
            return {}  # no key known, none twice: the usual chunk, without a look-up per id
        spelled = key_slots >= 0
        firsts = np.full(len(keys), None, dtype=object)
        if spelled.any():
            firsts[spelled] = self._known.take(self._first_slot[key_slots[spelled]]).to_numpy(zero_copy_only=False)
        earlier: dict[object, object] = {}  # a key's first spelling among `new`
        twins: dict[str, str] = {}
        for value, key, seen in zip(new, keys, firsts.tolist(), strict=True):
            if seen is None:
                seen = earlier.setdefault(key, value)
            if seen != value:
                twins[value] = seen
        return twins

    def add(self, ids: pd.Series) -> None:
        """A chunk's ids, known to the next chunk and file."""
        new, keys = self._fresh(ids)
        self._pending = None
        if not new:
            return
        slots = self._known.add(new)
        if self._first is not None:
            if len(keys) != len(new):
                keys = id_keys(new).tolist()
            unknown = self._first.find(keys) < 0
            if not unknown.any():
                return
            # each new key's first spelling here
            codes, distinct = pd.factorize(pd.Series(keys, dtype=object)[unknown])
            at = np.flatnonzero(unknown)
            first = np.full(len(distinct), len(at), dtype=np.int64)
            np.minimum.at(first, codes, np.arange(len(at)))
            self._first.add(distinct)
            self._first_slot = np.concatenate([self._first_slot, slots[at[first]]])


def _arrow_keys(text: pa.Array) -> pa.Array:
    """id_keys of a column of ids (no null) as Arrow text: a Python object only for an id that is not ASCII."""
    ascii_ = pc.string_is_ascii(text)
    keys = pc.ascii_lower(text)
    if not pc.all(ascii_).as_py():
        other = np.flatnonzero(~ascii_.to_numpy(zero_copy_only=False))
        folded = [v.casefold() for v in text.take(pa.array(other)).to_pylist()]
        keys = pc.replace_with_mask(keys, pc.invert(ascii_), pa.array(folded, type=keys.type))
    digits = pc.match_substring_regex(keys, r"\A[0-9]+\z")
    if pc.any(digits).as_py():
        stripped = pc.utf8_ltrim(keys, characters="0")
        keys = pc.if_else(digits, pc.if_else(pc.equal(stripped, ""), "0", stripped), keys)
    return keys


def _distinct(ids: pd.Series) -> list:
    """The distinct values of `ids` in the order they first appear, as plain Python objects (a string column's
    distinct values found by Arrow before any Python string is made)."""
    return pd.Series(ids, copy=False).unique().tolist()


def id_twin_rule(code: str, known: str, what: str = "cycle") -> Rule:
    """Why `code` is refused as a twin of the known id `known` (`what`: "cycle" or "response"): case, or leading
    zeros. The known id is shown as the problem's value is (one that looks like a BSN is hidden: shown_value)."""
    shown = shown_value(f"{what}_id", known)
    if code.casefold() == known.casefold():
        return Rule(f"validate.{what}_case", known=shown)
    return Rule(f"validate.{what}_zeros", known=shown)


def flag_patient_twins(ck: Checker, batch: BatchState, patient_id: pd.Series) -> None:
    """Refuse a patient id that reads as another one (stored, or of an earlier row or file): P0001x beside
    p0001X, 0042 beside 42. A reader, and Excel's lookups, take them for one patient; the database held two, so a
    patient's second care cycle counted as another patient's first (case-mix, readmissions). The problem names
    the row of the other spelling where it is in this part of the file, never the id itself: a patient id is
    never shown (MASKED_COLUMNS), and naming its twin would show it."""
    twins = batch.patient_spellings.twins(patient_id)
    batch.patient_spellings.add(patient_id)
    if not twins:
        return
    ids = patient_id.to_numpy(dtype=object)
    wanted = set(twins.values())
    first_row: dict[str, int] = {}
    for i in np.flatnonzero(patient_id.isin(list(wanted)).to_numpy(dtype=bool)):
        first_row.setdefault(ids[i], int(ck.chunk.rows[i]))

    def rule(i: int) -> Rule:
        code, known = ids[i], twins[ids[i]]
        how = "case" if code.casefold() == known.casefold() else "zeros"
        row = first_row.get(known)
        return Rule(f"validate.patient_{how}_row", row=row) if row is not None else Rule(f"validate.patient_{how}")

    ck.flag(patient_id.isin(list(twins)).to_numpy(dtype=bool), "patient_id", rule)


_EMPTY_VITAL = pd.DataFrame(
    {"value": pd.Series(dtype=float), "date": pd.Series(dtype="datetime64[ns]")},
    index=pd.MultiIndex.from_arrays([[], []], names=["cycle_id", "outcome"]),
)


#: Unit codes are keys that labels join with "/" and "@" (vbhc.registry): letters, digits, "_" and "-" only.
UNIT_CODE = r"[A-Za-z0-9][A-Za-z0-9_-]*"


def validate_units(ck: Checker, batch: BatchState) -> pd.DataFrame:
    f = ck.frame
    hospital = ck.identifier("hospital", max_len=40)
    department = ck.identifier("department", max_len=40)
    for column, codes in (("hospital", hospital), ("department", department)):
        odd = (codes != "") & ~codes.str.fullmatch(UNIT_CODE).to_numpy(dtype=bool)
        ck.flag(odd, column, Rule("validate.unit_code_characters"))
    # H01 and h01 are one unit to a reader and two keys to the store: a code differing from a stored one, one of
    # an earlier file or an earlier row only in case is refused naming the other spelling (not merged: which
    # one is meant, and whether the other's rows belong to it, only the sender can say)
    known = batch.units()
    twins = case_twins(hospital, {h for h, _ in known})
    twin_hospital = hospital.isin(list(twins)).to_numpy(dtype=bool)
    ck.flag(twin_hospital, "hospital", lambda i: Rule("validate.unit_case", known=twins[hospital.iat[i]]))
    labels = hospital + "/" + department
    department_twins = case_twins(labels, {f"{h}/{d}" for h, d in known})
    twin_department = labels.isin(list(department_twins)).to_numpy(dtype=bool) & ~twin_hospital
    ck.flag(
        twin_department,
        "department",
        lambda i: Rule("validate.unit_case", known=department_twins[labels.iat[i]]),
    )
    hospital_name = ck.text("hospital_name", max_len=200)
    department_name = ck.text("department_name", max_len=200)
    division = ck.text("division", required=False, max_len=200) if "division" in f else pd.Series("", index=f.index)
    own = pd.Series(False, index=f.index)
    if "own_hospital" in f:
        raw = f["own_hospital"].str.strip().str.lower()
        truthy, falsy = {"1", "yes", "ja", "true", "y", "j"}, {"0", "no", "nee", "false", "n", ""}
        ck.flag(~raw.isin(truthy | falsy), "own_hospital", Rule("validate.expected_yes_no"))
        own = raw.isin(truthy)
    out = pd.DataFrame(
        {
            "hospital": hospital,
            "code": department,
            "hospital_name": hospital_name,
            "name": department_name,
            "division": division,
            "own_hospital": own,
        }
    )
    names = out.groupby("hospital")["hospital_name"].transform("nunique")
    ck.flag(names > 1, "hospital_name", Rule("validate.hospital_names_differ"))
    flags = out.groupby("hospital")["own_hospital"].transform("nunique")
    ck.flag(flags > 1, "own_hospital", Rule("validate.own_hospital_differs"))
    return out


def flag_unknown_units(ck: Checker, hospital: pd.Series, department: pd.Series, known: set[tuple[str, str]]) -> None:
    """Flag the rows whose (hospital, department) is no unit of `known` (stored or in this batch). One that differs
    from a known unit only in case (h01 for H01) is named with the known spelling, in the column that differs
    (validate.unit_case, as a units file's twin is): "unknown hospital/department" would send the sender looking
    for a unit that is there."""
    # each distinct (hospital, department) looked up once: a file of 100,000 rows names a few dozen units
    h_codes, h_values = pd.factorize(hospital, use_na_sentinel=False)
    d_codes, d_values = pd.factorize(department, use_na_sentinel=False)
    pair_codes, pairs = pd.factorize(h_codes.astype(np.int64) * len(d_values) + d_codes)
    named_units = [(h_values[p // len(d_values)], d_values[p % len(d_values)]) for p in pairs]
    is_known = np.array([u in known for u in named_units] + [False], dtype=bool)
    unknown = ~is_known[pair_codes] & (hospital != "").to_numpy(dtype=bool) & (department != "").to_numpy(dtype=bool)
    if not unknown.any():
        return
    spelled: dict[str, tuple[str, str]] = {}
    for h, d in sorted(known):
        spelled.setdefault(f"{h}/{d}".casefold(), (h, d))
    twin_of = [spelled.get(f"{h}/{d}".casefold()) for h, d in named_units]
    twins: dict[int, tuple[str, str]] = {}  # row position -> the known unit it differs from only in case
    for i in np.flatnonzero(unknown):
        found = twin_of[pair_codes[i]]
        if found is not None:
            twins[int(i)] = found
    twin = np.zeros(len(unknown), dtype=bool)
    twin[list(twins)] = True
    other_hospital = twin.copy()
    other_hospital[[i for i, (h, _) in twins.items() if h == hospital.iat[i]]] = False

    def named(i: int) -> Rule:
        h, d = twins[i]
        return Rule("validate.unit_case", known=h if d == department.iat[i] else f"{h}/{d}")

    ck.flag(other_hospital, "hospital", named)
    ck.flag(twin & ~other_hospital, "department", lambda i: Rule("validate.unit_case", known="/".join(twins[i])))
    ck.flag(unknown & ~twin, "department", Rule("validate.unknown_unit", table="units"))


def validate_care_cycles(ck: Checker, batch: BatchState) -> pd.DataFrame:
    f = ck.frame
    catalog = batch.catalog
    cycle_id = ck.identifier("cycle_id")
    # C0000001 and c0000001, 7 and 007: one care cycle to a reader, two keys to the store; refused naming the
    # other spelling, as a unit's twin is (which one is meant, only the sender can say)
    twins = batch.cycle_twins(cycle_id)
    if twins:
        twin = cycle_id.isin(list(twins)).to_numpy(dtype=bool)
        ck.flag(twin, "cycle_id", lambda i: id_twin_rule(cycle_id.iat[i], twins[cycle_id.iat[i]]))
    patient_id = ck.identifier("patient_id")
    ck.flag(is_bsn(patient_id), "patient_id", Rule("validate.looks_like_bsn"))
    flag_patient_twins(ck, batch, patient_id)
    condition = ck.text("condition")
    ck.codes("condition", condition, set(catalog.conditions), "validate.unknown_condition")
    hospital = ck.identifier("hospital", max_len=40)
    department = ck.identifier("department", max_len=40)
    flag_unknown_units(ck, hospital, department, batch.units())
    index_date = ck.date("index_date")
    treatment = ck.text("treatment", required=False, max_len=100) if "treatment" in f else pd.Series("", index=f.index)

    out = pd.DataFrame(
        {
            "cycle_id": cycle_id,
            "patient_id": patient_id,
            "condition": condition,
            "hospital": hospital,
            "department": department,
            "index_date": index_date,
            "treatment": treatment,
        }
    )
    # each case-mix column filled per condition (the rows of a condition that does not use it stay missing):
    # numbers as float, codes as objects (None outside the conditions that use it, NaN for an empty cell)
    filled: dict[str, np.ndarray] = {}
    for name, kind in STORED_CASEMIX.items():
        out[name] = np.nan if kind != "category" else None
    # every column stripped once and every condition's rows found once, not once per condition and column
    stripped = {name: f[name].str.strip() for name in STORED_CASEMIX if name in f}
    given = {name: (raw != "").to_numpy() for name, raw in stripped.items()}
    treatments = _Codes(*pd.factorize(treatment))
    cond_codes, cond_values = pd.factorize(condition)
    for k, cond_id in enumerate(cond_values):  # in the order the conditions first appear
        if cond_id not in catalog.conditions:
            continue
        cond = catalog.conditions[cond_id]
        mask = cond_codes == k
        bad_treatment = mask & ~treatments.empty & ~treatments.isin(cond.treatments)
        ck.flag(
            bad_treatment,
            "treatment",
            Rule("validate.unknown_treatment", condition=cond_id, allowed=", ".join(cond.treatments)),
        )
        used = {v.name: v for v in cond.casemix}
        for name in STORED_CASEMIX:
            if name not in f:
                continue
            raw = stripped[name]
            if name not in used:
                ck.flag(mask & given[name], name, Rule("validate.not_casemix_variable", condition=cond_id))
                continue
            var = used[name]
            if var.type == "category":
                allowed = set(var.codes)
                ck.flag(
                    mask & given[name] & ~raw.isin(allowed).to_numpy(dtype=bool),
                    name,
                    Rule("validate.unknown_casemix_code", allowed=_listed(allowed), variable=name),
                )
                column = filled.setdefault(name, np.full(len(f), None, dtype=object))
                column[mask] = raw[mask].replace("", None).to_numpy(dtype=object)
            else:
                values = ck.number(name, required=False, mask=mask, stripped=raw).to_numpy()
                known = mask & ~np.isnan(values)
                if var.type == "integer":
                    with np.errstate(invalid="ignore"):  # inf % 1 is NaN (not whole), as pandas has it
                        fraction = np.mod(values, 1)
                    ck.flag(known & (fraction != 0), name, Rule("validate.not_whole_number"))
                lo, hi = var.min, var.max
                ck.flag(
                    known & ((values < lo) | (values > hi)),
                    name,
                    Rule("validate.casemix_out_of_range", low=f"{lo:g}", high=f"{hi:g}", condition=cond_id),
                )
                column = filled.setdefault(name, np.full(len(f), np.nan))
                column[mask] = values[mask]
    for name, column in filled.items():
        out[name] = pd.Series(column, index=out.index, dtype=column.dtype)
    return out


def _child_conditions(
    ck: Checker, batch: BatchState, cycle_id: pd.Series, lookup: tuple[np.ndarray, pd.Index] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's condition through its care cycle ("" where the cycle is unknown, which is flagged), as codes of
    the distinct conditions in the order they first appear (pd.factorize of the rows' conditions): (codes,
    conditions). Looked up and coded once per distinct cycle and spread back by position: a care cycle has dozens
    of PROM rows. `lookup`: the cycle ids' pd.factorize, when the caller looks up more of each cycle (its index
    date)."""
    codes, distinct = pd.factorize(cycle_id) if lookup is None else lookup
    found = np.append(batch.conditions_of(distinct), np.nan)  # the last: a missing cycle_id
    unknown = pd.isna(found)  # per distinct cycle, then spread to its rows
    # a cycle id given: per distinct id, spread by position (not a comparison of every row's text); a missing one
    # (code -1: None) is not "", as its row's comparison says
    given = np.append((pd.Series(distinct, dtype=object) != "").to_numpy(dtype=bool), True)[codes]
    ck.flag(unknown[codes] & given, "cycle_id", Rule("validate.unknown_cycle"))
    found[unknown] = ""
    if (codes < 0).any():  # a missing cycle id: the distinct cycles' order is not the rows' order then
        return pd.factorize(pd.Series(found[codes], index=cycle_id.index, dtype=object))
    # the distinct cycles are in the order they first appear, so their conditions are too (the last: no cycle id)
    found_codes, conditions = pd.factorize(pd.Series(found[:-1], dtype=object))
    return found_codes[codes], conditions


def _child_index_dates(batch: BatchState, cycle_id: pd.Series, lookup: tuple[np.ndarray, pd.Index]) -> pd.Series:
    """Each row's care cycle's index date (NaT where the cycle is unknown), through the cycle ids' factorize."""
    codes, distinct = lookup
    found = np.append(batch.index_dates_of(distinct), np.datetime64("NaT", "ns"))
    return pd.Series(found[codes], index=cycle_id.index)


def _child_death_dates(batch: BatchState, cycle_id: pd.Series, lookup: tuple[np.ndarray, pd.Index]) -> pd.Series:
    """Each row's care cycle's recorded date of death (NaT where none is known), through the cycle ids' factorize."""
    codes, distinct = lookup
    found = np.append(batch.death_dates_of(distinct), np.datetime64("NaT", "ns"))
    return pd.Series(found[codes], index=cycle_id.index)


def _after_death(deaths: pd.Series) -> Callable[[int], Rule]:
    def rule(i: int) -> Rule:
        return Rule("validate.after_death", death_date=deaths.iat[i].date().isoformat())

    return rule


def _flag_after_death(
    ck: Checker,
    batch: BatchState,
    column: str,
    dates: pd.Series,
    rows: np.ndarray,
    cycle_id: pd.Series,
    lookup: tuple[np.ndarray, pd.Index],
) -> None:
    """Refuse a row dated after its care cycle's recorded death (vital status stored, or from an earlier file or
    chunk of the batch, or this file's own): a questionnaire answered or an outcome found a year after the death
    is an error in one of the two dates, and would count a dead patient's quality of life or complication.
    The same day is allowed: dates are days, and an outcome or questionnaire can be recorded on the day of
    death (a complication the patient died of). Costs carry no date and PREM answers no care cycle, so
    neither is checked. Only the vital status counts as the death: a binary "mortality within N days" outcome
    is dated by its source as it likes (the event, or the end of its window), the catalog does not say."""
    deaths = _child_death_dates(batch, cycle_id, lookup)
    # numpy compares datetimes as pandas does (NaT compares False), without pandas' per-call overhead
    ck.flag(rows & (dates.to_numpy() > deaths.to_numpy()), column, _after_death(deaths))


def _before_index_date(index_dates: pd.Series) -> Callable[[int], Rule]:
    def rule(i: int) -> Rule:
        return Rule("validate.before_index_date", index_date=index_dates.iat[i].date().isoformat())

    return rule


def validate_clinical_outcomes(ck: Checker, batch: BatchState) -> pd.DataFrame:
    f = ck.frame
    cycle_id = ck.identifier("cycle_id")
    lookup = pd.factorize(cycle_id)
    cond_codes, cond_values = _child_conditions(ck, batch, cycle_id, lookup)
    outcome = ck.text("outcome")
    value = ck.number("value")
    date = ck.date("date", required=False) if "date" in f else pd.Series(pd.NaT, index=f.index)
    # an outcome follows the start of its care cycle: one dated before the index date belongs to another cycle,
    # or one of the two dates is wrong
    index_dates = _child_index_dates(batch, cycle_id, lookup)
    ck.flag((date < index_dates).to_numpy(dtype=bool), "date", _before_index_date(index_dates))
    vital = np.zeros(len(f), dtype=bool)  # the rows of a survival indicator's outcome: the vital status
    # conditions and outcomes as codes of their few distinct values (in the order they first appear, as a
    # groupby's): the checks per condition and outcome compare small integers instead of strings per row
    outcomes = _Codes(*ck.coded("outcome"))
    numbers, given, undated = value.to_numpy(), value.notna().to_numpy(), date.isna().to_numpy()
    yes_no = value.isin([0.0, 1.0]).to_numpy()
    for k, cond_id in enumerate(cond_values):
        if not cond_id:
            continue
        cond = batch.catalog.conditions[cond_id]
        mask = cond_codes == k
        by_id = {o.id: o for o in cond.outcomes}
        followed_ids = sorted({i.outcome for i in cond.indicators if i.kind in SURVIVAL_KINDS and i.outcome})
        vital |= mask & outcomes.isin(followed_ids)
        ck.flag(
            mask & ~outcomes.isin(by_id) & ~outcomes.empty,
            "outcome",
            Rule("validate.unknown_outcome", condition=cond_id, allowed=", ".join(by_id)),
        )
        # the vital status a survival indicator follows is dated (death, or the date last known alive): without
        # its date vbhc.survival cannot follow the cycle and left it out of every unit's n without a word
        for followed in followed_ids:
            if "date" in f:
                ck.flag(
                    mask & outcomes.equals(followed) & undated,
                    "date",
                    Rule("validate.survival_outcome_undated", outcome=followed),
                )
            else:  # a file without the column: one line that says so, not the same line for each of its rows
                ck.flag_once(
                    mask & outcomes.equals(followed),
                    "date",
                    Rule("validate.survival_date_column_missing", outcome=followed),
                )
        for o in cond.outcomes:
            m = mask & outcomes.equals(o.id) & given
            if o.type == "binary":
                ck.flag(m & ~yes_no, "value", Rule("validate.outcome_yes_no", outcome=o.id))
            else:
                ck.flag(
                    m & ((numbers < o.min) | (numbers > o.max)),
                    "value",
                    Rule("validate.outcome_out_of_range", outcome=o.id, low=f"{o.min:g}", high=f"{o.max:g}"),
                )
    # this file's vital status first: its other rows are dated against a death it records too
    stated = vital & yes_no
    if stated.any():
        batch.add_batch_vital(cycle_id[stated], outcome[stated], value[stated], date[stated])
    _flag_after_death(ck, batch, "date", date, ~vital, cycle_id, lookup)
    return pd.DataFrame({"cycle_id": cycle_id, "outcome": outcome, "value": value, "date": date})


def validate_prom_responses(ck: Checker, batch: BatchState) -> pd.DataFrame:
    f = ck.frame
    cycle_id = ck.identifier("cycle_id")
    lookup = ck.coded("cycle_id")
    cond_codes, cond_values = _child_conditions(ck, batch, cycle_id, lookup)
    instrument = ck.text("instrument", max_len=40)
    timepoint = ck.text("timepoint", max_len=40)
    item = ck.text("item", max_len=40)
    value = ck.number("value")
    completed = ck.date("completed_date", required=False) if "completed_date" in f else pd.Series(pd.NaT, index=f.index)
    catalog = batch.catalog
    # conditions, instruments and timepoints as codes of their few distinct values: the checks per condition
    # and instrument compare small integers instead of a million strings each
    inst = _Codes(*ck.coded("instrument"))
    times = _Codes(*ck.coded("timepoint"))
    for k, cond_id in enumerate(cond_values):
        if not cond_id:
            continue
        cond = catalog.conditions[cond_id]
        mask = cond_codes == k
        uses = {p.instrument: p for p in cond.proms}
        ck.flag(
            mask & ~inst.isin(uses) & ~inst.empty,
            "instrument",
            Rule("validate.unknown_instrument", condition=cond_id, allowed=", ".join(uses)),
        )
        for inst_id, use in uses.items():
            m = mask & inst.equals(inst_id)
            ck.flag(
                m & ~times.isin(use.timepoints) & ~times.empty,
                "timepoint",
                Rule(
                    "validate.timepoint_not_collected",
                    instrument=inst_id,
                    condition=cond_id,
                    allowed=", ".join(use.timepoints),
                ),
            )
    # A follow-up questionnaire (a timepoint the catalog places `days` > 0 after the index date) answers how the
    # patient is after the care cycle began: completed before the index date it belongs to another cycle, or a
    # date is wrong. A baseline (days = 0) is usually filled in before the treatment, within its timepoint's
    # window (before_days, vbhc.catalog.BASELINE_WINDOW_DAYS): one completed longer before belongs to an
    # earlier episode or carries a wrong date, and would be counted as this cycle's starting point.
    if "completed_date" in f:
        is_follow_up = np.zeros(len(f), dtype=bool)
        window = np.full(len(f), np.nan)  # a baseline row's window in days, NaN for any other row
        for k, cond_id in enumerate(cond_values):
            if cond_id:
                in_condition = cond_codes == k
                for t in catalog.conditions[cond_id].timepoints:
                    if t.days > 0:
                        is_follow_up |= in_condition & times.equals(t.id)
                    else:
                        window[in_condition & times.equals(t.id)] = t.before_days
        is_baseline = ~np.isnan(window)
        if is_follow_up.any() or is_baseline.any():
            index_dates = _child_index_dates(batch, cycle_id, lookup)
            completed_at, index_at = completed.to_numpy(), index_dates.to_numpy()  # NaT compares False
            early = is_follow_up & (completed_at < index_at)
            ck.flag(
                early,
                "completed_date",
                lambda i: Rule(
                    "validate.follow_up_before_index_date",
                    index_date=index_dates.iat[i].date().isoformat(),
                    timepoint=timepoint.iat[i],
                ),
            )
            floor = index_at - pd.to_timedelta(np.where(is_baseline, window, 0), unit="D").to_numpy()
            too_early = is_baseline & (completed_at < floor)
            ck.flag(
                too_early,
                "completed_date",
                lambda i: Rule(
                    "validate.baseline_before_window",
                    index_date=index_dates.iat[i].date().isoformat(),
                    timepoint=timepoint.iat[i],
                    count=int(window[i]),
                ),
            )
    if "completed_date" in f:
        _flag_after_death(ck, batch, "completed_date", completed, np.ones(len(f), dtype=bool), cycle_id, lookup)
    # item ranges through a lookup on "instrument|item", so millions of rows need no loop over items
    lows, highs = item_bounds(catalog)
    items = _Codes(*ck.coded("item"))
    lo, hi = _pair_lookup(inst, items, lows, highs)
    known_instrument = inst.isin(catalog.instruments)
    ck.flag(
        known_instrument & np.isnan(lo) & ~items.empty,
        "item",
        lambda i: Rule("validate.unknown_item", instrument=instrument.iat[i]),
    )
    answers = value.to_numpy(dtype="float64")
    ck.flag(
        ~np.isnan(lo) & ~np.isnan(answers) & ((answers < lo) | (answers > hi) | (answers % 1 != 0)),
        "value",
        _item_rule(instrument, item, lows, highs),
    )
    # the keys as codes of their distinct values (equal to the texts cell by cell): the duplicate keys' hashes
    # and the packing into questionnaires take the codes, not every row's text again
    return pd.DataFrame(
        {
            "cycle_id": ck.categorical("cycle_id"),
            "instrument": ck.categorical("instrument"),
            "timepoint": ck.categorical("timepoint"),
            "item": ck.categorical("item"),
            "value": value,
            "completed_date": completed,
        }
    )


class _Codes:
    """A text column as codes of its distinct values (pd.factorize's), for membership tests on integers."""

    def __init__(self, codes: np.ndarray, distinct: pd.Index):
        self.codes, self.distinct = codes, distinct
        self.position = {v: i for i, v in enumerate(distinct)}
        self.empty = self.equals("")

    def equals(self, value: str) -> np.ndarray:
        return self.codes == self.position.get(value, -2)

    def isin(self, values) -> np.ndarray:
        # a table per distinct value (its last entry: a missing value, code -1) looked up by code
        table = np.zeros(len(self.position) + 1, dtype=bool)
        table[[self.position[v] for v in values if v in self.position]] = True
        return table[self.codes]


def _pair_lookup(first: _Codes, second: _Codes, *tables: pd.Series) -> list[np.ndarray]:
    """Per table, table["first|second"] per row (NaN where absent), computed on the few distinct pairs: a million
    rows hold a handful of instruments and items, so building and hashing a million keys is wasted work."""
    a, a_values = first.codes, first.distinct
    b, b_values = second.codes, second.distinct
    pairs = pd.Index([f"{x}|{y}" for x in a_values for y in b_values], dtype=object)
    where = np.where((a >= 0) & (b >= 0), a * len(b_values) + b, len(pairs))  # len(pairs): a missing value
    return [np.append(t.reindex(pairs).to_numpy(dtype="float64"), np.nan)[where] for t in tables]


def item_bounds(catalog: Catalog) -> tuple[pd.Series, pd.Series]:
    keys, lo, hi = [], [], []
    for inst in catalog.instruments.values():
        for it in inst.items:
            keys.append(f"{inst.id}|{it.id}")
            lo.append(it.min)
            hi.append(it.max)
    return pd.Series(lo, index=keys, dtype=float), pd.Series(hi, index=keys, dtype=float)


def _item_rule(instrument: pd.Series, item: pd.Series, lows: pd.Series, highs: pd.Series) -> Callable[[int], Rule]:
    def rule(i: int) -> Rule:
        key = f"{instrument.iat[i]}|{item.iat[i]}"
        return Rule(
            "validate.item_out_of_range",
            instrument=instrument.iat[i],
            item=item.iat[i],
            low=f"{lows[key]:g}",
            high=f"{highs[key]:g}",
        )

    return rule


def validate_costs(ck: Checker, batch: BatchState) -> pd.DataFrame:
    f = ck.frame
    cycle_id = ck.identifier("cycle_id")
    cond_codes, cond_values = _child_conditions(ck, batch, cycle_id)  # in the order they first appear
    activity = ck.text("activity")
    quantity = ck.number("quantity")
    unit_cost = ck.number("unit_cost")
    ck.flag(quantity < 0, "quantity", Rule("validate.negative_quantity"))
    # the cost breakdown sums an activity's quantities over every care cycle of a unit: lines each finite (1e308 at
    # a unit cost of 0, whose cost passes) add up to infinity there
    ck.flag(quantity > MAX_QUANTITY, "quantity", Rule("validate.quantity_too_large", limit=Number(MAX_QUANTITY)))
    ck.flag(unit_cost < 0, "unit_cost", Rule("validate.negative_unit_cost"))
    ck.flag(unit_cost > MAX_UNIT_COST, "unit_cost", Rule("validate.unit_cost_too_large", limit=Number(MAX_UNIT_COST)))
    # the cost indicators form quantity x unit_cost, then square a care cycle's cost (its variance): a line whose
    # cost or its square is no finite number makes the indicator infinite, so it is refused here
    with np.errstate(over="ignore", invalid="ignore"):
        cost = quantity.to_numpy() * unit_cost.to_numpy()
        too_large = np.isfinite(quantity.to_numpy()) & np.isfinite(unit_cost.to_numpy()) & ~np.isfinite(cost * cost)
    ck.flag(
        too_large,
        "unit_cost",
        lambda i: Rule(
            "validate.cost_too_large",
            quantity=shown_value("quantity", f["quantity"].iat[i].strip()),
            unit_cost=shown_value("unit_cost", f["unit_cost"].iat[i].strip()),
        ),
    )
    activities = _Codes(*ck.coded("activity"))
    for k, cond_id in enumerate(cond_values):
        if not cond_id:
            continue
        cond = batch.catalog.conditions[cond_id]
        mask = cond_codes == k
        ck.flag(
            mask & ~activities.isin(cond.cost_activities) & ~activities.empty,
            "activity",
            Rule("validate.unknown_activity", condition=cond_id, allowed=", ".join(cond.cost_activities)),
        )
    return pd.DataFrame({"cycle_id": cycle_id, "activity": activity, "quantity": quantity, "unit_cost": unit_cost})


#: Columns that describe one returned PREM questionnaire and must be the same on every row of a response.
PREM_RESPONSE_COLUMNS = ("questionnaire", "hospital", "department", "visit_date", "visit_type", *PREM_CASEMIX)


def validate_prem_responses(ck: Checker, batch: BatchState) -> pd.DataFrame:
    """Answers of patient-experience questionnaires (prems.toml): a known questionnaire, unit and item, an answer
    on the item's scale, a department-specific item only from its departments, the respondent's case-mix codes,
    and one questionnaire, unit, visit and case-mix per response."""
    f = ck.frame
    catalog = batch.catalog
    response_id = ck.identifier("response_id")
    ck.flag(is_bsn(response_id), "response_id", Rule("validate.looks_like_bsn"))
    # PR0000001 and pr0000001: one returned questionnaire to a reader, two responses to the store (its answers
    # split between them); refused naming the other spelling, as a care cycle's twin is
    twins = batch.response_spellings.twins(response_id)
    if twins:
        twin = response_id.isin(list(twins)).to_numpy(dtype=bool)
        ck.flag(twin, "response_id", lambda i: id_twin_rule(response_id.iat[i], twins[response_id.iat[i]], "response"))
    batch.response_spellings.add(response_id)
    questionnaire = ck.text("questionnaire")
    ck.codes("questionnaire", questionnaire, set(catalog.prems), "validate.unknown_questionnaire")
    hospital = ck.identifier("hospital", max_len=40)
    department = ck.identifier("department", max_len=40)
    flag_unknown_units(ck, hospital, department, batch.units())
    visit_date = ck.date("visit_date")
    visit_type = ck.text("visit_type", max_len=20)
    item = ck.text("item", max_len=40)
    answer = ck.number("answer")
    out = pd.DataFrame(
        {
            "response_id": response_id,
            "questionnaire": questionnaire,
            "hospital": hospital,
            "department": department,
            "visit_date": visit_date,
            "visit_type": visit_type,
            "item": item,
            "answer": answer,
        }
    )
    first = next(iter(catalog.prems.values()), None)
    variables = {v.name: v for v in first.casemix} if first is not None else {}
    for name in PREM_CASEMIX:
        raw = ck.text(name, required=False, max_len=20) if name in f else pd.Series("", index=f.index)
        if name in variables:
            ck.codes(name, raw, set(variables[name].codes), "validate.unknown_casemix_code", variable=name)
        out[name] = raw.replace("", None)
    for qid, rows in questionnaire.groupby(questionnaire, sort=False).groups.items():
        if qid not in catalog.prems:
            continue
        q = catalog.prems[qid]
        mask = f.index.isin(rows)
        ck.flag(
            mask & (visit_type != q.visit_type) & (visit_type != ""),
            "visit_type",
            Rule("validate.wrong_visit_type", questionnaire=qid, visit_type=q.visit_type),
        )
        by_id = {i.id: i for i in q.items}
        ck.flag(
            mask & ~item.isin(by_id) & (item != ""),
            "item",
            Rule(
                "validate.unknown_questionnaire_item",
                questionnaire=qid,
                allowed=", ".join(list(by_id)[:12]) + (" ..." if len(by_id) > 12 else ""),
            ),
        )
        for it in q.items:
            m = mask & (item == it.id).to_numpy()
            if not m.any():
                continue
            allowed = q.scales[it.scale].values
            ck.flag(
                m & answer.notna().to_numpy() & ~answer.isin([float(v) for v in allowed]).to_numpy(),
                "answer",
                Rule(
                    "validate.answer_not_on_scale",
                    questionnaire=qid,
                    item=it.id,
                    allowed=", ".join(str(v) for v in allowed),
                ),
            )
            if it.departments:
                ck.flag(
                    m & ~department.isin(it.departments).to_numpy() & (department != "").to_numpy(),
                    "item",
                    Rule("validate.item_for_other_departments", item=it.id, departments=", ".join(it.departments)),
                )
    # one returned questionnaire describes one visit of one respondent: its rows must agree
    for column in PREM_RESPONSE_COLUMNS:
        values = out[column].astype(object).where(out[column].notna(), "")
        values = values.astype(str)
        differs = values.groupby(response_id).transform("nunique") > 1
        ck.flag(differs.to_numpy() & (response_id != "").to_numpy(), column, Rule("validate.differs_within_response"))
    return out


VALIDATORS: dict[str, Callable[[Checker, BatchState], pd.DataFrame]] = {
    "units": validate_units,
    "care_cycles": validate_care_cycles,
    "clinical_outcomes": validate_clinical_outcomes,
    "prom_responses": validate_prom_responses,
    "costs": validate_costs,
    "prem_responses": validate_prem_responses,
}
