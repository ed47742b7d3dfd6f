"""What the Excel and PDF reports share: the selection (engine + conditions/period/level -> indicator results),
labels, and writing a file atomically.

Kept apart from the CLI so the dashboard's download buttons can call the same functions with results it has
already computed (and cached).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from vbhc.catalog import default_catalog
from vbhc.i18n import SUPPORTED, fmt_date, t, unit_label
from vbhc.indicators import IndicatorResult
from vbhc.registry import UNIT_LEVELS, Period, import_batches, parse_period
from vbhc.registry import unit_names as registry_unit_names
from vbhc.registry import units as registry_units

__all__ = [
    "FORMATS",
    "ReportError",
    "Selection",
    "TableSource",
    "check_writable",
    "compute_results",
    "default_unit",
    "derived",
    "first_unit_of",
    "grid_tables",
    "period_label",
    "provenance",
    "shown_unit",
    "unit_names_for",
    "write_report",
]

FORMATS = ("xlsx", "pdf")

#: Where a report reads the tables it derives from a result (vbhc.indicators.prom_response_by_timepoint,
#: cost_by_activity): (result, compute) -> compute(result), kept in the results store by make_report
#: (vbhc.results.TableKey), so a report of stored results computes neither again.
TableSource = Callable[[IndicatorResult, Callable[[IndicatorResult], pd.DataFrame]], pd.DataFrame]


class ReportError(ValueError):
    """A report cannot be made as asked (unknown condition/period/level, no data, unwritable path): the
    message says what and, where there is a choice, what the valid values are.

    Made from its message (report_error.<code> in the catalog) and values: str() is the English text, which the
    command line prints; the audit log keeps the message and values (`audited`), so a refused report reads in the
    log's reader's language (vbhc.audit.describe), not in the English of the command that was refused."""

    def __init__(self, code: str, /, **values: str) -> None:
        self.code, self.values = code, values
        super().__init__(self.in_language("en"))

    def in_language(self, lang: str) -> str:
        return t(f"report_error.{self.code}", lang, **self.values)

    def audited(self) -> dict[str, object]:
        """How the audit log keeps the refusal (vbhc.audit.Shown.MESSAGE)."""
        return {"message": f"report_error.{self.code}", "values": dict(self.values)}


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


@dataclass(frozen=True)
class Selection:
    """What a report covers: conditions, period and unit level (validated by `validate`)."""

    conditions: tuple[str, ...]
    period: Period | None
    level: str

    @classmethod
    def validate(
        cls, conditions: Sequence[str] | None, period: str | Period | None, level: str = "hospital"
    ) -> Selection:
        """Check every value against the catalog and the known formats; None/empty conditions = all."""
        known = list(default_catalog().conditions)
        chosen = list(dict.fromkeys(conditions or known))
        unknown = [c for c in chosen if c not in known]
        if unknown:
            raise ReportError("unknown_condition", condition=unknown[0], choices=_choices(known))
        if level not in UNIT_LEVELS:
            raise ReportError("unknown_level", level=level, choices=_choices(UNIT_LEVELS))
        try:
            parsed = parse_period(period)
        except ValueError:
            raise ReportError("period", period=str(period).strip()) from None
        return cls(tuple(chosen), parsed, level)


def check_lang(lang: str) -> str:
    if lang not in SUPPORTED:
        raise ReportError("unknown_language", language=lang, choices=_choices(SUPPORTED))
    return lang


def compute_results(
    conditions: Sequence[str] | None,
    period: str | Period | None = None,
    level: str = "hospital",
    *,
    engine: Engine | None = None,
    skip_empty: bool | None = None,
) -> list[IndicatorResult]:
    """Indicator results for the selection: read from the results store (vbhc.results), else computed from the
    registry and stored, so a report is the dashboard's numbers and a second report does not compute again.

    A condition without care cycles in the period is an error when it was named explicitly; with
    conditions=None (all) it is left out (`skip_empty` overrides). No care cycles at all is always an error.
    """
    from vbhc.results import ResultStore, ViewKey
    from vbhc.store import get_engine

    selection = Selection.validate(conditions, period, level)
    skip = (not conditions) if skip_empty is None else skip_empty
    store = ResultStore(engine or get_engine())
    version = store.version() if store.enabled else None
    results = []
    for condition in selection.conditions:
        key = ViewKey.of(condition, selection.level, selection.period)
        data = store.condition_data(key, version)
        if data.cycles.empty:
            if skip:
                continue
            if selection.period is None:
                raise ReportError("no_cycles_at_all_dates", condition=condition)
            raise ReportError("no_cycles_in_period", condition=condition, period=period_label(selection.period, "en"))
        results.append(store.result(key, version, data=data))
    if not results:
        if selection.period is None:
            raise ReportError("nothing_at_all_dates", conditions=_choices(selection.conditions))
        raise ReportError(
            "nothing_in_period", period=period_label(selection.period, "en"), conditions=_choices(selection.conditions)
        )
    return results


def grid_tables(
    results: Sequence[IndicatorResult], *, engine: Engine | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """Per result's condition, the indicator tables of all dates ("") and every year of its care cycles at the
    result's level (from the results store, else computed and stored): what a file withholds its small cells
    against (vbhc.reports.privacy.grid_suppression_masks), so files of different periods cannot be differenced.
    Each is a vbhc.reports.privacy.PeriodGrid: its periods' PROM response and cost tables are read from the
    store too (else derived from that period's result), so the file withholds theirs over the same grid."""
    from vbhc.registry import condition_volumes
    from vbhc.reports.privacy import PeriodGrid
    from vbhc.results import MasksKey, ResultStore, TableKey, ViewKey
    from vbhc.store import get_engine

    store = ResultStore(engine or get_engine())
    version = store.version() if store.enabled else None

    def keep(digest: str, compute: Callable[[], dict]) -> dict:
        """The grid's withheld cells (vbhc.reports.privacy.grid_masks) from the store, else computed and stored."""
        return store.masks(MasksKey(digest), version, compute)

    volumes = condition_volumes(engine=engine).set_index("condition")
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for result in results:
        if result.condition not in volumes.index:
            continue
        first = pd.Timestamp(volumes.loc[result.condition, "first_index_date"]).year
        last = pd.Timestamp(volumes.loc[result.condition, "last_index_date"]).year
        periods = ["", *(str(y) for y in range(last, first - 1, -1))]
        tables: dict[str, pd.DataFrame] = {}
        # without a store each period's result is kept for its derived tables (computing it again for each
        # table took most of a report's time); with one, the stored view is read again when a table is missing
        kept: dict[str, IndicatorResult] = {}
        for period in periods:
            with contextlib.suppress(ReportError):  # a year without care cycles: nothing to difference
                computed = compute_results([result.condition], period or None, result.level, engine=engine)[0]
                tables[period] = computed.table
                if version is None:
                    kept[period] = computed

        def derive(
            period: str,
            compute: Callable[[IndicatorResult], pd.DataFrame],
            tables: dict[str, pd.DataFrame] = tables,
            kept: dict[str, IndicatorResult] = kept,
            condition: str = result.condition,
            level: str = result.level,
        ) -> pd.DataFrame:
            """The period's derived table from the store, else from its result."""
            if period not in tables:
                return pd.DataFrame()
            key = TableKey(ViewKey.of(condition, level, period or None), compute.__name__)

            def fresh() -> pd.DataFrame:
                got = kept.get(period)
                if got is None:
                    got = compute_results([condition], period or None, level, engine=engine)[0]
                return compute(got)

            return store.table(key, version, fresh)

        hospitals = None
        if result.level != "hospital":  # the hospital grid a department or team file's cells follow
            hospitals = grid_tables([replace(result, level="hospital")], engine=engine).get(result.condition)
        out[result.condition] = PeriodGrid(tables, derive, hospitals, keep)
    return out


def derived(
    result: IndicatorResult, compute: Callable[[IndicatorResult], pd.DataFrame], tables: TableSource | None = None
) -> pd.DataFrame:
    """compute(result), read from `tables` when the caller keeps them (None: computed here)."""
    return compute(result) if tables is None else tables(result, compute)


def default_unit(result: IndicatorResult, engine: Engine | None = None, own_hospital: str | None = None) -> str:
    """The unit a team report is about when none is given: the own hospital's first unit (as the dashboard)."""
    if own_hospital is None:
        with contextlib.suppress(Exception):  # no units table (e.g. a hand-made registry): first unit
            frame = registry_units(engine)
            own = frame.loc[frame["own_hospital"], "hospital"]
            own_hospital = str(own.iloc[0]) if len(own) else None
    return first_unit_of(result, own_hospital)


def first_unit_of(result: IndicatorResult, hospital: str | None) -> str:
    """The first unit of `hospital` in the result's table, else its first unit."""
    units = sorted(result.table["unit"].dropna().astype(str).unique())
    if not units:
        raise ReportError("no_units", condition=result.condition)
    if hospital is not None:
        hosp = result.table.drop_duplicates("unit").set_index("unit")["hospital"].astype(str)
        mine = [u for u in units if hosp.get(u) == hospital]
        if mine:
            return mine[0]
    return units[0]


def unit_names_for(
    results: Sequence[IndicatorResult], lang: str, engine: Engine | None = None, *, units: pd.DataFrame | None = None
) -> dict[str, str]:
    """Unit id -> the name a report shows ("H01" -> the hospital's name, "H01/SUR" -> "hospital – department",
    "hip@H01" -> "condition – hospital"), at every level for every result's condition: a report of departments
    still lists the team's targets and signals of the whole hospital. A reader knows hospitals by name; ids
    belong in key columns. `units`: registry.units() when the caller has it (else read from `engine`). Empty
    when the registry has no units table (a hand-made database): the reports then show unit_label."""
    catalog = default_catalog()
    if units is None:
        try:
            units = registry_units(engine)
        except SQLAlchemyError:  # no units table (a hand-made registry): names fall back to the ids
            return {}
    names: dict[str, str] = {}
    for result in results:
        condition = catalog.conditions.get(result.condition)
        label = condition.label(lang) if condition else result.condition
        for level in UNIT_LEVELS:
            names.update(registry_unit_names(units, level, result.condition, label))
    return names


def shown_unit(unit: object, names: Mapping[str, str] | None, lang: str) -> str:
    """The unit as a report shows it: its name from `names` (unit_names_for), else vbhc.i18n.unit_label."""
    return (names or {}).get(str(unit)) or unit_label(unit, lang)


def period_label(period: Period | None, lang: str) -> str:
    if period is None:
        return t("report.all_dates", lang)
    return f"{period.label} ({fmt_date(period.start, lang)} – {fmt_date(period.end, lang)})"


def provenance(engine: Engine | None = None) -> pd.DataFrame:
    """The import batches behind the data (file, sha256, rows, who, when) for the report's cover."""
    try:
        batches = import_batches(engine)
    except Exception:  # a registry without the batch table: the report says "no batches" rather than failing
        return pd.DataFrame(columns=["id", "file_name", "table_name", "sha256", "rows_read", "imported_at"])
    when = batches.get("imported_at")
    if when is not None and isinstance(when.dtype, pd.DatetimeTZDtype):
        # PostgreSQL returns the time with its zone, which Excel cannot hold: the cover shows it in UTC, as SQLite
        batches["imported_at"] = when.dt.tz_convert("UTC").dt.tz_localize(None)
    return batches


def now() -> dt.datetime:
    return dt.datetime.now().replace(microsecond=0)


# --------------------------------------------------------------------------------------------- writing
def check_writable(path: str | os.PathLike[str]) -> Path:
    """Fail early, before minutes of work, when the report cannot be written to `path`."""
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise ReportError("target_is_folder", path=str(target))
    if not folder.is_dir():
        raise ReportError("no_folder", path=str(target), folder=str(folder))
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReportError("folder_read_only", path=str(target), folder=str(folder))
    if target.exists() and not target.is_file():
        # a device, pipe or socket: the report is written beside it and moved into place, which would put a file
        # where the device was (as root: /dev/null or /dev/stdout replaced for every program)
        raise ReportError("not_a_file", path=str(target))
    if target.exists() and not os.access(target, os.W_OK):
        raise ReportError("file_read_only", path=str(target))
    return target


def write_report(path: str | os.PathLike[str], content: bytes) -> Path:
    """Write `content` to `path` atomically: a temporary file in the same folder, then os.replace.

    Readers (and a scheduled job that mails the file) see either the old file or the complete new one; on any
    error the temporary file is removed, so a partial report is never left behind.
    """
    target = check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise ReportError("write_failed", path=str(target), error=str(exc.strerror or exc)) from exc
        raise
    return target
