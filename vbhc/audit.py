"""The audit log: who viewed which condition/unit, who exported what (with the file's sha256), who imported what.

Rules that keep the log itself free of patient data:
- `detail` is a small JSON object of ids (condition, indicator, unit, file name), counts and rule texts. Keys that
  would carry patient-level data (patient_id, cycle_id, rows, values, ...) are refused with ValueError, so a
  careless caller fails in tests instead of leaking into the log.
- Events are only ever added; nothing in vbhc updates or deletes them.
- `record` accepts an Engine (own short transaction) or a Connection (the caller's transaction: the importer writes
  its "import" event in the same transaction as the batch, so a rolled-back import never shows as a success).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from enum import Enum, StrEnum
from typing import Protocol

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select

from vbhc import models
from vbhc.i18n import MISSING, catalog, fmt_datetime, fmt_int, fmt_number, t
from vbhc.safety import safe_csv


class Actor(Protocol):
    """Whoever did something: a signed-in viewer (vbhc.access.Viewer) has a user id and roles.

    A protocol rather than an import of vbhc.access, so that access -> ingest -> audit is one direction.
    """

    @property
    def user_id(self) -> str: ...

    @property
    def roles(self) -> Iterable[Enum]: ...


#: What an event records.
ACTIONS = ("view", "export", "export_refused", "import", "import_refused", "denied", "sign_in", "sign_out", "edit")
#: Columns of `read` (and of the CSV export), in order.
COLUMNS = ["id", "at", "user_id", "roles", "action", "condition", "unit", "detail", "sha256"]
#: Keys that must never appear in `detail`: they would carry patient-level data.
FORBIDDEN_DETAIL_KEYS = frozenset(
    {"patient_id", "patient_ids", "cycle_id", "cycle_ids", "bsn", "rows", "row_values", "values", "records", "data"}
)
MAX_DETAIL_CHARS = 4000


class Shown(StrEnum):
    """How the audit log names a detail's value to its reader."""

    CODE = "code"  # one of the product's own codes, named in the catalog (CODE_MESSAGES); record() refuses others
    ASKED = "asked"  # a level, format, language or action as someone asked for it: named where the catalog knows it
    TEXT = "text"  # as stored: a file, sheet, item number, publisher, user, period, rule text, error class
    COUNT = "count"  # a number (a list of texts, such as the first problems, is shown as stored)
    FLAG = "flag"  # yes or no
    UNIT = "unit"  # unit ids, named as on every page
    CONDITION = "condition"  # condition ids, named from the catalog
    INDICATOR = "indicator"  # an indicator of the event's condition, named from the catalog
    MOMENT = "moment"  # a date and time
    FILES = "files"  # a list of {"file", "sha256"}
    PROBLEMS = "problems"  # a refusal's first problems (vbhc.ingest.problems.audited_problems): where and which rule
    MESSAGE = "message"  # a catalog message and its values ({"message": "report_error.<code>", "values": {...}})


#: Every key an event's detail may carry, and how the log shows it, in the order it is read. One source: record()
#: refuses any other key, and the catalog names each of them (audit.detail.<key>), so no event reaches the log
#: that its page cannot show in the reader's language.
DETAIL: dict[str, Shown] = {
    "what": Shown.CODE,
    "change": Shown.CODE,
    "permission": Shown.CODE,
    "item": Shown.TEXT,
    "version": Shown.COUNT,
    "file": Shown.TEXT,
    "files": Shown.FILES,
    "sheet": Shown.TEXT,
    "table": Shown.CODE,
    "source": Shown.TEXT,
    "period": Shown.TEXT,
    "conditions": Shown.CONDITION,
    "condition": Shown.CONDITION,
    "indicator": Shown.INDICATOR,
    "level": Shown.ASKED,
    "unit": Shown.UNIT,
    "units": Shown.UNIT,
    "hospital": Shown.UNIT,
    "hospitals": Shown.UNIT,
    "format": Shown.ASKED,
    "lang": Shown.ASKED,
    "rows_read": Shown.COUNT,
    "inserted": Shown.COUNT,
    "updated": Shown.COUNT,
    "unchanged": Shown.COUNT,
    "created": Shown.COUNT,
    "replaced": Shown.COUNT,
    "figures": Shown.COUNT,
    "decisions": Shown.COUNT,
    "events": Shown.COUNT,
    "shown": Shown.COUNT,
    "teams": Shown.COUNT,
    "unit_count": Shown.COUNT,
    "file_count": Shown.COUNT,
    "bytes": Shown.COUNT,
    "suppress_below": Shown.COUNT,
    "limit": Shown.COUNT,
    "problem_count": Shown.COUNT,
    "problems": Shown.PROBLEMS,
    "first": Shown.TEXT,  # older events: a refusal's first problem as English text
    "reason": Shown.MESSAGE,  # older events: English text, shown as stored
    "error": Shown.TEXT,
    "skipped": Shown.CODE,
    "patient_level": Shown.FLAG,
    "since": Shown.MOMENT,
    "until": Shown.MOMENT,
    "action": Shown.ASKED,
    "user": Shown.TEXT,
    "via": Shown.ASKED,
    "os_user": Shown.TEXT,
    "benchmark_population": Shown.TEXT,
    "filter": Shown.TEXT,  # a refused link's query parameter (condition, unit_hospital, peers, ...), as in the URL
    "asked": Shown.TEXT,  # the value the link asked for, as it came (cut short)
}
#: Each key's place in the order a detail is read (keys this version does not know come last).
_ORDER = {key: number for number, key in enumerate(DETAIL)}
#: Where the catalog names a code of each CODE and ASKED key (the prefix plus the code made a slug: lower case, "_"
#: for anything else): the levels, tables, languages and audit actions are named where the pages name them.
CODE_MESSAGES: dict[str, str] = {
    "what": "audit.what.",
    "change": "audit.change.",
    "permission": "audit.permission.",
    "table": "import_table.",
    "level": "level.",
    "format": "audit.format.",
    "via": "audit.via.",
    "lang": "language.",
    "action": "audit.action_",
    "skipped": "audit.skipped.",
}
#: Keys whose value may be the word "all" (every period, every condition), named as audit.all.
_ALL = frozenset({"period", "conditions"})

_recent: dict[tuple, float] = {}
_recent_lock = threading.Lock()


def actor_fields(viewer: Actor | str | None) -> tuple[str, str]:
    """(user id, comma-separated roles) of a Viewer, or of a plain user name (CLI, tests) with no roles."""
    if viewer is None:
        return "unknown", ""
    if isinstance(viewer, str):
        return viewer or "unknown", ""
    roles = ",".join(sorted(str(r.value) for r in viewer.roles))
    return viewer.user_id or "unknown", roles


def _detail_text(detail: Mapping[str, object] | str | None) -> str:
    if detail is None:
        return ""
    if isinstance(detail, str):
        text = detail
    else:
        bad = sorted(k for k in detail if str(k).lower() in FORBIDDEN_DETAIL_KEYS)
        if bad:
            raise ValueError(f"audit detail must not carry patient-level data (keys: {', '.join(bad)})")
        unknown = sorted(str(k) for k in detail if k not in DETAIL)
        if unknown:
            raise ValueError(
                f"audit detail key(s) {', '.join(unknown)} not in vbhc.audit.DETAIL (the log names no other)"
            )
        for key, value in detail.items():
            if DETAIL[key] is Shown.CODE and value is not None and _code_message(key, value) is None:
                raise ValueError(f"audit detail {key}={value!r}: no code the catalog names ({CODE_MESSAGES[key]}...)")
        text = json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str)
    if len(text) > MAX_DETAIL_CHARS:
        text = text[: MAX_DETAIL_CHARS - 20] + "... (shortened)"
    return text


def record(
    target: Engine | Connection,
    viewer: Actor | str | None,
    action: str,
    *,
    condition: str | None = None,
    unit: str | None = None,
    detail: Mapping[str, object] | str | None = None,
    sha256: str | None = None,
    dedupe_seconds: float = 0.0,
) -> bool:
    """Add one event; returns False when an identical event was recorded less than `dedupe_seconds` ago.

    `dedupe_seconds` keeps Streamlit reruns (every widget change re-runs the page) from writing the same "view"
    event dozens of times; exports, imports and denials are always recorded (leave it 0).
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}; use one of {', '.join(ACTIONS)}")
    user_id, roles = actor_fields(viewer)
    text = _detail_text(detail)
    if dedupe_seconds > 0:
        engine = target.engine if isinstance(target, Connection) else target
        key = (str(engine.url), user_id, roles, action, condition, unit, text, sha256)
        now = time.monotonic()
        with _recent_lock:
            last = _recent.get(key)
            if last is not None and now - last < dedupe_seconds:
                return False
            if len(_recent) > 10_000:
                _recent.clear()
            _recent[key] = now
    values = {
        "at": dt.datetime.now(dt.UTC),
        "user_id": user_id[:200],
        "roles": roles[:200],
        "action": action,
        "condition": condition,
        "unit": None if unit is None else str(unit)[:200],
        "detail": text,
        "sha256": sha256,
    }
    stmt = insert(models.AuditEvent).values(**values)
    if isinstance(target, Connection):
        target.execute(stmt)
    else:
        with target.begin() as conn:
            conn.execute(stmt)
    return True


def os_user() -> str:
    """Who runs a command-line export or import: VBHC_USER, else the operating-system user."""
    try:
        return os.environ.get("VBHC_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read(
    engine: Engine,
    since: dt.datetime | dt.date | str | None = None,
    user: str | None = None,
    action: str | Iterable[str] | None = None,
    *,
    until: dt.datetime | dt.date | str | None = None,
    condition: str | None = None,
    limit: int | None = None,
) -> pd.DataFrame:
    """Events in order of recording (oldest first), filtered with bound parameters; `at` as UTC timestamps."""
    e = models.AuditEvent
    query = select(*(getattr(e, c) for c in COLUMNS)).order_by(e.id)
    if since is not None:
        query = query.where(e.at >= _as_utc(since))
    if until is not None:
        query = query.where(e.at < _as_utc(until))
    if user:
        query = query.where(e.user_id == user)
    if action:
        actions = [action] if isinstance(action, str) else list(action)
        query = query.where(e.action.in_(actions))
    if condition:
        query = query.where(e.condition == condition)
    if limit:
        query = query.order_by(None).order_by(e.id.desc()).limit(int(limit))
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    df = pd.DataFrame(rows, columns=COLUMNS)
    if limit:
        df = df.iloc[::-1].reset_index(drop=True)
    df["at"] = pd.to_datetime(df["at"], utc=True)
    df["id"] = df["id"].astype("int64")
    return df


def _as_utc(value: dt.datetime | dt.date | str) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def to_csv(df: pd.DataFrame) -> bytes:
    """The events as CSV (UTF-8 with BOM, so Excel reads accents); text that a spreadsheet would run is neutralised."""
    out = df.copy()
    if "at" in out and len(out):
        out["at"] = pd.to_datetime(out["at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return safe_csv(out)


def _slug(value: object) -> str:
    return re.sub(r"[^a-z0-9]+", "_", str(value).strip().lower()).strip("_")


def _code_message(key: str, value: object) -> str | None:
    """The catalog key that names a code of a CODE or ASKED key, or None when the catalog names no such code."""
    message = CODE_MESSAGES[key] + _slug(value)
    return message if message in catalog("en") else None


def describe(detail: str | None, lang: str, name: Callable[[Shown, str], str] | None = None) -> str:
    """An event's detail as its reader reads it, e.g. "What: chart data · File: funnel.csv · Size (bytes): 1,234".

    Keys and codes are named in `lang`; units, conditions and indicators by `name(shown, id)` (the names the
    pages use; the ids without it); files, item numbers and rule texts as stored. A detail that is no JSON
    object, and a key or code this version does not know (an older or newer writer's), are shown as stored.
    """
    if not detail:
        return MISSING
    try:
        fields = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(fields, dict):
        return detail
    messages = catalog(lang)
    parts = [
        f"{messages.get(f'audit.detail.{key}', key)}: {_shown(key, fields[key], lang, name)}"
        for key in sorted(fields, key=lambda k: (_ORDER.get(k, len(_ORDER)), k))
    ]
    return " · ".join(parts)


#: The catalog messages an event may keep as its reason (Shown.MESSAGE): a refused report's.
_MESSAGE_PREFIXES = ("report_error.",)


def _message(value: Mapping[str, object], lang: str) -> str:
    """A kept message in `lang`; one this version does not name, or with values it does not take, as stored."""
    message, values = value.get("message"), value.get("values") or {}
    if (
        isinstance(message, str)
        and message.startswith(_MESSAGE_PREFIXES)
        and message in catalog(lang)
        and isinstance(values, dict)
    ):
        try:
            return t(message, lang, **{str(k): v for k, v in values.items()})
        except (KeyError, IndexError, ValueError):
            pass
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _shown(key: str, value: object, lang: str, name: Callable[[Shown, str], str] | None) -> str:
    kind = DETAIL.get(key, Shown.TEXT)
    if value is None or value == "" or value == []:
        return MISSING
    if kind is Shown.PROBLEMS and isinstance(value, (list, dict)):  # a count (older events) is shown as a count
        from vbhc.ingest.problems import audited_line

        entries = value if isinstance(value, list) else [value]
        return "; ".join(
            audited_line(e, lang) or (e if isinstance(e, str) else json.dumps(e, ensure_ascii=False, sort_keys=True))
            for e in entries
        )
    if kind is Shown.MESSAGE and isinstance(value, dict):
        return _message(value, lang)
    if isinstance(value, list):
        return ", ".join(_shown(key, v, lang, name) for v in value)
    if isinstance(value, dict):  # a file of a refused batch: its name and the start of its SHA-256
        file, sha = value.get("file"), value.get("sha256")
        return f"{file} (SHA-256 {str(sha)[:12]}…)" if sha else str(file)
    if isinstance(value, bool):
        return t("audit.yes" if value else "audit.no", lang)
    if isinstance(value, int):
        return fmt_int(value, lang)
    if isinstance(value, float):
        return fmt_number(value, lang, 2)
    text = str(value)
    if key in _ALL and text == "all":
        return t("audit.all", lang)
    if kind in (Shown.CODE, Shown.ASKED):
        message = _code_message(key, text)
        return t(message, lang) if message else text
    if kind in (Shown.UNIT, Shown.CONDITION, Shown.INDICATOR):
        return name(kind, text) if name else text
    if kind is Shown.MOMENT:
        moment = fmt_datetime(text, lang)
        return text if moment == MISSING else moment
    return text
