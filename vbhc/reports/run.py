"""One call from selection to file, for `vbhc report` and scheduled batch runs."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from vbhc import audit, settings
from vbhc.children import LOWEST_PRIORITY, child_command
from vbhc.i18n import DEFAULT_LANGUAGE
from vbhc.indicators import IndicatorResult
from vbhc.registry import Period, hospital_of
from vbhc.registry import units as registry_units
from vbhc.reports.core import (
    FORMATS,
    ReportError,
    Selection,
    TableSource,
    check_lang,
    check_writable,
    compute_results,
    grid_tables,
    provenance,
    unit_names_for,
)
from vbhc.reports.core import write_report as _write
from vbhc.reports.followup import read_follow_up

if TYPE_CHECKING:
    from vbhc.access import Viewer
    from vbhc.reports.pdf import ChartCache
    from vbhc.results import ResultStore

__all__ = [
    "finish_report_charts",
    "make_report",
    "own_hospital",
    "prepare_report_charts",
    "prepare_report_charts_apart",
    "start_report_charts",
]

log = logging.getLogger(__name__)
WHAT = {"xlsx": "excel_report", "pdf": "pdf_report"}


def own_hospital(engine: Engine | None = None) -> str | None:
    """The hospital flagged as own in the units table (the dashboard's default unit), if any."""
    try:
        frame = registry_units(engine)
    except Exception:
        return None
    own = frame.loc[frame["own_hospital"], "hospital"]
    return str(own.iloc[0]) if len(own) else None


def make_report(
    path: str | os.PathLike[str],
    *,
    fmt: str,
    conditions: Sequence[str] | None = None,
    period: str | None = None,
    level: str = "hospital",
    lang: str = "nl",
    unit: str | None = None,
    engine: Engine | None = None,
    suppress_below: int | None = None,
    actor: Viewer | str | None = None,
    via: str = "api",
    external: bool = True,
) -> Path:
    """Select, compute, build and atomically write one report, and record it in the audit log; ReportError with
    a clear message otherwise (recorded as "export_refused").

    Every file that leaves the product is audited, whichever way it is made: the dashboard's downloads through
    vbhc.access.export_file, `vbhc report` and scheduled runs here, with the same fields (who, file name,
    sha256, conditions, format). `actor` is who asked (default: the OS user); `via` says how ("cli", "api").
    conditions=None means every condition with care cycles in the period. For PDF the file holds one section
    per condition team (the own hospital's unit unless `unit` is given). With `external` (the default) a
    condition with stored external benchmark figures (vbhc.external) is reported as the own hospital among them,
    the benchmark population named on the cover, the sheets, the key indicators and every funnel plot.
    """
    from vbhc.store import get_engine

    who = actor if actor is not None else audit.os_user()
    asked = {
        "format": fmt,
        "conditions": sorted(conditions) if conditions else "all",
        "period": period or "all",
        "level": level,
        "lang": lang,
        "unit": unit,
        "file": Path(path).name,
        "via": via,
        "os_user": audit.os_user(),  # also when `actor` names someone else (vbhc report --as)
    }
    from vbhc import access

    if isinstance(who, access.Viewer):  # a report asked for by a signed-in viewer: its export rights, as a download's
        for condition in conditions or [None]:
            access.require_file_export(
                who, condition, what=WHAT.get(fmt, "report"), threshold=suppress_below, engine=engine or get_engine()
            )
    try:
        target, content, results = _build(
            path,
            fmt,
            conditions,
            period,
            level,
            lang,
            unit,
            engine,
            suppress_below,
            _reader(who),
            (who if external else None),
        )
        written = _write(target, content)
    except ReportError as exc:  # refused before anything was written (bad selection, path, or a failed write)
        _record(
            engine or get_engine(),
            who,
            "export_refused",
            asked | {"what": WHAT.get(fmt, "report"), "reason": exc.audited()},
        )
        raise
    except access.AccessDenied:  # a check inside the build: recorded as denied already
        raise
    except Exception as exc:  # a failure nobody foresaw (a chart that cannot be drawn): the attempt stays in the
        # log as a refusal, with the error's class only (its text may quote data), as a download's (export_file)
        _record(
            engine or get_engine(),
            who,
            "export_refused",
            asked | {"what": WHAT.get(fmt, "report"), "error": type(exc).__name__},
        )
        raise
    single = results[0].condition if len(results) == 1 else None
    try:
        audit.record(
            engine or get_engine(),
            who,
            "export",
            condition=single,
            unit=unit,
            detail=asked
            | {
                "what": WHAT[fmt],
                "conditions": [r.condition for r in results],
                "bytes": len(content),
                "suppress_below": suppress_below,
                "patient_level": False,
                "benchmark_population": sorted({p for r in results if (p := _population(r))}),
            },
            sha256=audit.sha256_of(content),
        )
    except SQLAlchemyError as exc:  # no unaudited file: take it back
        written.unlink(missing_ok=True)
        raise ReportError("not_audited", error=type(exc).__name__) from None
    return written


def prepare_report_charts(
    engine: Engine | None = None, *, lang: str = DEFAULT_LANGUAGE, level: str = "hospital"
) -> int:
    """Render and store the charts of `vbhc report --all --format pdf` (the own hospital's teams, compared as the
    report compares them) for the current dataset version, after its views are stored: the first PDF after an
    import then reads its ~56 charts instead of rendering them (~0.3 s each). Writes no file and no audit record,
    as no report is made; the charts are those build_pdf draws (report_charts) under the same chart_digest, so the
    report finds them. With small numbers withheld it also stores the PROM response and cost tables of every year
    of the grid (a file withholds its own against them). Returns how many charts were rendered (0 when the store
    is off; stored ones are read)."""
    from vbhc.reports.pdf import chart_digest, render_chart, report_charts
    from vbhc.results import DERIVED_TABLES, compute_counts
    from vbhc.store import get_engine

    engine = engine or get_engine()
    store, version = _store_version(engine)
    kept = _kept(store, version, level, None)
    if kept.charts is None:
        return 0
    results = _with_external(compute_results(None, None, level, engine=engine), engine, audit.os_user(), None, lang)
    before = compute_counts["chart"]
    grids = grid_tables(results, engine=engine) if settings.suppress_below() > 0 else None  # as the report does
    drawn = report_charts(
        results,
        lang=lang,
        own_hospital=own_hospital(engine),
        unit_names=unit_names_for(results, lang, engine),
        grids=grids,
    )
    for chart in drawn:
        kept.charts(chart_digest(chart), lambda chart=chart: render_chart(chart))
    # the PROM response and cost tables of every year of the grid, which a file withholds its own against
    # (vbhc.reports.privacy.PeriodGrid): stored too, so the first report reads them as well
    for grid in (grids or {}).values():
        for period in grid:
            for compute in DERIVED_TABLES.values():
                grid.derive(period, compute)
    return compute_counts["chart"] - before


def start_report_charts(url: str, *, lowest_priority: bool = True) -> subprocess.Popen[str]:
    """Start prepare_report_charts for the database at `url` in a child process (`vbhc precompute --charts-only`):
    vl-convert holds the interpreter lock for the ~0.3 s of each chart, so a child draws beside the caller's own
    work on another core (an import's page preparation, a server's pages). `lowest_priority`: at nice 19 where the
    system has it (a server's pages come first). finish_report_charts waits for it."""
    env = {**os.environ, "VBHC_DATABASE_URL": url}
    command = child_command("vbhc.reports.run:_charts_child", niceness=LOWEST_PRIORITY if lowest_priority else 0)
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_report_charts(child: subprocess.Popen[str]) -> tuple[int, str]:
    """Wait for start_report_charts' child: its exit status (logged with its error output when not 0) and what it
    printed (the line `vbhc precompute --charts-only` prints)."""
    out, err = child.communicate()
    if child.returncode:
        log.error("rendering the report's charts failed (%s): %s", child.returncode, err[-2000:])
    return child.returncode, out


def prepare_report_charts_apart(url: str) -> int:
    """prepare_report_charts in a child process at the lowest priority, waited for (a server's warm-up, last)."""
    return finish_report_charts(start_report_charts(url))[0]


def _charts_child() -> int:
    """The child of start_report_charts: `vbhc precompute --charts-only`, its exit status."""
    from vbhc.cli import main

    return main(["precompute", "--charts-only"])


def _reader(who: Viewer | str) -> Viewer:
    """Whose role rules the report's targets, signals and actions are read with: the Viewer who asked, or for a
    name (`vbhc report`, a scheduled run: the quality directorate's tool, run with the database's own credentials)
    the quality directorate's."""
    from vbhc.access import Role, Scope, Viewer

    return who if isinstance(who, Viewer) else Viewer(str(who), str(who), (Scope(Role.QUALITY),))


def _with_external(
    results: list[IndicatorResult], engine: Engine | None, who: Viewer | str, unit: str | None, lang: str
) -> list[IndicatorResult]:
    """Each result whose condition has stored external figures as the own hospital (the unit's, else the
    registry's own) among them (vbhc.external.benchmarked); the others as they are."""
    from vbhc.access import Viewer, local_viewer
    from vbhc.external import benchmarked  # vbhc.external reads vbhc.reports.privacy: imported when used
    from vbhc.store import get_engine

    engine = engine or get_engine()
    hospital = hospital_of(unit) if unit else own_hospital(engine)
    if hospital is None:
        return results
    viewer = who if isinstance(who, Viewer) else local_viewer(str(who))  # a command-line run: trusted, as export
    out = []
    for result in results:
        got = None
        if result.level in ("hospital", "department") and _stored(engine, result.condition):
            got = benchmarked(engine, viewer, result, hospitals=[hospital], lang=lang)
        out.append(got or result)
    return out


def _stored(engine: Engine, condition: str) -> bool:
    """Whether external figures of the condition are stored (a database from before them has none)."""
    from vbhc.external import stamp

    try:
        return bool(stamp(engine, condition))
    except SQLAlchemyError:
        return False


def _population(result: IndicatorResult) -> str | None:
    from vbhc.external import population_of

    return population_of(result.table)


def _record(engine: Engine, who: Viewer | str, action: str, detail: dict) -> None:
    try:
        audit.record(engine, who, action, detail=detail)
    except SQLAlchemyError as exc:  # e.g. a database without the audit table; the refusal itself stands
        log.error("could not write the audit event for a refused report (%s)", type(exc).__name__)


def _build(
    path: str | os.PathLike[str],
    fmt: str,
    conditions: Sequence[str] | None,
    period: str | None,
    level: str,
    lang: str,
    unit: str | None,
    engine: Engine | None,
    suppress_below: int | None,
    reader: Viewer,
    external_for: Viewer | str | None = None,
) -> tuple[Path, bytes, list]:
    from vbhc.store import get_engine

    if fmt not in FORMATS:
        raise ReportError("unknown_format", format=fmt, choices=", ".join(FORMATS))
    check_lang(lang)
    selection = Selection.validate(conditions, period, level)  # cheap checks before the path and the data
    _check_grid(selection, suppress_below, engine)
    target = check_writable(path)
    store, version = _store_version(engine or get_engine())
    results = compute_results(conditions, period, level, engine=engine)
    kept = _kept(store, version, level, period)
    if external_for is not None:
        results = _with_external(results, engine, external_for, unit, lang)
    from vbhc.reports.privacy import SuppressionRule

    rule = SuppressionRule.from_settings(suppress_below)
    grids = grid_tables(results, engine=engine) if rule.active else None  # files of other periods: the same cells
    own = own_hospital(engine)
    batches = _batches_for(reader, [r.condition for r in results], engine)
    follow_up = read_follow_up(engine or get_engine(), reader, [r.condition for r in results])
    if fmt == "xlsx":
        from vbhc.reports.excel import build_workbook  # each format imports only its own libraries

        content = build_workbook(
            results,
            lang=lang,
            suppress_below=suppress_below,
            batches=batches,
            follow_up=follow_up,
            unit_names=unit_names_for(results, lang, engine),
            tables=kept.tables,
            grids=grids,
            # every file of this installation withholds the same cells, safe for its own hospital's care team
            # (which reads those patient rows): secondary cells from other hospitals, as the PDF takes them
            own_hospitals=(own,) if own else (),
        )
    else:
        if unit is not None:
            missing = [r.condition for r in results if unit not in set(r.table["unit"].astype(str))]
            if missing:
                choices = sorted(set(results[0].table["unit"].astype(str)))
                raise ReportError(
                    "unknown_unit", unit=unit, conditions=", ".join(missing), level=level, choices=", ".join(choices)
                )
        from vbhc.reports.pdf import build_pdf

        content = build_pdf(
            results,
            unit,
            lang=lang,
            suppress_below=suppress_below,
            batches=batches,
            own_hospital=own,
            follow_up=follow_up,
            unit_names=unit_names_for(results, lang, engine),
            charts=kept.charts,
            tables=kept.tables,
            grids=grids,
        )
    return target, content, results


def _batches_for(reader: Viewer, conditions: Sequence[str], engine: Engine | None) -> pd.DataFrame:
    """The import batches the file's cover lists for its reader (vbhc.access.provenance_for), as the pages' buttons
    list them: a report asked for by a care team limited to H01 listed every batch, another hospital's file names,
    importers and row counts, and other conditions' files. A name (`vbhc report`) reads as quality: every batch."""
    from vbhc.access import Role, provenance_for
    from vbhc.registry import batch_reach

    batches = provenance(engine)
    if reader.has(Role.QUALITY) or batches.empty:
        return batches
    return provenance_for(reader, conditions, batches, batch_reach(engine))


def _check_grid(selection: Selection, suppress_below: int | None, engine: Engine | None) -> None:
    """With small numbers withheld a report covers all dates or one calendar year (vbhc.reports.privacy.on_grid):
    the cells of those periods are withheld against each other, while a quarter, a month, a range of dates or of
    years is the difference of such cells or differs from another window by a few days' patients, and would give
    withheld cells back. A range that holds every care cycle of the conditions is all dates. ReportError else."""
    check_on_grid(selection.conditions, selection.period, suppress_below, engine)


def check_on_grid(
    conditions: Sequence[str],
    period: Period | None,
    suppress_below: int | None,
    engine: Engine | None,
    code: str = "period_off_grid",
) -> None:
    """ReportError(`code`) when small numbers are withheld and `period` is off the grid of all dates and calendar
    years (a range holding every care cycle of `conditions` is all dates): _check_grid for a report, and the same
    for any other file of small-number-protected figures (`vbhc external export`: "export_off_grid")."""
    from vbhc.registry import condition_volumes
    from vbhc.reports.privacy import SuppressionRule, on_grid

    rule = SuppressionRule.from_settings(suppress_below)
    if not rule.active or period is None or on_grid(period):
        return
    volumes = condition_volumes(engine=engine)
    volumes = volumes[volumes["condition"].astype(str).isin(list(conditions))]
    first, last = pd.to_datetime(volumes["first_index_date"]).min(), pd.to_datetime(volumes["last_index_date"]).max()
    if pd.notna(first) and period.start <= first.date() and period.end >= last.date():
        return
    raise ReportError(code, period=period.label, count=str(rule.threshold))


@dataclass(frozen=True)
class _Kept:
    """Where a report keeps what it derives from the indicator results (None: computed and drawn here)."""

    charts: ChartCache | None = None
    tables: TableSource | None = None


def _store_version(engine: Engine) -> tuple[ResultStore, str | None]:
    from vbhc.results import ResultStore

    store = ResultStore(engine)
    return store, (store.version() if store.enabled else None)


def _kept(store: ResultStore, version: str | None, level: str, period: str | None) -> _Kept:
    """The results store's tables derived from the results and rendered charts of the dataset version `version`
    (read before the results were): a second report of the same data computes and draws none of them again.
    Nothing is kept when the store is off or an import came in meanwhile (the results may be of either version)."""
    from vbhc.results import ChartKey, TableKey, ViewKey

    if version is None or store.version() != version:
        return _Kept()

    def tables(result: IndicatorResult, compute: Callable[[IndicatorResult], pd.DataFrame]) -> pd.DataFrame:
        key = TableKey(ViewKey.of(result.condition, level, period), compute.__name__)
        return store.table(key, version, lambda: compute(result))

    def charts(digest: str, render: Callable[[], bytes]) -> bytes:
        return store.chart(ChartKey(digest), version, render)

    return _Kept(charts, tables)
