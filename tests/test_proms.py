"""Tests for vbhc.proms against the published reference data in tests/reference/ and hand-made cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from statsmodels.stats.proportion import proportion_confint

from vbhc.catalog import default_catalog
from vbhc.proms import (
    eq5d5l_index,
    prom_change,
    response_rate,
    score_instrument,
    score_responses,
)
from vbhc.settings import reference_dir

REF = Path(__file__).parent / "reference"
CATALOG = default_catalog()
EQ5D = CATALOG.instruments["eq5d5l"]
QLQ = CATALOG.instruments["qlq_c30"]
OHS = CATALOG.instruments["oxford_hip"]
OKS = CATALOG.instruments["oxford_knee"]
PROMIS = CATALOG.instruments["promis10"]
DATE = pd.Timestamp("2024-03-01")


def long_rows(cycle_id: str, instrument: str, timepoint: str, items: dict[str, float], date=DATE) -> pd.DataFrame:
    """Long item responses for one questionnaire; items with a NaN value are left out (= unanswered)."""
    answered = {k: v for k, v in items.items() if not pd.isna(v)}
    return pd.DataFrame(
        {
            "cycle_id": cycle_id,
            "instrument": instrument,
            "timepoint": timepoint,
            "item": list(answered),
            "value": [float(v) for v in answered.values()],
            "completed_date": date,
        }
    )


def eq5d_items(state: str, vas: float = 70) -> dict[str, float]:
    return {**dict(zip(("MO", "SC", "UA", "PD", "AD"), map(float, state), strict=True)), "VAS": vas}


# --- EQ-5D-5L -----------------------------------------------------------------------------------------


def test_eq5d5l_all_3125_states_match_reference():
    ref = pd.read_csv(REF / "eq5d5l_nl_all_states.csv", dtype={"state": str})
    assert len(ref) == 3125 and ref["state"].nunique() == 3125
    got = eq5d5l_index(ref["state"])
    np.testing.assert_allclose(np.round(got, 3), ref["index"].to_numpy(), rtol=0, atol=0.0005)
    assert got.min() == pytest.approx(-0.446) and got.max() == 1.0


def test_eq5d5l_examples_via_helper_array_and_scoring():
    ref = pd.read_csv(REF / "eq5d5l_nl_examples.csv", dtype={"state": str})
    np.testing.assert_allclose(eq5d5l_index(ref["state"]), ref["index"], atol=0.0005)
    levels = np.array([[int(c) for c in s] for s in ref["state"]])
    np.testing.assert_allclose(eq5d5l_index(levels), ref["index"], atol=0.0005)
    assert eq5d5l_index("23242") == pytest.approx(0.388, abs=1e-12)

    responses = pd.concat(
        [long_rows(f"c{i}", "eq5d5l", "baseline", eq5d_items(s, vas=i)) for i, s in enumerate(ref["state"])]
    )
    wide = score_instrument(responses, EQ5D).set_index("cycle_id")
    for i, (state, expected) in enumerate(zip(ref["state"], ref["index"], strict=True)):
        assert wide.loc[f"c{i}", "index"] == pytest.approx(expected, abs=0.0005), state
        assert wide.loc[f"c{i}", "vas"] == i


def test_eq5d5l_missing_or_invalid_dimension_gives_nan_index_but_keeps_vas():
    items = eq5d_items("23242", vas=55)
    del items["PD"]
    responses = pd.concat(
        [
            long_rows("missing_pd", "eq5d5l", "baseline", items),
            long_rows("vas_only", "eq5d5l", "baseline", {"VAS": 80}),
            long_rows("no_vas", "eq5d5l", "baseline", {k: v for k, v in eq5d_items("11111").items() if k != "VAS"}),
            long_rows("level_6", "eq5d5l", "baseline", {**eq5d_items("11111"), "MO": 6}),
            long_rows("level_2_5", "eq5d5l", "baseline", {**eq5d_items("11111"), "MO": 2.5}),
        ]
    )
    wide = score_instrument(responses, EQ5D).set_index("cycle_id")
    assert np.isnan(wide.loc["missing_pd", "index"]) and wide.loc["missing_pd", "vas"] == 55
    assert np.isnan(wide.loc["vas_only", "index"]) and wide.loc["vas_only", "vas"] == 80
    assert wide.loc["no_vas", "index"] == 1.0 and np.isnan(wide.loc["no_vas", "vas"])
    assert np.isnan(wide.loc["level_6", "index"]) and np.isnan(wide.loc["level_2_5", "index"])
    assert np.isnan(eq5d5l_index(["1111", "111111", "1x111", "01111"])).all()


@given(
    state=st.lists(st.integers(1, 5), min_size=5, max_size=5),
    dim=st.integers(0, 4),
)
def test_eq5d5l_index_never_increases_when_a_dimension_worsens(state, dim):
    worse = list(state)
    worse[dim] = min(worse[dim] + 1, 5)
    before, after = eq5d5l_index(np.array([state, worse]))
    assert after <= before
    assert -0.446 - 1e-12 <= after <= 1.0


# --- EORTC QLQ-C30 ------------------------------------------------------------------------------------

QLQ_EXAMPLES = pd.read_csv(REF / "qlq_c30_examples.csv")
QLQ_SCALES = [s.id for s in QLQ.scales]


@pytest.mark.parametrize("example", QLQ_EXAMPLES["example_id"].tolist())
def test_qlq_c30_worked_examples(example):
    row = QLQ_EXAMPLES.set_index("example_id").loc[example]
    items = {f"q{i}": row[f"q{i}"] for i in range(1, 31)}
    wide = score_instrument(long_rows(example, "qlq_c30", "baseline", items), QLQ)
    assert len(wide) == 1
    for scale in QLQ_SCALES:
        expected, got = row[scale], wide.loc[0, scale]
        if pd.isna(expected):
            assert np.isnan(got), f"{example} {scale}: expected missing, got {got}"
        else:
            assert got == pytest.approx(expected, abs=1e-3), f"{example} {scale}"


def test_qlq_c30_examples_scored_together_equal_scored_alone():
    frames = [
        long_rows(r.example_id, "qlq_c30", tp, {f"q{i}": getattr(r, f"q{i}") for i in range(1, 31)})
        for r in QLQ_EXAMPLES.itertuples()
        for tp in ("baseline", "3m")
    ]
    wide = score_instrument(pd.concat(frames), QLQ)
    assert len(wide) == 8
    expected = QLQ_EXAMPLES.set_index("example_id")[QLQ_SCALES].astype(float)
    for tp in ("baseline", "3m"):
        got = wide[wide["timepoint"] == tp].set_index("cycle_id")[QLQ_SCALES]
        pd.testing.assert_frame_equal(got.loc[expected.index], expected, atol=1e-3, check_names=False)


@settings(max_examples=60, deadline=None)
@given(
    answers=st.lists(
        st.lists(st.one_of(st.none(), st.integers(1, 4)), min_size=30, max_size=30), min_size=1, max_size=6
    ),
    global_items=st.lists(st.one_of(st.none(), st.integers(1, 7)), min_size=2, max_size=2),
)
def test_qlq_c30_scores_stay_within_0_100(answers, global_items):
    frames = []
    for n, a in enumerate(answers):
        values = a[:28] + global_items
        frames.append(long_rows(f"p{n}", "qlq_c30", "baseline", {f"q{i + 1}": v for i, v in enumerate(values)}))
    responses = pd.concat(frames)
    if responses.empty:
        return
    scores = score_instrument(responses, QLQ)[QLQ_SCALES].to_numpy()
    finite = scores[~np.isnan(scores)]
    assert ((finite >= -1e-9) & (finite <= 100 + 1e-9)).all()


# --- Oxford Hip / Knee --------------------------------------------------------------------------------

OXFORD = pd.read_csv(REF / "oxford_examples.csv")
OXFORD_CURRENT = OXFORD[OXFORD["item_coding"] == "0-4"]


@pytest.mark.parametrize("example", OXFORD_CURRENT["example_id"].tolist())
def test_oxford_examples(example):
    row = OXFORD_CURRENT.set_index("example_id").loc[example]
    instrument = OHS if row["instrument"] == "OHS" else OKS
    items = {f"i{i}": row[f"i{i}"] for i in range(1, 13)}
    wide = score_instrument(long_rows(example, instrument.id, "baseline", items), instrument)
    got, expected = wide.loc[0, "total"], row["total_0_48"]
    if pd.isna(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-9)  # unrounded imputation: OHS_2_missing = 26.4


def test_oxford_invalid_item_codes_count_as_missing():
    """A non-integer or out-of-range code (e.g. a legacy 1-5 '5') is never summed; the missing rule applies."""
    responses = pd.concat(
        [
            long_rows("half", "oxford_knee", "baseline", {**{f"i{i}": 4 for i in range(1, 13)}, "i1": 2.5}),
            long_rows("five", "oxford_knee", "baseline", {**{f"i{i}": 2 for i in range(1, 13)}, "i3": 5}),
            long_rows(
                "three_bad",
                "oxford_knee",
                "baseline",
                {**{f"i{i}": 2 for i in range(1, 13)}, "i1": 5, "i2": -1, "i3": 9},
            ),
        ]
    )
    wide = score_instrument(responses, OKS).set_index("cycle_id")["total"]
    assert wide["half"] == 48 and wide["five"] == 24 and np.isnan(wide["three_bad"])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 4)), min_size=12, max_size=12))
def test_oxford_total_within_range_and_missing_rule(items):
    answered = [v for v in items if v is not None]
    responses = long_rows("p", "oxford_hip", "baseline", {f"i{i + 1}": v for i, v in enumerate(items)})
    if not answered:
        return
    total = score_instrument(responses, OHS).loc[0, "total"]
    if len(answered) < 10:
        assert np.isnan(total)
    else:
        assert 0 <= total <= 48
        assert total == pytest.approx(sum(answered) * 12 / len(answered))


# --- PROMIS-10 ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gph_items", "gmh_items", "gph", "gmh"),
    [
        ((5, 5, 0, 5), (5, 5, 5, 5), 67.7, (67.6, 67.6)),
        ((3, 3, 5, 3), (3, 3, 3, 3), 39.8, (43.5, 43.5)),
        ((1, 1, 10, 1), (1, 1, 1, 1), 16.2, (21.1, 21.2)),  # GMH raw 4: 21.2 (awell, CHOIR) vs 21.1 (Hays note)
        ((2, 2, 4, 2), (3, 1, 1, 1), 32.4, (28.4, 28.4)),
    ],
    ids=["best", "median", "worst", "random"],
)
def test_promis10_worked_examples(gph_items, gmh_items, gph, gmh):
    g03, g06, g07, g08r = gph_items
    g02, g04, g05, g10r = gmh_items
    items = {
        "Global01": 3,
        "Global02": g02,
        "Global03": g03,
        "Global04": g04,
        "Global05": g05,
        "Global06": g06,
        "Global07": g07,
        "Global08r": g08r,
        "Global09r": 2,
        "Global10r": g10r,
    }
    wide = score_instrument(long_rows("p", "promis10", "baseline", items), PROMIS)
    assert wide.loc[0, "GPH"] == pytest.approx(gph, abs=1e-9)
    assert gmh[0] - 1e-9 <= wide.loc[0, "GMH"] <= gmh[1] + 1e-9


@pytest.mark.parametrize(("pain", "recoded"), [(0, 5), (1, 4), (3, 4), (4, 3), (6, 3), (7, 2), (9, 2), (10, 1)])
def test_promis10_global07_recode(pain, recoded):
    items = {"Global03": 3, "Global06": 3, "Global07": pain, "Global08r": 3}
    wide = score_instrument(long_rows("p", "promis10", "baseline", items), PROMIS)
    table = pd.read_csv(reference_dir() / "promis10_global_health_tscores.csv")
    expected = table.set_index("raw_score").loc[9 + recoded, "gph_tscore"]
    assert wide.loc[0, "GPH"] == pytest.approx(expected)
    assert np.isnan(wide.loc[0, "GMH"])  # GMH items not answered


def test_promis10_any_missing_item_makes_summary_missing():
    items = {"Global02": 3, "Global04": 3, "Global05": 3, "Global10r": 3, "Global03": 3, "Global06": 3}
    items["Global08r"] = 3  # Global07 (pain) missing -> GPH missing, GMH unaffected
    wide = score_instrument(long_rows("p", "promis10", "baseline", items), PROMIS)
    assert np.isnan(wide.loc[0, "GPH"])
    assert wide.loc[0, "GMH"] == pytest.approx(43.5)


# --- scoring mechanics --------------------------------------------------------------------------------


def test_completed_date_is_latest_item_date_and_duplicates_resolve_to_latest_answer():
    early, late = pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-05")
    responses = pd.concat(
        [
            long_rows("c1", "oxford_hip", "baseline", {f"i{i}": 4 for i in range(1, 13)}, date=early),
            long_rows("c1", "oxford_hip", "baseline", {"i1": 0}, date=late),  # corrected answer, later
        ]
    )
    wide = score_instrument(responses, OHS)
    assert len(wide) == 1
    assert wide.loc[0, "completed_date"] == late
    assert wide.loc[0, "total"] == 44
    assert wide["completed_date"].dtype == responses["completed_date"].dtype


def test_tz_aware_completed_date_is_preserved():
    responses = long_rows("c1", "eq5d5l", "baseline", eq5d_items("11111"), date=pd.Timestamp("2024-01-01 10:00"))
    responses["completed_date"] = responses["completed_date"].dt.tz_localize("Europe/Amsterdam")
    wide = score_instrument(responses, EQ5D)
    assert wide.loc[0, "completed_date"] == pd.Timestamp("2024-01-01 10:00", tz="Europe/Amsterdam")


def test_unknown_item_or_wrong_instrument_is_an_error():
    with pytest.raises(ValueError, match="Global08"):
        score_instrument(long_rows("c", "promis10", "baseline", {"Global08": 3}), PROMIS)
    with pytest.raises(ValueError, match="eq5d5l"):
        score_instrument(long_rows("c", "eq5d5l", "baseline", eq5d_items("11111")), OHS)


def test_score_responses_long_keeps_unscorable_questionnaires():
    responses = pd.concat(
        [
            long_rows("c1", "eq5d5l", "baseline", eq5d_items("23242", vas=60)),
            long_rows("c1", "oxford_hip", "baseline", {f"i{i}": 2 for i in range(1, 13)}),
            long_rows("c2", "oxford_hip", "12m", {"i1": 4}),  # responded, not scorable
        ]
    )
    scores = score_responses(responses)
    assert list(scores.columns) == ["cycle_id", "instrument", "timepoint", "scale", "score", "completed_date"]
    assert len(scores) == 2 + 1 + 1
    by_key = scores.set_index(["cycle_id", "instrument", "timepoint", "scale"])["score"]
    assert by_key[("c1", "eq5d5l", "baseline", "index")] == pytest.approx(0.388)
    assert by_key[("c1", "eq5d5l", "baseline", "vas")] == 60
    assert by_key[("c1", "oxford_hip", "baseline", "total")] == 24
    assert np.isnan(by_key[("c2", "oxford_hip", "12m", "total")])
    assert score_responses(responses.iloc[:0]).empty


RESPONSE_FRAGMENTS = st.lists(
    st.tuples(
        st.sampled_from(["c1", "c2", "c3"]),
        st.sampled_from(["baseline", "12m"]),
        st.sampled_from(["eq5d5l", "oxford_knee", "qlq_c30"]),
        st.integers(0, 10_000),
        st.integers(0, 20),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fragments=RESPONSE_FRAGMENTS, seed=st.integers(0, 2**32 - 1))
def test_permuting_input_rows_changes_nothing(fragments, seed):
    rng = np.random.default_rng(seed)
    frames = []
    for cycle, tp, inst_id, salt, day in fragments:
        inst = CATALOG.instruments[inst_id]
        local = np.random.default_rng(salt)
        items = {
            item.id: float(local.integers(item.min, item.max + 1)) if local.random() < 0.85 else np.nan
            for item in inst.items
        }
        frames.append(long_rows(cycle, inst_id, tp, items, date=DATE + pd.Timedelta(days=day)))
    responses = pd.concat(frames, ignore_index=True)
    if responses.empty:
        return
    expected = score_responses(responses)
    shuffled = responses.iloc[rng.permutation(len(responses))].reset_index(drop=True)
    pd.testing.assert_frame_equal(score_responses(shuffled), expected)
    # scoring one cycle at a time gives the same scores (no leakage between questionnaires)
    for cycle, part in responses.groupby("cycle_id"):
        alone = score_responses(part).reset_index(drop=True)
        together = expected[expected["cycle_id"] == cycle].reset_index(drop=True)
        pd.testing.assert_frame_equal(alone, together, check_categorical=False)


# --- change and MIC -----------------------------------------------------------------------------------


def scores_frame(rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["cycle_id", "instrument", "timepoint", "scale", "score"])
    frame["completed_date"] = DATE
    return frame


def test_prom_change_lower_is_better_scale_counts_a_decrease_as_improvement():
    assert not QLQ.scale("FA").higher_is_better and QLQ.scale("FA").mic == 10
    scores = scores_frame(
        [
            ("a", "qlq_c30", "baseline", "FA", 50.0),  # 50 -> 33.3: improved by 16.7
            ("a", "qlq_c30", "6m", "FA", 100 / 3),
            ("b", "qlq_c30", "baseline", "FA", 100 / 3),  # 33.3 -> 50: worse
            ("b", "qlq_c30", "6m", "FA", 50.0),
            ("c", "qlq_c30", "baseline", "FA", 40.0),  # exactly the MIC
            ("c", "qlq_c30", "6m", "FA", 30.0),
            ("d", "qlq_c30", "baseline", "FA", 40.0),  # no follow-up: excluded
            ("e", "qlq_c30", "baseline", "FA", np.nan),  # not scorable at baseline: excluded
            ("e", "qlq_c30", "6m", "FA", 10.0),
            ("a", "qlq_c30", "6m", "PF2", 0.0),  # other scale: ignored
        ]
    )
    out = prom_change(scores, QLQ, "FA", "6m").set_index("cycle_id")
    assert list(out.index) == ["a", "b", "c"]
    assert out.loc["a", "change"] == pytest.approx(-50 / 3)
    assert out.loc["b", "change"] == pytest.approx(50 / 3)
    assert out[["baseline_score", "followup_score"]].loc["c"].tolist() == [40.0, 30.0]
    assert out["reached_mic"].tolist() == [True, False, True]


def test_prom_change_higher_is_better_and_floating_point_mic_boundary():
    scores = scores_frame(
        [
            ("x", "oxford_hip", "baseline", "total", 20.0),
            ("x", "oxford_hip", "12m", "total", 28.0),  # +8 = MIC
            ("y", "oxford_hip", "baseline", "total", 20.0),
            ("y", "oxford_hip", "12m", "total", 27.0),
            ("z", "oxford_hip", "baseline", "total", 30.0),
            ("z", "oxford_hip", "12m", "total", 10.0),
        ]
    )
    out = prom_change(scores, OHS, "total", "12m")
    assert out["reached_mic"].tolist() == [True, False, False]
    # EQ-5D 11123 (0.742) -> 11231 (0.822): 0.08 exactly, which floats compute as 0.07999999999999996
    base, follow = eq5d5l_index(["11123", "11231"])
    eq = scores_frame([("q", "eq5d5l", "baseline", "index", base), ("q", "eq5d5l", "12m", "index", follow)])
    assert prom_change(eq, EQ5D, "index", "12m")["reached_mic"].tolist() == [True]


def test_prom_change_from_scored_responses():
    responses = pd.concat(
        [
            long_rows("c1", "eq5d5l", "baseline", eq5d_items("33333", vas=40)),
            long_rows("c1", "eq5d5l", "12m", eq5d_items("11111", vas=90)),
        ]
    )
    out = prom_change(score_responses(responses), EQ5D, "vas", "12m")
    assert out.loc[0, "change"] == 50 and bool(out.loc[0, "reached_mic"])


# --- response rate ------------------------------------------------------------------------------------


def test_response_rate_eligibility_and_wilson_ci():
    as_of = pd.Timestamp("2025-01-01")
    cycles = pd.DataFrame(
        {
            "cycle_id": ["a1", "a2", "a3", "a4", "b1", "b2", "c1"],
            "hospital": ["A", "A", "A", "A", "B", "B", "C"],
            "index_date": pd.to_datetime(
                [
                    "2023-06-01",  # eligible, responded
                    "2024-01-02",  # 365 days later = as_of: eligible, responded
                    "2024-01-03",  # timepoint not yet passed: not eligible (its response is ignored)
                    "2023-01-01",  # eligible, no response
                    "2023-01-01",  # eligible, response only after as_of -> not responded
                    "2023-01-01",  # eligible, responded to another instrument/timepoint only
                    "2024-06-01",  # unit with no eligible cycle
                ]
            ),
        }
    )
    responses = pd.concat(
        [
            long_rows("a1", "oxford_hip", "12m", {"i1": 3, "i2": 3}),
            long_rows("a2", "oxford_hip", "12m", {"i1": 3}),
            long_rows("a3", "oxford_hip", "12m", {"i1": 3}),
            long_rows("b1", "oxford_hip", "12m", {"i1": 3}, date=pd.Timestamp("2025-02-01")),
            long_rows("b2", "oxford_hip", "baseline", {"i1": 3}),
            long_rows("b2", "eq5d5l", "12m", {"VAS": 50}),
        ]
    )
    out = response_rate(cycles, responses, "oxford_hip", "12m", 365, as_of, by="hospital").set_index("hospital")
    assert out["eligible"].to_dict() == {"A": 3, "B": 2, "C": 0}
    assert out["responded"].to_dict() == {"A": 2, "B": 0, "C": 0}
    assert out.loc["A", "response_rate"] == pytest.approx(2 / 3)
    low, high = proportion_confint(2, 3, alpha=0.05, method="wilson")
    assert (out.loc["A", "ci_low"], out.loc["A", "ci_high"]) == pytest.approx((low, high))
    assert out.loc["B", "response_rate"] == 0 and out.loc["B", "ci_high"] > 0
    assert np.isnan(out.loc["C", "response_rate"]) and np.isnan(out.loc["C", "ci_low"])

    # the same answer from long scores, and grouping by several columns
    scores = score_responses(responses)
    cycles["department"] = "ortho"
    out2 = response_rate(cycles, scores, "oxford_hip", "12m", 365, as_of, by=["hospital", "department"])
    assert out2["responded"].tolist() == [2, 0, 0]
    assert out2["eligible"].tolist() == [3, 2, 0]


def test_response_flags_take_a_categorical_ids_distinct_values_from_its_used_categories():
    """The answered cycles of categorical ids (the PROM scores') are found from the categories their rows use, not
    from the text of every row: the same flags as from the same ids as text, an unused category answering nothing
    and a missing id matching no cycle."""
    from vbhc.proms import _distinct_ids, response_flags

    as_of = pd.Timestamp("2025-01-01")
    cycles = pd.DataFrame(
        {"cycle_id": ["a", "b", "c", "d"], "index_date": pd.to_datetime(["2023-01-01"] * 3 + ["2024-12-01"])}
    )
    ids = ["b", "a", None, "b", "d", "z"]
    scores = pd.DataFrame(
        {
            "cycle_id": pd.Categorical(ids, categories=["a", "b", "c", "d", "unused", "z"]),
            "instrument": ["eq5d5l"] * 5 + ["other"],
            "timepoint": "12m",
            "scale": "index",
            "score": 0.5,
            "completed_date": pd.Timestamp("2024-06-01"),
        }
    )
    eligible, responded = response_flags(cycles, scores, "eq5d5l", "12m", 365, as_of)
    text = response_flags(cycles, scores.assign(cycle_id=pd.Series(ids, dtype=object)), "eq5d5l", "12m", 365, as_of)
    assert eligible.tolist() == text[0].tolist() == [True, True, True, False]
    assert responded.tolist() == text[1].tolist() == [True, True, False, False]
    hit = scores["instrument"] == "eq5d5l"
    assert _distinct_ids(scores.loc[hit, "cycle_id"]).to_pylist() == ["a", "b", "d", None]
    assert _distinct_ids(pd.Series(["b", "a", "b"], dtype=str)).to_pylist() == ["b", "a"]
