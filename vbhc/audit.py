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
import threading
import time
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Protocol

import pandas as pd
from sqlalchemy import Connection, Engine, insert, select

from vbhc import models
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
