"""The quarterly SPC chart of each indicator of a unit, as the team page's verdicts read them (the trend and the
Making Data Count icons), computed for every unit of a view at once so a click on another unit reads them.

Why a module of its own: the charts of every unit of a view are kept in the results store (vbhc.results,
UnitChartsKey) and the store's file names carry a digest of this module's source, so a changed rule here is
never read from an older file, while the charts' statistics (vbhc.indicators, vbhc.spc) are part of the dataset
version's code fingerprint as before."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from vbhc.indicators import IndicatorResult, indicator_over_time, overdispersed

__all__ = ["CHART_FREQ", "NO_CHART_KINDS", "every_unit_charts", "unit_charts"]

#: The verdicts' SPC charts are per quarter.
CHART_FREQ = "QS"
#: Kinds without a trend chart beside the verdict: volumes are counts, PROM response has its own chart.
NO_CHART_KINDS = ("volume", "response_rate")


def unit_charts(result: IndicatorResult, unit: str) -> dict[str, pd.DataFrame]:
    """The SPC chart (vbhc.indicators.indicator_over_time, per quarter) of each of the unit's indicators with a
    trend, by indicator id; indicators whose chart is empty are left out. Read from the full view's table, so
    the charts are the same for every viewer (each page shows those of the rows its viewer may see)."""
    table = result.table
    if table.empty:
        return {}
    return _unit_charts(result, unit, overdispersed(table))


def _unit_charts(result: IndicatorResult, unit: str, laney: set[str]) -> dict[str, pd.DataFrame]:
    """unit_charts() with the view's over-dispersed indicators (`laney`) found once for all its units."""
    table = result.table
    rows = table[(table["unit"].astype(str) == str(unit)) & ~table["kind"].isin(NO_CHART_KINDS)]
    out: dict[str, pd.DataFrame] = {}
    for indicator in pd.unique(rows["indicator"]):
        name = str(indicator)
        chart = indicator_over_time(result, name, str(unit), freq=CHART_FREQ, laney=name in laney)
        if len(chart):
            out[str(indicator)] = chart
    return out


def every_unit_charts(
    result: IndicatorResult, *, pause: Callable[[], None] | None = None
) -> dict[str, dict[str, pd.DataFrame]]:
    """unit_charts() of every unit of the view, by unit. `pause` is called before each unit: a server computing
    them in the background waits there while a viewer's page is drawn (one interpreter lock for both)."""
    if result.table.empty:
        return {}
    out: dict[str, dict[str, pd.DataFrame]] = {}
    laney = overdispersed(result.table)
    for unit in pd.unique(result.table["unit"]):
        if pause is not None:
            pause()
        out[str(unit)] = _unit_charts(result, str(unit), laney)
    return out
