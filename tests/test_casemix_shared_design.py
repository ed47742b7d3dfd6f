"""The per-row case-mix fits of one condition's indicators share their work where the data let them: the design of the
fitting rows is built (and checked for collinearity) once for the indicators fitted on the same rows with the same
encoding (vbhc.casemix._fitting_design, kept by the view's ColumnCache), and the models are the same to the last bit
as those fitted without it; the calibration slope's Newton starts at its optimum on the fitting data."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy.special import expit

from vbhc import casemix
from vbhc.casemix import ColumnCache, fit_casemix_model
from vbhc.catalog import CaseMixVariable

from .test_casemix import CASEMIX, TRUTH_BINARY, simulate_cycles, true_linear_predictor


def _frames(n: int = 3_000, seed: int = 5):
    """A condition's indicator frames: the same cycles (case-mix columns), an outcome each, as
    vbhc.indicators._indicator_frame gives them; `late` is recorded for two thirds of the cycles only."""
    base = simulate_cycles(n, seed=seed)
    rng = np.random.default_rng(seed)
    lp = true_linear_predictor(base, TRUTH_BINARY)
    late = rng.binomial(1, expit(lp + 0.5)).astype(float)
    late[rng.random(n) < 1 / 3] = np.nan
    outcomes = {
        "mortality": ("binary", rng.binomial(1, expit(lp)).astype(float)),
        "complication": ("binary", rng.binomial(1, expit(lp + 1.0)).astype(float)),
        "length_of_stay": ("continuous", 5 + 2 * lp + rng.normal(0, 2, n)),
        "late": ("binary", late),
    }
    return [(name, kind, base.assign(y=y)) for name, (kind, y) in outcomes.items()]


def _same(a: casemix.CaseMixModel, b: casemix.CaseMixModel) -> None:
    assert np.array_equal(a.params, b.params)
    assert np.array_equal(a.expected.to_numpy(), b.expected.to_numpy(), equal_nan=True)
    assert a.terms == b.terms
    assert a.mean_contribution == b.mean_contribution
    for name, (points, weights) in a.population_contributions.items():
        assert np.array_equal(points, b.population_contributions[name][0])
        assert np.array_equal(weights, b.population_contributions[name][1])
    plain = {k: v for k, v in a.diagnostics.as_dict().items() if k != "fit_seconds"}
    other = {k: v for k, v in b.diagnostics.as_dict().items() if k != "fit_seconds"}
    assert plain.keys() == other.keys()
    for key, value in plain.items():
        assert value == other[key] or (value != value and other[key] != other[key]), key
    assert a.coefficients.equals(b.coefficients)


def test_indicators_on_the_same_rows_share_one_design_and_fit_the_same_models(monkeypatch):
    """Mortality, complications and length of stay: the same rows and encoding, one design. Its own design for an
    outcome recorded on other rows (`late`), for one whose events leave a level event-free (merged: another encoding),
    and for one with an extra covariate the cache does not keep (a PROM's baseline score). Every model the same to the
    last bit as fitted alone; a level seen only outside the fitting rows (asa 5 among the cycles without a recorded
    outcome, a text column's level) neither becomes a column nor the reference, as when the rows are fitted alone."""
    frames = _frames()
    base = frames[0][2]
    rare = base.assign(y=np.where(base["stage"].astype(str) == "IV", 0.0, base["y"]))
    baseline = base.assign(baseline_score=np.random.default_rng(3).normal(50, 10, len(base)))
    fits = [(kind, frame, []) for _, kind, frame in frames]
    fits += [("binary", rare, []), ("binary", baseline, ["baseline_score"])]
    late = frames[3][2]
    other = late.assign(asa=late["asa"].where(late["y"].notna(), 5), stage=late["stage"].astype(str).astype("string"))
    variables = [*CASEMIX[:5], CaseMixVariable("stage", "category")]
    alone = [fit_casemix_model(frame, "y", CASEMIX, kind, extra_covariates=extra) for kind, frame, extra in fits]
    alone_other = [fit_casemix_model(other, "y", variables, kind) for kind in ("binary", "continuous")]
    built = []
    original = casemix._drop_collinear

    def counted(x, weights=None):
        built.append(x.shape[0])
        return original(x, weights)

    monkeypatch.setattr(casemix, "_drop_collinear", counted)
    cache = ColumnCache(frozenset(v.name for v in CASEMIX))
    shared = [fit_casemix_model(frame, "y", CASEMIX, kind, extra_covariates=x, cache=cache) for kind, frame, x in fits]
    cache_other = ColumnCache(frozenset(v.name for v in variables))
    shared_other = [fit_casemix_model(other, "y", variables, k, cache=cache_other) for k in ("binary", "continuous")]
    assert built == [3_000, len(late["y"].dropna()), 3_000, 3_000, len(late["y"].dropna())]
    assert shared[4].diagnostics.merged_levels.get("stage") == ["IV"]
    for a, b in zip(alone + alone_other, shared + shared_other, strict=True):
        _same(a, b)
    assert "asa[5]" not in shared_other[0].coefficients["term"].tolist()
    on_their_own = fit_casemix_model(other[other["y"].notna()], "y", variables, "binary")
    assert shared_other[0].terms == on_their_own.terms


def test_calibration_slope_newton_starts_at_its_optimum(monkeypatch):
    """On the data a logistic model was fitted on by maximum likelihood, intercept 0 and slope 1 are the calibration
    fit's optimum: two Newton steps per fit (one, and the check that it moved less than the tolerance), not the six or
    more from zero, and the same maximum as from zero. Where (0, 1) is far from the optimum (predictions exaggerated
    twofold, on which Newton from slope 1 overflows) the fit is retried from zero: the same slope, 0.5."""
    frame = _frames()[0][2]
    model = fit_casemix_model(frame, "y", CASEMIX, "binary")
    y = frame["y"].to_numpy(float)
    lp = model.linear_predictor(frame).to_numpy()
    from_zero = sm.Logit(y, np.column_stack([np.ones_like(lp), lp])).fit(method="newton", disp=0).params
    assert model.diagnostics.calibration_slope == pytest.approx(from_zero[1], rel=1e-12)
    calls = []
    hessian = sm.Logit.hessian
    monkeypatch.setattr(sm.Logit, "hessian", lambda self, params: calls.append(1) or hessian(self, params))
    citl, slope = casemix._calibration(y, lp, fitted=True)
    assert len(calls) <= 4
    assert slope == pytest.approx(from_zero[1], rel=1e-12) and citl == pytest.approx(0.0, abs=1e-12)
    monkeypatch.setattr(sm.Logit, "hessian", hessian)
    exaggerated = sm.Logit(y, np.column_stack([np.ones_like(lp), 2 * lp])).fit(method="newton", disp=0).params
    _, slope2 = casemix._calibration(y, 2 * lp, fitted=True)
    assert slope2 == pytest.approx(exaggerated[1], rel=1e-10)
    assert slope2 == pytest.approx(0.5, rel=1e-9)
