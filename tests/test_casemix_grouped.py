"""Case-mix models fitted on the case-mix patterns (vbhc.casemix.fit_casemix_model grouped=True, as the PREM tables
are) against the same models fitted on every row: the coefficients, expected values, diagnostics and the indicator
tables built on them (O/E, limits, verdicts, suppression) agree within RTOL, on data with a pattern without events,
a pattern with only events, missing case-mix values and a unit with a single respondent.

Why a tolerance: the grouped fit sums per pattern first, so its sums are added in another order than the rows'
(the two fits agree to ~1e-13 on the PREM data of 1,000,000 care cycles). The random-effects columns get SHRINKAGE_RTOL:
their maximum-likelihood search (vbhc.shrinkage) stops within its own tolerance, so on main already an input changed
by 1e-13 moves the between-unit variance by up to ~1e-7 relative."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from vbhc import casemix
from vbhc.casemix import fit_casemix_model
from vbhc.catalog import PREM_CASEMIX, CaseMixVariable, default_catalog
from vbhc.demo_prems import write_prem_responses
from vbhc.prems import compute_prem_indicators, prem_data
from vbhc.shrinkage import COLUMNS as SHRINKAGE

RTOL = 1e-9
SHRINKAGE_RTOL = 1e-5

AGE = ("16-34", "35-49", "50-64", "65-74", "75+")
EDUCATION = ("low", "middle", "high")
HEALTH = ("excellent", "very good", "good", "fair", "poor")
CASEMIX = (
    CaseMixVariable("age_band", "category", codes=AGE),
    CaseMixVariable("education", "category", codes=EDUCATION),
    CaseMixVariable("self_rated_health", "category", codes=HEALTH),
)


def _rows(seed: int, n: int = 8_000, *, missing: float = 0.02, numeric: bool = False) -> pd.DataFrame:
    """Respondent-like rows: three categorical case-mix columns (text, some missing), a binary and a continuous
    outcome that depend on them; the pattern (16-34, low, poor) never has the event, (75+, high, excellent) always,
    and with `numeric` a 0-4 score enters as a number."""
    rng = np.random.default_rng(seed)
    age = rng.choice(AGE, n, p=[0.15, 0.2, 0.3, 0.2, 0.15])
    education = rng.choice(EDUCATION, n, p=[0.3, 0.4, 0.3])
    health = rng.choice(HEALTH, n, p=[0.1, 0.25, 0.35, 0.2, 0.1])
    lp = -0.3 + 0.25 * np.searchsorted(AGE, age) / 2 - 0.4 * (health == "poor") + 0.3 * (education == "high")
    binary = (rng.random(n) < 1 / (1 + np.exp(-lp))).astype(float)
    binary[(age == "16-34") & (education == "low") & (health == "poor")] = 0.0
    binary[(age == "75+") & (education == "high") & (health == "excellent")] = 1.0
    rating = 7.5 + lp + rng.normal(0, 1.5, n)
    frame = pd.DataFrame(
        {
            "age_band": pd.array(age, dtype="string"),
            "education": pd.array(education, dtype="string"),
            "self_rated_health": pd.array(health, dtype="string"),
            "binary": binary,
            "rating": rating,
        }
    )
    for name in PREM_CASEMIX:
        frame.loc[rng.random(n) < missing, name] = pd.NA
    frame.loc[rng.random(n) < 0.05, ["binary", "rating"]] = np.nan  # not recorded
    if numeric:
        frame["score"] = rng.integers(0, 5, n).astype(float)
        frame.loc[rng.random(n) < 0.03, "score"] = np.nan
    return frame


def _assert_close(got, want, rtol: float = RTOL, what: str = "") -> None:
    np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), rtol=rtol, atol=1e-13, err_msg=what)


def _assert_same_model(grouped: casemix.CaseMixModel, per_row: casemix.CaseMixModel, data: pd.DataFrame) -> None:
    g, r = grouped.coefficients, per_row.coefficients
    assert list(g["term"]) == list(r["term"])
    for column in ("estimate", "se", "p"):
        _assert_close(g[column], r[column], what=column)
    _assert_close(grouped.params, per_row.params, what="params")
    assert grouped.expected.index.equals(per_row.expected.index)
    _assert_close(grouped.expected, per_row.expected, what="expected")
    assert grouped.overall == pytest.approx(per_row.overall, rel=RTOL)
    assert [t.columns for t in grouped.terms] == [t.columns for t in per_row.terms]
    for name in ("calibration_intercept", "calibration_slope", "brier", "r_squared", "residual_sd"):
        _assert_close(getattr(grouped.diagnostics, name), getattr(per_row.diagnostics, name), what=name)
    # the c-statistic ranks the rows' linear predictors, ties 1/2: the per-row fit's predictors of one pattern may
    # differ in their last bit (a predictor near 0: 1e-17 apart), which breaks some ties at random; the grouped fit
    # ties them all, as the c-statistic of the per-row model's predictor computed again gives it
    y = data[per_row.outcome].to_numpy(float)
    tied = casemix.c_statistic(y, per_row.linear_predictor(data).to_numpy())
    _assert_close(grouped.diagnostics.c_statistic, tied, what="c_statistic")
    _assert_close(grouped.diagnostics.c_statistic, per_row.diagnostics.c_statistic, SHRINKAGE_RTOL, "c_statistic")
    exact = ("n_input", "n_used", "n_excluded", "excluded_by_reason", "events", "method", "merged_levels", "dropped")
    for name in (*exact, "warning_code"):
        assert getattr(grouped.diagnostics, name) == getattr(per_row.diagnostics, name), name
    assert grouped.mean_contribution.keys() == per_row.mean_contribution.keys()
    for variable, value in per_row.mean_contribution.items():
        _assert_close(grouped.mean_contribution[variable], value, what=variable)
        points, weights = per_row.population_contributions[variable]
        _assert_close(grouped.population_contributions[variable][0], points, what=variable)
        _assert_close(grouped.population_contributions[variable][1], weights, what=variable)


@pytest.fixture
def grouped_fits(monkeypatch):
    """The models the grouped fit returned (None: it left the fit to the per-row one)."""
    seen: list[casemix.CaseMixModel | None] = []
    fit = casemix._fit_grouped

    def spy(*args, **kwargs):
        seen.append(fit(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(casemix, "_fit_grouped", spy)
    return seen


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", ["binary", "continuous"])
@pytest.mark.parametrize("missing", ["exclude", "indicator"])
def test_grouped_fit_equals_per_row_fit(seed, kind, missing, grouped_fits):
    data = _rows(seed, numeric=seed == 3)
    outcome = "binary" if kind == "binary" else "rating"
    extra = ("score",) if seed == 3 else ()
    per_row = fit_casemix_model(data, outcome, CASEMIX, kind, extra, missing)
    grouped = fit_casemix_model(data, outcome, CASEMIX, kind, extra, missing, grouped=True)
    assert len(grouped_fits) == 1 and grouped_fits[0] is grouped  # the patterns' fit, not the per-row one
    assert grouped.diagnostics.method == ("logistic" if kind == "binary" else "ols")
    _assert_same_model(grouped, per_row, data)


@pytest.mark.parametrize("seed", [4, 5])
def test_grouped_ridge_fit_equals_per_row_ridge_fit(seed, grouped_fits, monkeypatch):
    """Where a fit separates, both fall back to the ridge-penalised fit (here every fit is taken as separated): the
    grouped one maximises the same penalised likelihood (its patterns' GLM), with the same column scaling."""
    monkeypatch.setattr(casemix, "_separated", lambda *args, **kwargs: True)
    data = _rows(seed)
    per_row = fit_casemix_model(data, "binary", CASEMIX, "binary")
    grouped = fit_casemix_model(data, "binary", CASEMIX, "binary", grouped=True)
    assert grouped_fits[0] is grouped
    assert grouped.diagnostics.method == "ridge"
    _assert_same_model(grouped, per_row, data)


def test_many_patterns_are_fitted_per_row(grouped_fits):
    """A numeric case-mix variable with a value per row: as many patterns as rows, so the per-row fit."""
    data = _rows(5)
    data["score"] = np.random.default_rng(5).normal(size=len(data))
    per_row = fit_casemix_model(data, "binary", CASEMIX, "binary", ("score",))
    grouped = fit_casemix_model(data, "binary", CASEMIX, "binary", ("score",), grouped=True)
    assert grouped_fits == [None]
    pd.testing.assert_frame_equal(grouped.coefficients, per_row.coefficients)


def _answers(seed: int) -> pd.DataFrame:
    """Generated PREM answers of 12 departments, some case-mix values missing, and a department of one respondent."""
    import tempfile
    from pathlib import Path

    units = [(h, d, 1.0 + 0.3 * i) for i, h in enumerate(("H01", "H02", "H03", "H04")) for d in ("SUR", "ORT", "CAR")]
    with tempfile.TemporaryDirectory() as folder:
        path, _, _ = write_prem_responses(
            Path(folder), units, respondents=2_500, seed=seed, first=dt.date(2024, 1, 1), last=dt.date(2024, 12, 31)
        )
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["answer"] = frame["answer"].astype(float)
    frame["visit_date"] = pd.to_datetime(frame["visit_date"])
    frame = frame[frame["questionnaire"] == "prem_clinical"].drop(columns="questionnaire")
    responses = frame["response_id"].unique()
    rng = np.random.default_rng(seed)
    for name in PREM_CASEMIX:
        frame[name] = frame[name].replace("", None)
        gone = rng.choice(responses, size=len(responses) // 50, replace=False)
        frame.loc[frame["response_id"].isin(gone), name] = None
    single = frame[frame["response_id"] == responses[0]].copy()
    single["response_id"] = "SINGLE-1"
    single["department"] = "ONE"
    return pd.concat([frame, single], ignore_index=True)


@pytest.mark.parametrize("seed", [11, 12])
def test_prem_tables_grouped_equal_per_row(seed, grouped_fits):
    """Every column of a questionnaire's tables at both levels: the verdicts, flags and suppression identical, the
    figures within RTOL (the random-effects columns SHRINKAGE_RTOL)."""
    answers = _answers(seed)
    q = default_catalog().questionnaire("prem_clinical")
    grouped_data, per_row_data = prem_data(answers, q), prem_data(answers, q)
    for level in ("department", "hospital"):
        grouped = compute_prem_indicators(grouped_data, level).table
        per_row = compute_prem_indicators(per_row_data, level, grouped_fits=False).table
        assert "H01/ONE" in set(per_row["unit"]) or level == "hospital"
        assert list(grouped.columns) == list(per_row.columns)
        assert len(grouped) == len(per_row)
        for column in per_row.columns:
            g, r = grouped[column], per_row[column]
            if pd.api.types.is_float_dtype(r) and pd.api.types.is_float_dtype(g):
                rtol = SHRINKAGE_RTOL if column in SHRINKAGE else RTOL
                _assert_close(g, r, rtol, f"{level} {column}")
            else:
                pd.testing.assert_series_equal(g, r, obj=f"{level} {column}")
    fitted = [m for m in grouped_fits if m is not None]
    assert len(fitted) == len(per_row_data.rows.fitted) > 0  # every model of the grouped tables fitted on patterns
