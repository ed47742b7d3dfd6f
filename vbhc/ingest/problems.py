"""What an import says about a file: problems with their location, and what each file did to the database.

Every problem names file, sheet, row, column, value and rule, because the person fixing it works in the source
spreadsheet, not in our code. Values, and column names that may be values (a file without a header row), pass
through `shown_value`/`shown_column` first: messages, the upload page and the audit log never carry a patient
identifier.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from vbhc.settings import MAX_REPORTED_PROBLEMS

#: Shown instead of the value in problems about patient identifiers: messages and logs never carry them.
HIDDEN_IDENTIFIER = "«hidden: patient identifier»"
#: Shown instead of a column name that looks like a value (a date, a number, an e-mail address, ...).
HIDDEN_COLUMN = "«hidden: looks like a value, not a column name»"
#: Columns whose values are never shown in a problem (pseudonyms included: they still single out a patient).
MASKED_COLUMNS = frozenset({"patient_id"})
#: Longest value shown in a problem; the rest is summarised (a 1 MB cell must not become a 1 MB message).
SHOWN_VALUE_CHARS = 60

#: Column names that suggest a direct identifier; pseudonymised registries must not carry them. Matched against
#: the normalised name (lower case, every run of other characters one "_"), so "Date of Birth" is caught too.
IDENTIFIER_COLUMNS = re.compile(
    r"^(patient_?)?(name|naam|full_?name|first_?name|given_?name|last_?name|family_?name|surname|voornaam|"
    r"voornamen|achternaam|roepnaam|geboortenaam|initials|initialen|voorletters|"
    r"bsn|bsn_?nummer|burger_?service_?nummer|ssn|social_security\w*|"
    r"address|adres|street|straat|straatnaam|house_?number|huisnummer|postcode|postal_?code|zip(_?code)?|city|"
    r"woonplaats|phone|phone_?number|telephone|tel|telefoon(nummer)?|mobile|mobiel|e_?mail|email_?address|"
    r"dob|date_?of_?birth|birth_?date|birthdate|birthday|geb_?datum|geboorte_?datum|geboortedatum|"
    r"mrn|medical_?record_?number|patient_?nummer|patientnummer|ziekenhuis_?nummer|ziekenhuisnummer|"
    r"nhs_?number|insurance_?number|polisnummer|verzekerdennummer)$"
)
#: Excel's error values (#N/A from a failed lookup, #DIV/0!, ...): a cell that shows one holds no value, though a
#: workbook read for its values, or a CSV Excel saved, gives the error's text.
#: No date the product reads from a file (a registry date, an external publication date) lies before this: an
#: earlier one is a placeholder for "no date" that a person reads as none (1900-01-01, Excel's day 1;
#: 1904-01-01, Mac Excel's day 0; 1970-01-01, a computer's zero date) or a typo (1924 for 2024).
#: Stored, 1900-01-01 as an index date puts its outcomes 120 years after it. PROMs and value-based registries are
#: younger than 1990.
EARLIEST_DATE = dt.date(1990, 1, 1)

EXCEL_ERRORS = frozenset(
    {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA", "#SPILL!", "#CALC!"}
    | {"#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!", "#UNKNOWN!", "#EXTERNAL!", "#PYTHON!"}
)
#: Characters no one sees in a cell: control characters (C0 but tab and line breaks, which a cell shows as space
#: and a new line; DEL, C1) and format characters (zero-width spaces and joiners, direction overrides, the BOM,
#: soft hyphen, ...). Python's re has no \p{Cf}: the ranges, written out.
INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u202a-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f]"
)


#: Words (and signs) people write in a number cell for a value that is missing: "n.v.t." (niet van toepassing, not
#: applicable), "onbekend", "n/a", "-", "?". They are not numbers and stay refused (a reader of "n.v.t." reads "not
#: applicable", which the registry does not store), but the refusal says how a missing value is written: an empty
#: cell. Compared after strip() and casefold().
MISSING_WORDS = frozenset(
    {"n.v.t.", "n.v.t", "nvt", "nvt.", "n/a", "n.a.", "n.a", "na", "nb", "n.b.", "n.b", "niet bekend", "onbekend"}
    | {"leeg", "geen", "ontbreekt", "unknown", "missing", "none", "null", "nan", "empty", "-", "--", "?", "??"}
)


def says_missing(text: object) -> bool:
    """Whether a number cell's text is a word for a missing value (MISSING_WORDS): its "not a number" then says
    that a missing value is an empty cell, else its writer cannot tell what the import wants instead."""
    return isinstance(text, str) and text.strip().casefold() in MISSING_WORDS


def invisible_character(text: str) -> str | None:
    """The first character of `text` that no one sees, as U+XXXX; None when there is none."""
    found = INVISIBLE.search(text)
    return None if found is None else f"U+{ord(found.group()):04X}"


def character_name(char: str) -> str:
    """A character as messages name it: U+0421 CYRILLIC CAPITAL LETTER ES."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" {name}" if name else "")


def lookalike_character(text: str) -> tuple[str, str] | None:
    """Why an identifier can read the same as another one: (kind, character named as U+XXXX NAME), or None.

    An id is written in ASCII: the letters A-Z and a-z, the digits 0-9 and ASCII punctuation. kind
    "variant_character": a variant of a common character: a compatibility form (full-width Ｃ or １, a ligature,
    a superscript), an accent as a separate mark, or a space, dash or other sign outside ASCII (the en dash of
    C–0001). kind "non_latin_letter": any other letter or digit outside ASCII. Not only beside Latin letters
    (C0001 with a Cyrillic С): an id wholly in Cyrillic (САТ) reads as the Latin CAT, and an accented é as an e
    to a reader who does not look twice; ids are keys and codes, not words, so the one rule is the cheap and
    safe one. ASCII text has neither, so callers test only the values that are not ASCII.
    """
    if text.isascii():
        return None
    for char in text:
        if char.isascii():
            continue
        if unicodedata.combining(char) or unicodedata.normalize("NFKC", char) != char or not char.isalnum():
            return "variant_character", character_name(char)
        return "non_latin_letter", character_name(char)
    return None


def case_twins(codes: Iterable[str], known: Iterable[str] = ()) -> dict[str, str]:
    """Each of `codes` that differs from a `known` code, or from an earlier one of `codes`, only in upper and
    lower case (H01 and h01), mapped to that other spelling. A person reads the two as one reference, while a
    key of the database (and a dictionary) holds two: the caller refuses the value naming both, rather than
    store a second unit or guess which spelling is meant. Surrounding spaces are taken off before any value
    is compared or stored, so they never make another code."""
    first: dict[str, str] = {}
    for code in known:
        first.setdefault(code.casefold(), code)
    twins: dict[str, str] = {}
    for code in codes:
        seen = first.setdefault(code.casefold(), code)
        if seen != code:
            twins.setdefault(code, seen)
    return twins


#: A column name as a person would write it: letters first, then letters, digits, spaces, _ - . ( ) / % +.
_NAME_LIKE = re.compile(r"^[^\W\d][\w .()/%+-]{0,119}$")


def normalise_name(raw: str) -> str:
    """Lower case, every run of non-alphanumerics one "_" ("Date of Birth" -> "date_of_birth")."""
    return re.sub(r"[^0-9a-z]+", "_", raw.strip().lower()).strip("_")


def is_identifier_column(name: str) -> bool:
    return bool(IDENTIFIER_COLUMNS.match(normalise_name(name)))


def looks_like_bsn(text: str) -> bool:
    """Nine digits (spaces, dots and dashes ignored) passing the Dutch 11-test: a citizen service number."""
    digits = re.sub(r"[\s.\-]", "", text)
    if not re.fullmatch(r"\d{9}", digits):
        return False
    return sum(int(c) * w for c, w in zip(digits, (9, 8, 7, 6, 5, 4, 3, 2, -1), strict=True)) % 11 == 0


def _holds_identifier(text: str) -> bool:
    """A value that may identify a person wherever it appears: a BSN, an e-mail address, a long digit run."""
    return looks_like_bsn(text) or "@" in text or bool(re.search(r"\d{9,}", text))


def shown_value(column: str | None, value: str | None) -> str | None:
    """The value as a problem may show it: identifiers hidden, very long text shortened."""
    if value is None:
        return None
    col = column or ""
    if col in MASKED_COLUMNS or is_identifier_column(col) or _holds_identifier(value):
        return HIDDEN_IDENTIFIER
    if len(value) > SHOWN_VALUE_CHARS:
        return f"{value[:SHOWN_VALUE_CHARS]}… ({len(value):,} characters)"  # read back by shown_in
    return value


def one_line(text: str) -> str:
    """`text` on one line: a line break, tab or other control character a cell held is written as Python writes it
    in a string (\\n, \\t, \\x07), so a message that quotes the cell stays the one line it is meant to be."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in text)


def shown_column(column: str | None) -> str | None:
    """A column name as a problem may show it: one that looks like a value (no header row) is hidden."""
    if column is None or column == "":
        return column
    if _holds_identifier(column) or not _NAME_LIKE.match(column):
        return HIDDEN_COLUMN
    return column


def shown_file(name: str) -> str:
    """A file name as messages and the audit log show it: digit runs that could be a BSN, and e-mail
    addresses, hidden (files are sometimes named after the patient they hold)."""
    name = re.sub(r"[^\s/\\]+@[^\s/\\]+", "«hidden»", name)
    return re.sub(
        r"\d[\d.\- ]{7,}\d", lambda m: "«hidden»" if len(re.sub(r"\D", "", m.group())) >= 9 else m.group(), name
    )


@dataclass(frozen=True)
class Number:
    """A number inside a rule (a size, a limit, a byte offset), grouped and rounded (half up) as the reader's
    language does it, as every number on the pages: "1,200" in English, "1.200" in Dutch."""

    value: float
    decimals: int = 0

    def shown(self, lang: str) -> str:
        from vbhc.i18n import fmt_number

        return fmt_number(self.value, lang, self.decimals)


def _in(values: dict[str, object], lang: str) -> dict[str, object]:
    return {k: v.shown(lang) if isinstance(v, Number) else v for k, v in values.items()}


class Rule(str):
    """A problem's rule from the message catalog: it is the English text (the command line, the audit log, str()
    and every comparison read it as before), and it keeps its message (problem.<code>) and values, so the upload
    page says it in the reader's language (`rule_text`).

    Values are inserted as given, like vbhc.i18n.t: a value quoted from the file stays as typed; a code the
    message names (a column, a table) stays a code; a `Number` is grouped as the language groups it. Joining a
    Rule to other text gives plain (English) text.
    """

    code: str
    values: dict[str, object]

    def __new__(cls, code: str, /, **values: object) -> Rule:
        from vbhc.i18n import t

        rule = super().__new__(cls, t(f"problem.{code}", "en", **_in(values, "en")))
        rule.code, rule.values = code, values
        return rule

    def __reduce__(self) -> tuple:  # copies and pickles rebuild it from its message, not from its text
        return (_rule, (self.code, self.values))

    def in_language(self, lang: str) -> str:
        from vbhc.i18n import t

        return t(f"problem.{self.code}", lang, **_in(self.values, lang))


def _rule(code: str, values: dict[str, object]) -> Rule:
    return Rule(code, **values)


def rule_text(rule: str, lang: str) -> str:
    """A rule in `lang`: a Rule from its message; a plain text (a rule no message names yet) as it is."""
    return rule.in_language(lang) if isinstance(rule, Rule) else rule


#: A value shortened by shown_value: its first SHOWN_VALUE_CHARS characters and its length.
_SHORTENED = re.compile(r"(?s)(.*)… \(([\d,]+) characters\)")


def shown_in(text: str | None, lang: str) -> str | None:
    """A value or column as a problem shows it, with its hidden-marker or its length in `lang`."""
    from vbhc.i18n import t

    if text == HIDDEN_IDENTIFIER:
        return t("problem.hidden_identifier", lang)
    if text == HIDDEN_COLUMN:
        return t("problem.hidden_column", lang)
    shortened = _SHORTENED.fullmatch(text or "")
    if shortened and len(shortened.group(1)) == SHOWN_VALUE_CHARS:
        return t("problem.shortened", lang, value=shortened.group(1), count=int(shortened.group(2).replace(",", "")))
    return text


@dataclass(frozen=True)
class Problem:
    file: str
    sheet: str | None
    row: int | None  # row number as the user sees it in Excel or a text editor; None for file-level problems
    column: str | None
    value: str | None  # as shown: identifiers masked, long values shortened (see shown_value)
    rule: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "file", shown_file(self.file))
        object.__setattr__(self, "value", shown_value(self.column, self.value))
        object.__setattr__(self, "column", shown_column(self.column))

    @property
    def location(self) -> str:
        where = self.file + (f" [sheet {self.sheet}]" if self.sheet else "")
        if self.row is not None:
            where += f" row {self.row}"
        if self.column:
            where += f" column '{self.column}'"
        return where

    def __str__(self) -> str:
        value = "" if self.value is None else f" value {self.value!r}:"
        return f"{self.location}:{value} {self.rule}"

    def line(self, lang: str) -> str:
        """The problem in one line in `lang`, as str() gives it in English: file, sheet, row, column, value, rule."""
        from vbhc.i18n import t

        where = _where(self.file, self.sheet, self.row, self.column, lang) + ":"
        if self.value is not None:
            where += " " + t("problem.at_value", lang, value=repr(shown_in(self.value, lang))) + ":"
        return f"{where} {rule_text(self.rule, lang)}"

    def audited(self) -> dict[str, object]:
        """The problem as the audit log keeps it: where (file, sheet, row, column) and which rule, never the value.
        A rule keeps its message and values (a column, a limit, a quoted example: already masked), so the log
        says it in its reader's language (`audited_line`); a plain rule text is kept as it is."""
        entry: dict[str, object] = {"file": self.file, "sheet": self.sheet, "row": self.row, "column": self.column}
        if isinstance(self.rule, Rule):
            entry |= {"rule": self.rule.code, "values": {k: _stored(v) for k, v in self.rule.values.items()}}
        else:
            entry["text"] = short(str(self.rule), 300)
        return {k: v for k, v in entry.items() if v is not None}


#: The most problems an audit event keeps, and the most characters they may take (the event's detail is capped).
AUDITED_PROBLEMS = 10
AUDITED_PROBLEM_CHARS = 3000


def audited_problems(problems: list[Problem]) -> list[dict[str, object]]:
    """The first problems of a refusal as its audit event keeps them (Problem.audited), as many as fit."""
    kept, size = [], 0
    for problem in problems[:AUDITED_PROBLEMS]:
        entry = problem.audited()
        size += len(json.dumps(entry, ensure_ascii=False, default=str))
        if size > AUDITED_PROBLEM_CHARS:
            break
        kept.append(entry)
    return kept


def _stored(value: object) -> object:
    """A rule's value as JSON keeps it: a Number as its value and decimals, a number as it is, a text cut at 200
    characters (a list of names in a rule must not fill the event)."""
    if isinstance(value, Number):
        return {"number": value.value, "decimals": value.decimals}
    if isinstance(value, (int, float)) or value is None:
        return value
    return short(str(value), 200)


def audited_line(entry: object, lang: str) -> str | None:
    """A problem as the audit log keeps it (Problem.audited), in `lang`: "costs.csv rij 3 kolom 'amount': geen
    getal". None for what is not such an entry, or names a rule this version does not know (shown as stored)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        return None
    if "rule" in entry:
        values = entry.get("values") or {}
        if not isinstance(values, dict):
            return None
        try:
            values = {
                k: Number(v["number"], v.get("decimals", 0)) if isinstance(v, dict) else v for k, v in values.items()
            }
            rule = Rule(str(entry["rule"]), **values).in_language(lang)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError):  # a rule or values this version does
            return None  # not know (an older or newer writer's)
    elif isinstance(entry.get("text"), str):
        rule = entry["text"]
    else:
        return None
    column = entry.get("column")
    return _where(entry["file"], entry.get("sheet"), entry.get("row"), column and str(column), lang) + ": " + rule


def _where(file: str, sheet: object, row: object, column: str | None, lang: str) -> str:
    """Where a problem is, in `lang`: "costs.csv [werkblad X] rij 3 kolom 'amount'"."""
    from vbhc.i18n import t

    parts = [file]
    if sheet:
        parts.append(t("problem.at_sheet", lang, sheet=sheet))
    if row is not None:
        parts.append(t("problem.at_row", lang, row=row))
    if column:
        parts.append(t("problem.at_column", lang, column=shown_in(column, lang)))
    return " ".join(parts)


@dataclass
class SourceReport:
    file: str
    sheet: str | None
    table: str
    sha256: str
    rows_read: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    rows_unchanged: int = 0
    skipped_reason: str | None = None
    hospitals_changed: int = 0  # units only: hospitals added, renamed or given another own-hospital flag
    seconds: float = 0.0  # reading, checking and writing this source

    def pace(self) -> str:
        """ "in 3.2 s, 62,000 rows/s": measured over the whole source, the database write included."""
        rate = f", {self.rows_read / self.seconds:,.0f} rows/s" if self.seconds >= 0.05 and self.rows_read else ""
        return f"in {self.seconds:.1f} s{rate}"


@dataclass
class ImportReport:
    sources: list[SourceReport] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    seconds: float = 0.0
    #: (file, sheet, rule key, message) of the problems a file states once for all its rows (Checker.flag_once)
    stated_once: set[tuple[str, str | None, str, str]] = field(default_factory=set)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def room(self) -> int:
        """How many more problems are listed in full (the rest are only counted)."""
        return max(MAX_REPORTED_PROBLEMS - len(self.problems), 0)

    def add(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_REPORTED_PROBLEMS:
            self.problems.append(problem)

    def summary(self) -> str:
        lines = []
        if self.ok:
            for s in self.sources:
                label = s.file + (f" [sheet {s.sheet}]" if s.sheet else "")
                if s.skipped_reason:
                    lines.append(f"{label} ({s.table}): skipped, {s.skipped_reason}")
                else:
                    lines.append(
                        f"{label} ({s.table}): {s.rows_read:,} rows read, {s.rows_inserted:,} added, "
                        f"{s.rows_updated:,} updated, {s.rows_unchanged:,} unchanged, {s.pace()}"
                        + (f"; {s.hospitals_changed:,} hospital(s) added or changed" if s.hospitals_changed else "")
                    )
            if all(s.skipped_reason for s in self.sources):
                lines.append("Nothing new to import.")
            else:
                lines.append(f"Import committed in {self.seconds:.1f} s.")
        else:
            lines.append(f"Import refused: {self.problem_count} problem(s); nothing was written.")
            lines.extend(f"  {p}" for p in self.problems)
            if self.problem_count > len(self.problems):
                lines.append(f"  ... and {self.problem_count - len(self.problems)} more problem(s)")
        return "\n".join(lines)


class ImportRefused(Exception):
    """The batch had problems, or the database could not take it; nothing was written. `report` lists why."""

    def __init__(self, report: ImportReport):
        super().__init__(report.summary())
        self.report = report


def short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
