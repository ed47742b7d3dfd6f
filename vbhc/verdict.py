"""One verdict per indicator and unit, in plain words, that never contradicts itself.

A row of the indicator table (vbhc.indicators) and, optionally, its SPC chart (vbhc.spc via
indicators.indicator_over_time) become a Verdict: a category, the limits that decided it, and one sentence in
Dutch or English from the message catalog, e.g.

    "Worse than expected: 22.0% against 13.3% expected for its patients; outside the 99.8% limits;
     rising since Q2 2024"

Rules (in this order; the first that applies decides the category):
0. a volume                                -> "not_assessed"
1. too few care cycles (n < min_n)          -> "too_few" (never flagged)
2. no value                                 -> "no_data"
3. outside the 99.8% limits                 -> "better"/"worse", severity "998"
4. outside the 95% limits only              -> "better"/"worse", severity "95"; decisive (the scorecard colour)
   only for PROM response and cost, which are judged at 95% (DESIGN); for outcomes the words say "Possibly"
5. no benchmark (withheld, or no limits)    -> "no_benchmark"; a row whose benchmark and case-mix figures are
   withheld from this viewer (vbhc.access: too few other units) says so beside its crude value, not "No data"
   beside its count
6. otherwise                                -> "as_expected"
Rankability only changes the wording: low rankability with a unit outside its limits says that units differ
little but that this difference is larger than chance explains (99.8%) or should be read with care (95%);
"cannot reliably tell units apart" is said only of a unit within its limits. The trend clause comes from the
SPC chart's last point (Making Data Count): a special cause gives "rising/falling since <first period of the
signalled stretch>", common cause "stable over time". The comparison is observed against expected for the
unit's own patients (the case-mix model's E), which is exactly what the funnel position compares (survival:
deaths against the Cox model's expected deaths and their ratio, the SMR, with its exact CI); without an
expected value, the (adjusted) value against the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vbhc import spc
from vbhc.catalog import BINARY_KINDS, PREM_KINDS, SURVIVAL_KINDS
from vbhc.i18n import fmt_ci, fmt_int, fmt_number, fmt_ratio, format_value, t

__all__ = ["DECIDE_AT_95", "Verdict", "verdict", "verdict_labels", "verdicts"]

#: Indicator kinds judged at the 95% limits (organisational and cost measures: no patient is harmed by a
#: false alarm); all others at 99.8%.
DECIDE_AT_95 = ("response_rate", "cost")
BINARY = BINARY_KINDS

CATEGORIES = ("better", "worse", "as_expected", "too_few", "no_data", "no_benchmark", "not_assessed")


def _get(row: Any, name: str, default: Any = None) -> Any:
    value = row.get(name, default) if hasattr(row, "get") else getattr(row, name, default)
    return default if value is None else value


def _finite(x: Any) -> bool:
    try:
        return bool(np.isfinite(float(x)))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Verdict:
    category: str  #: one of CATEGORIES
    severity: str | None  #: "998", "95" or None (within, too few, no data)
    decisive: bool  #: outside the limits this kind is judged at: the scorecard colours it
    kind: str
    value: float
    expected: float
    #: "expected" (for its patients), "deaths" (survival: observed and expected deaths), "benchmark", or "withheld"
    #: (the benchmark withheld from this viewer: `value` is the crude value)
    against: str
    ci_lower: float = float("nan")
    ci_upper: float = float("nan")
    low_rankability: bool = False
    rankability: float = float("nan")
    n: float = float("nan")
    min_n: float = float("nan")
    #: care cycles with complete case-mix data: the count the limits (and "too few") are judged on
    n_adjusted: float = float("nan")
    trend: str = ""  #: "rising", "falling", "stable" or "" (no SPC chart)
    trend_since: pd.Timestamp | None = None
    variation: str = ""  #: vbhc.spc variation icon of the chart's last point
    assurance: str = ""  #: vbhc.spc assurance icon
    #: the funnel's limits allow for more variation between units than chance alone (over-dispersion: the
    #: benchmark's dispersion_method is not "none"); the unit's own interval does not
    overdispersed: bool = False
    #: the adjusted value's interval (the tables' CI column) leaves the benchmark (their benchmark column) out
    adjusted_excludes_benchmark: bool = False
    #: the share (crude value) of a proportion with no event in any unit (every unit and the benchmark at the
    #: same 0%): there is no expected value to adjust with, so the verdict says so instead of "No data" beside a
    #: count of care cycles (a registry where no unit ever reached a textbook outcome)
    no_events_share: float = float("nan")

    @property
    def assessment(self) -> str:
        """The palette's assessment (vbhc.charts.scorecard_colour): colour only for a decisive verdict."""
        if self.category in ("better", "worse"):
            return self.category if self.decisive else "as expected"
        return {"too_few": "too few cycles", "no_data": "no data", "no_benchmark": "no data", "not_assessed": ""}.get(
            self.category, "as expected"
        )

    @property
    def signal(self) -> bool:
        """A signal worth discussing: outside the deciding limits, or special-cause variation now."""
        return (self.category in ("better", "worse") and self.decisive) or self.variation in ("improvement", "concern")

    @property
    def concern(self) -> bool:
        """A signal in the unwanted direction (the patient list then shows the cycles behind it)."""
        return (self.category == "worse" and self.decisive) or self.variation == "concern"

    @property
    def _counted(self) -> str | None:
        """What a patient-experience indicator counts instead of care cycles: respondents, or answers (top box)."""
        if self.kind not in PREM_KINDS:
            return None
        return "answers" if self.kind == "prem_topbox" else "respondents"

    def label(self, lang: str) -> str:
        """The headline: "Worse than expected", "Possibly worse than expected", "As expected", ..."""
        if self.category == "no_data" and _finite(self.no_events_share):
            return t("verdict.not_assessed", lang)
        if self.category in ("better", "worse") and self.severity == "95" and not self.decisive:
            return t(f"verdict.possibly_{self.category}", lang)
        if self.category == "too_few" and self._counted:
            return t(f"verdict.too_few_{self._counted}", lang)
        return t(f"verdict.{self.category}", lang)

    def value_text(self, lang: str) -> str:
        """The verdict's own value as the reader sees it (the crude value when the benchmark is withheld)."""
        return format_value(self.value, self.kind, lang)

    def comparison(self, lang: str, with_ci: bool = False) -> str:
        if self.against == "deaths":  # survival: deaths against the Cox model's expected deaths, and their ratio
            smr = fmt_ratio(self.value / self.expected, lang)
            if with_ci and _finite(self.ci_lower) and _finite(self.ci_upper):
                smr += f", {t('verdict.ci', lang, ci=fmt_ci(self.ci_lower, self.ci_upper, 'oe', lang))}"
            return t(
                "verdict.against_deaths",
                lang,
                observed=fmt_int(self.value, lang),
                expected=fmt_number(self.expected, lang, 1),
                smr=smr,
            )
        value = format_value(self.value, self.kind, lang)
        if with_ci and _finite(self.ci_lower) and _finite(self.ci_upper):
            value += f" ({t('verdict.ci', lang, ci=fmt_ci(self.ci_lower, self.ci_upper, self.kind, lang))})"
        other = format_value(self.expected, self.kind, lang)
        if self.against == "expected":
            return t("verdict.against_expected", lang, value=value, expected=other)
        return t("verdict.against_benchmark", lang, value=value, benchmark=other)

    def clauses(self, lang: str, with_ci: bool = False) -> list[str]:
        """The parts after the headline: comparison, position, rankability, trend."""
        if self.category == "too_few":
            min_n = fmt_int(self.min_n, lang)
            if not self._counted and _finite(self.n_adjusted) and self.n_adjusted < self.min_n <= self.n:
                # enough cycles, too few with complete case-mix data: say so, not "27 cycles, at least 20 needed"
                total = fmt_int(self.n, lang)
                return [t("verdict.too_few_detail_adjusted", lang, count=self.n_adjusted, total=total, min_n=min_n)]
            if not _finite(self.n):  # another unit's count withheld or in a band (vbhc.access): not said here
                return [t("verdict.too_few_detail_withheld", lang, min_n=min_n)]
            key = f"verdict.too_few_detail_{self._counted}" if self._counted else "verdict.too_few_detail"
            return [t(key, lang, count=self.n, min_n=min_n)]
        if self.category == "no_data" and _finite(self.no_events_share):
            return [t("verdict.no_events_anywhere", lang, value=format_value(self.no_events_share, self.kind, lang))]
        if self.category in ("no_data", "not_assessed"):
            return []
        if self.against == "withheld":
            return [t("verdict.benchmark_withheld", lang, value=self.value_text(lang))]
        parts = [self.comparison(lang, with_ci)] if _finite(self.value) and _finite(self.expected) else []
        if self.severity == "998":
            parts.append(t("verdict.outside_998", lang))
        elif self.severity == "95":
            parts.append(t("verdict.outside_95", lang))
        elif self.category == "as_expected" and self._interval_excludes:
            # an interval beside the verdict leaves the expected value or the benchmark out while the verdict says
            # within: both hold, and the sentence says why: the limits allow for the variation between units that
            # the unit's own interval does not, or (limits around the benchmark, the interval around the unit's
            # value, two computations) the unit lies at the limits' edge
            parts.append(t("verdict.within_overdispersed" if self.overdispersed else "verdict.within_edge", lang))
        elif self.category == "as_expected":
            parts.append(t("verdict.within", lang))
        if self.low_rankability and self.category != "no_benchmark":
            rank = fmt_number(self.rankability, lang, 2)
            # a rankability that could not be estimated is said in words, not as "(rankability –)"
            known = "" if _finite(self.rankability) else "_unknown"
            if self.severity == "998" or (self.severity == "95" and self.decisive):
                parts.append(t(f"verdict.rank_real{known}", lang, rankability=rank))
            elif self.severity == "95":
                parts.append(t(f"verdict.rank_careful{known}", lang, rankability=rank))
            else:
                parts.append(t(f"verdict.rank_cannot{known}", lang, rankability=rank))
        if self.trend in ("rising", "falling") and self.trend_since is not None:
            parts.append(t(f"verdict.{self.trend}_since", lang, period=_period(self.trend_since, lang)))
        elif self.trend == "stable":
            parts.append(t("verdict.stable", lang))
        return parts

    @property
    def _interval_excludes(self) -> bool:
        """Whether an interval the reader sees beside the verdict leaves its reference out: the verdict's own
        (against the expected value) or the adjusted value's (against the benchmark, in the tables)."""
        if self.adjusted_excludes_benchmark:
            return True
        if not (_finite(self.ci_lower) and _finite(self.ci_upper) and _finite(self.expected)):
            return False
        reference = 1.0 if self.against == "deaths" else self.expected  # survival's interval is the SMR's
        return not self.ci_lower <= reference <= self.ci_upper

    def sentence(self, lang: str, with_ci: bool = False) -> str:
        """ "<headline>: <comparison>; <position>[; <rankability>][; <trend>]"."""
        parts = self.clauses(lang, with_ci)
        return f"{self.label(lang)}: {'; '.join(parts)}" if parts else self.label(lang)


def _period(when: pd.Timestamp, lang: str) -> str:
    ts = pd.Timestamp(when)
    return t("verdict.quarter", lang, quarter=(ts.month - 1) // 3 + 1, year=ts.year)


def _trend(chart: pd.DataFrame | None) -> tuple[str, pd.Timestamp | None, str, str]:
    """(trend word, since, variation, assurance) from an SPC chart of vbhc.spc."""
    if chart is None or len(chart) == 0 or "signal" not in chart.columns:
        return "", None, "", ""
    value = chart["p"] if "p" in chart.columns else chart["value"]
    have = chart[np.isfinite(pd.to_numeric(value, errors="coerce").to_numpy(float))]
    if have.empty:
        return "", None, "", ""
    if len(have) < spc.MIN_ICON_POINTS:  # one or two periods: no trend and no icon (the page says why)
        return "", None, spc.TOO_FEW_PERIODS, spc.TOO_FEW_PERIODS
    variation = str(chart.attrs.get("variation", have["point_type"].iloc[-1] if "point_type" in have else ""))
    assurance = str(chart.attrs.get("assurance", ""))
    signal = have["signal"].astype(bool).to_numpy()
    if not signal[-1]:
        return "stable", None, variation, assurance
    side = float(have["special_side"].iloc[-1]) if "special_side" in have else 0.0
    start = len(signal) - 1
    segment = have["segment"].to_numpy() if "segment" in have else np.zeros(len(have))
    while start > 0 and signal[start - 1] and segment[start - 1] == segment[-1]:
        start -= 1
    since = have["period"].iloc[start]
    since = pd.Timestamp(since) if isinstance(since, pd.Timestamp | np.datetime64 | str) else None
    word = "rising" if side > 0 else "falling" if side < 0 else "stable"
    return word, since, variation, assurance


def verdict(row: Any, chart: pd.DataFrame | None = None) -> Verdict:
    """The verdict of one indicator-table row (a Series or itertuples row), with its SPC chart if there is one."""
    kind = str(_get(row, "kind", "proportion"))
    pos998, pos95 = _get(row, "position_998"), _get(row, "position_95")
    too_few = bool(_get(row, "too_few_cycles", False)) or pos998 == "too few cycles"
    direction = _get(row, "direction", "lower")
    n = _get(row, "n", np.nan)
    observed, expected = _get(row, "observed", np.nan), _get(row, "expected", np.nan)
    target = _get(row, "target", np.nan)
    n_adj = _get(row, "n_adjusted", np.nan)
    n_adj = n_adj if _finite(n_adj) and float(n_adj) > 0 else n
    ci = (np.nan, np.nan)
    if kind in BINARY and _finite(expected) and float(expected) > 0 and _finite(n_adj) and float(n_adj) > 0:
        value, exp_value, against = float(observed) / float(n_adj), float(expected) / float(n_adj), "expected"
        lo, up = _get(row, "oe_lower", np.nan), _get(row, "oe_upper", np.nan)
        ci = (float(lo) * exp_value, float(up) * exp_value) if _finite(lo) and _finite(up) else ci
    elif kind in SURVIVAL_KINDS and _finite(expected) and float(expected) > 0 and _finite(observed):
        # survival: observed deaths within the horizon against the Cox model's expected deaths for the unit's own
        # patients; their ratio is the SMR, its exact Poisson interval the CI (what the funnel position compares)
        value, exp_value, against = float(observed), float(expected), "deaths"
        ci = (_num(_get(row, "oe_lower", np.nan)), _num(_get(row, "oe_upper", np.nan)))
    elif kind not in (*BINARY, *SURVIVAL_KINDS, "response_rate") and _finite(expected) and _finite(observed):
        # a mean: observed and expected are means
        value, exp_value, against = float(observed), float(expected), "expected"
        shift = float(observed) - _num(_get(row, "adjusted_value", np.nan))
        ci = (_num(_get(row, "adjusted_lower", np.nan)) + shift, _num(_get(row, "adjusted_upper", np.nan)) + shift)
    else:
        value, exp_value, against = _num(_get(row, "adjusted_value", np.nan)), _num(target), "benchmark"
        ci = (_num(_get(row, "adjusted_lower", np.nan)), _num(_get(row, "adjusted_upper", np.nan)))
    rank = _num(_get(row, "rankability", np.nan))
    low_rank = bool(_get(row, "rankability_note", "")) or (_finite(rank) and rank < 0.5)
    higher = direction == "higher"

    def side(position: Any) -> str | None:
        if position == "above":
            return "better" if higher else "worse"
        if position == "below":
            return "worse" if higher else "better"
        return None

    missing = not _finite(_get(row, "adjusted_value", np.nan)) and not _finite(value)
    # the benchmark and the case-mix figures withheld from this viewer (vbhc.access._without_benchmark): the crude
    # value is what is known, and the verdict says why there is no more (not "No data" beside a count)
    withheld = str(_get(row, "benchmark_withheld", False)) == "True" and _finite(_get(row, "crude_value", np.nan))
    if withheld and missing:
        value, exp_value, against = _num(_get(row, "crude_value", np.nan)), np.nan, "withheld"
    if kind == "volume":
        category, severity = "not_assessed", None
    elif too_few:
        category, severity = "too_few", None
    elif against == "withheld":
        category, severity = "no_benchmark", None
    elif missing or pos998 == "no data":
        category, severity = "no_data", None
    elif side(pos998):
        category, severity = side(pos998), "998"
    elif side(pos95):
        category, severity = side(pos95), "95"
    elif not _finite(target) or pos998 not in ("within", "above", "below"):
        category, severity = "no_benchmark", None
    else:
        category, severity = "as_expected", None
    decisive = severity == "998" or (severity == "95" and kind in DECIDE_AT_95)
    word, since, variation, assurance = _trend(chart)
    return Verdict(
        category=category,
        severity=severity,
        decisive=decisive,
        kind=kind,
        value=value,
        expected=exp_value,
        against=against,
        ci_lower=ci[0],
        ci_upper=ci[1],
        low_rankability=low_rank,
        rankability=rank,
        n=_num(n),
        min_n=_num(_get(row, "min_n", np.nan)),
        n_adjusted=_num(_get(row, "n_adjusted", np.nan)),
        trend=word,
        trend_since=since,
        variation=variation,
        assurance=assurance,
        overdispersed=str(_get(row, "dispersion_method", "none") or "none") not in ("none", "nan"),
        adjusted_excludes_benchmark=_excludes(_get(row, "adjusted_lower"), _get(row, "adjusted_upper"), target),
        no_events_share=_no_events_share(row, kind, category),
    )


def _no_events_share(row: Any, kind: str, category: str) -> float:
    """The crude share of a proportion without a verdict because no unit has an event (the unit's crude value and
    the benchmark both 0 with care cycles counted); NaN otherwise."""
    if category != "no_data" or kind not in BINARY:
        return float("nan")
    crude, target, n = (_num(_get(row, name, np.nan)) for name in ("crude_value", "target", "n"))
    if crude == 0 and target == 0 and _finite(n) and n > 0:
        return 0.0
    return float("nan")


def _excludes(lower: Any, upper: Any, value: Any) -> bool:
    """Whether the interval [lower, upper] leaves `value` out (False where any of them is missing)."""
    if not (_finite(lower) and _finite(upper) and _finite(value)):
        return False
    return not float(lower) <= float(value) <= float(upper)


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")


def verdicts(rows: pd.DataFrame, charts: dict[Any, pd.DataFrame] | None = None) -> list[Verdict]:
    """A verdict per row; `charts` maps a row's index label to its SPC chart (optional)."""
    charts = charts or {}
    # one dict per row: a Series per row (iterrows) costs more than the verdict itself on a wide table
    return [verdict(row, charts.get(idx)) for idx, row in zip(rows.index, rows.to_dict("records"), strict=True)]


def verdict_labels(rows: pd.DataFrame, lang: str, charts: dict[Any, pd.DataFrame] | None = None) -> list[str]:
    """The verdict sentence per row: the one assessment column of every displayed table."""
    return [v.sentence(lang) for v in verdicts(rows, charts)]
