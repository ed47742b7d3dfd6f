"""Small-number and privacy rules shared by every export (Excel, PDF).

Reports leave the hospital (care teams, the board, external parties), so a figure about very few patients
must not be in them: one event among five care cycles can identify a patient. The rule here is the one the
quality directorate applies: a unit × indicator based on fewer care cycles than the threshold (default 10,
VBHC_SUPPRESS_BELOW) is withheld: its number of care cycles, observed and expected values and everything
derived from them (O/E, rates, means, confidence intervals, the control limits at its n and its position).
Such cells show a marker ("<10") explained by a footnote, and every file states the rules applied.

Patient-level rows are never part of an export unless the caller asks for them explicitly; then they are
pseudonymised care cycles (cycle id, unit, dates, outcome values) and never carry the patient id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vbhc.i18n import fmt_int, t
from vbhc.indicators import IndicatorResult
from vbhc.registry import unit_labels
from vbhc.settings import suppress_below

__all__ = [
    "WITHHELD_COLUMNS",
    "SuppressionRule",
    "patient_rows",
    "suppress_counts",
    "suppress_table",
]

#: Indicator-table columns withheld for a suppressed unit × indicator (limit and position columns by prefix).
WITHHELD_COLUMNS = (
    "n",
    "n_adjusted",
    "observed",
    "expected",
    "oe",
    "oe_lower",
    "oe_upper",
    "crude_value",
    "crude_lower",
    "crude_upper",
    "adjusted_value",
    "adjusted_lower",
    "adjusted_upper",
    "precision",
    "detectable_difference",
)
_WITHHELD_PREFIXES = ("lower_", "upper_", "position_", "assessment_")


@dataclass(frozen=True)
class SuppressionRule:
    """Counts below `threshold` are withheld; 0 switches suppression off."""

    threshold: int = 10

    def __post_init__(self) -> None:
        if self.threshold < 0:
            raise ValueError(f"suppression threshold must be 0 or more, got {self.threshold}")

    @classmethod
    def from_settings(cls, threshold: int | None = None) -> SuppressionRule:
        """The rule for `threshold`, or the configured one (VBHC_SUPPRESS_BELOW) when None."""
        return cls(suppress_below() if threshold is None else int(threshold))

    @property
    def active(self) -> bool:
        return self.threshold > 0

    @property
    def marker(self) -> str:
        """What a withheld cell shows."""
        return f"<{self.threshold}"

    def applies(self, counts: pd.Series | np.ndarray) -> np.ndarray:
        """True where a count is below the threshold (a missing count counts as 0)."""
        values = pd.to_numeric(pd.Series(np.asarray(counts)), errors="coerce").fillna(0).to_numpy(float)
        if not self.active:
            return np.zeros(len(values), dtype=bool)
        return values < self.threshold

    def footnote(self, lang: str) -> str:
        """The footnote under a table with withheld cells."""
        return t("report.suppressed_footnote", lang, marker=self.marker, threshold=fmt_int(self.threshold, lang))

    def statements(self, lang: str, *, patient_rows: bool = False) -> list[str]:
        """The rules applied, one sentence each, for the cover page / methods section of a file."""
        if self.active:
            lines = [t("report.rule_suppression", lang, marker=self.marker, threshold=fmt_int(self.threshold, lang))]
        else:
            lines = [t("report.rule_no_suppression", lang)]
        lines.append(t("report.rule_patient_rows_yes" if patient_rows else "report.rule_patient_rows_no", lang))
        lines.append(t("report.rule_formulas", lang))
        return lines


def _withheld(columns: pd.Index) -> list[str]:
    return [c for c in columns if c in WITHHELD_COLUMNS or str(c).startswith(_WITHHELD_PREFIXES)]


def suppress_table(table: pd.DataFrame, rule: SuppressionRule) -> pd.DataFrame:
    """A copy of an indicator table with the rule applied: withheld values become missing and the boolean
    column `suppressed` says which rows were withheld (writers show the rule's marker there)."""
    out = table.copy()
    hit = rule.applies(out["n"]) if "n" in out else np.zeros(len(out), dtype=bool)
    out["suppressed"] = hit
    if hit.any():
        for col in _withheld(out.columns):
            if pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
                out[col] = out[col].astype(float)
                out.loc[hit, col] = np.nan
            else:
                out[col] = out[col].astype(object)
                out.loc[hit, col] = None
    return out


def suppress_counts(frame: pd.DataFrame, count: str, columns: list[str], rule: SuppressionRule) -> pd.DataFrame:
    """Withhold `columns` (and the count itself) of rows whose `count` is below the threshold; adds the column
    `suppressed`. For summary frames other than the indicator table (PROM response, cost by activity)."""
    out = frame.copy()
    hit = rule.applies(out[count])
    out["suppressed"] = hit
    if hit.any():
        for col in {count, *columns}:
            out[col] = out[col].astype(float)
            out.loc[hit, col] = np.nan
    return out


def patient_rows(result: IndicatorResult) -> pd.DataFrame:
    """Pseudonymised care cycles behind a result: cycle id, unit, dates, treatment and outcome values.

    Never the patient id (or case-mix details): a cycle id is enough to look the cycle up in the team's own
    records, and nothing here identifies a person outside the hospital.
    """
    data = result.data
    if data is None or data.cycles.empty:
        return pd.DataFrame(columns=["condition", "cycle_id", "unit", "index_date", "treatment"])
    cycles = data.cycles
    outcomes = [o.id for o in data.condition.outcomes if o.id in cycles.columns]
    out = pd.DataFrame(
        {
            "condition": result.condition,
            "cycle_id": cycles["cycle_id"].astype(str).to_numpy(),
            "unit": unit_labels(cycles, result.level).to_numpy(),
            "index_date": pd.to_datetime(cycles["index_date"]).to_numpy(),
            "treatment": cycles["treatment"].astype(str).to_numpy(),
        }
    )
    for name in outcomes:
        out[name] = pd.to_numeric(cycles[name], errors="coerce").to_numpy(float)
    return out
