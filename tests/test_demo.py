"""The synthetic registry generator: determinism, validity against the catalog, realism and the planted truth."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from openpyxl import load_workbook

from vbhc.catalog import BASELINE_WINDOW_DAYS, STORED_CASEMIX, SURVIVAL_KINDS, default_catalog
from vbhc.demo import (
    AS_OF,
    DEFAULT_CYCLES,
    DEFAULT_SEED,
    FIRST_INDEX,
    FOLLOW_UP_FILE,
    LAST_INDEX,
    TABLES,
    generate_demo,
)
from vbhc.store import row_counts

N = 3000
AS_OF_TS = pd.Timestamp(AS_OF)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("demo")
    calls: list[tuple[str, int, int]] = []
    result = generate_demo(out, cycles=N, progress=lambda *a: calls.append(a))
    read = {"dtype": str, "keep_default_na": False}
    return {
        "result": result,
        "dir": out,
        "calls": calls,
        "cycles": pd.read_csv(out / "care_cycles.csv", **read),
        "outcomes": pd.read_csv(out / "clinical_outcomes.csv", **read),
        "proms": pd.read_csv(out / "prom_responses.csv", **read),
        "costs": pd.read_csv(out / "costs.csv", **read),
        "units": pd.read_excel(out / "units.xlsx", sheet_name="units", dtype=str),
        "truth": json.loads(result.truth_path.read_text(encoding="utf-8")),
    }


def _bytes(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# --- files, determinism, chunking ------------------------------------------------------------------------


def test_files_in_import_order_and_counts(demo):
    r = demo["result"]
    assert [p.name for p in r.files] == [
        "units.xlsx",
        "care_cycles.csv",
        "clinical_outcomes.csv",
        "prom_responses.csv",
        "costs.csv",
    ]
    assert r.truth_path.name == "truth.json" and r.truth_path.parent == demo["dir"]
    assert set(r.counts) == set(TABLES)
    assert r.counts["care_cycles"] == N == len(demo["cycles"])
    for table, key in (("clinical_outcomes", "outcomes"), ("prom_responses", "proms"), ("costs", "costs")):
        assert r.counts[table] == len(demo[key])
    assert r.counts["units"] == len(demo["units"])


def test_the_demo_at_national_size_writes_files_its_own_command_line_import_accepts(demo):
    """benchmarks/indicators_speed.py --cycles 10000000 (issue 13's national registry) writes the demo's files and
    imports them with `vbhc import`: every file must be within the command-line import's limits at that size, rows
    and bytes (the row limit refused the 305,000,000-row PROM file after 40 minutes of reading)."""
    from vbhc.settings import max_import_mb, max_rows

    national = 10_000_000
    for name in ("care_cycles.csv", "clinical_outcomes.csv", "prom_responses.csv", "costs.csv"):
        path = demo["dir"] / name
        rows = path.read_bytes().count(b"\n") - 1
        # a tenth more than this sample's rate per cycle, for the draws of a larger registry
        assert rows / N * national * 1.1 <= max_rows(), name
        assert path.stat().st_size / N * national * 1.1 <= max_import_mb() * 1024 * 1024, name


def test_progress_reports_cycles_up_to_the_total(demo):
    cycles = [(done, total) for stage, done, total in demo["calls"] if stage == "cycles"]
    assert cycles[0] == (0, N) and cycles[-1] == (N, N)
    assert [d for d, _ in cycles] == sorted(d for d, _ in cycles)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(demo, tmp_path):
    generate_demo(tmp_path / "again", cycles=N)
    assert _bytes(tmp_path / "again") == _bytes(demo["dir"])
    generate_demo(tmp_path / "other", cycles=N, seed=7)
    other = _bytes(tmp_path / "other")
    assert other["care_cycles.csv"] != _bytes(demo["dir"])["care_cycles.csv"]
    assert other["units.xlsx"] == _bytes(demo["dir"])["units.xlsx"]  # units do not depend on the seed


def test_chunk_size_does_not_change_the_output(tmp_path):
    generate_demo(tmp_path / "a", cycles=2500, block_size=1000, chunk_size=1000)
    generate_demo(tmp_path / "b", cycles=2500, block_size=1000, chunk_size=100_000)
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")


def test_the_vital_status_is_written_in_bounded_chunks_with_the_same_bytes(demo, tmp_path, monkeypatch):
    """vbhc demo --cycles 10000000 held every followed cycle's row (4.5M rows of text) to write the vital status
    file: it is now read and written a bounded chunk at a time, and the chunks give the bytes of one chunk."""
    import shutil

    import vbhc.demo as demo_module

    for name in ("care_cycles.csv", "clinical_outcomes.csv", "prom_responses.csv"):
        shutil.copy(demo["dir"] / name, tmp_path / name)
    whole = demo["result"].follow_up.read_bytes()
    written: list[int] = []
    to_csv = demo_module._to_csv

    def counted(frame, fh, header, float_format=None):
        written.append(len(frame))
        to_csv(frame, fh, header, float_format)

    monkeypatch.setattr(demo_module, "_to_csv", counted)
    monkeypatch.setattr(demo_module, "_READ_ROWS", 400)
    monkeypatch.setattr(demo_module, "_READ_BYTES", 4096)
    path = demo_module.write_follow_up(tmp_path, DEFAULT_SEED)
    assert path.read_bytes() == whole
    assert len(written) > 1 and max(written) <= 400 and sum(written) == whole.count(b"\n") - 1


def test_the_vital_status_draws_in_pieces_are_one_draw_of_the_whole(monkeypatch):
    """Its random numbers are exponential(n), random(n), random(n) of one stream, however they are taken."""
    import vbhc.demo as demo_module
    from vbhc.demo import _FOLLOW_UP_STREAM, _FollowUpDraws

    monkeypatch.setattr(demo_module, "_READ_ROWS", 97)  # the draws before a copy's own are skipped in pieces
    n = 1000
    rng = np.random.default_rng(np.random.SeedSequence(DEFAULT_SEED, spawn_key=(_FOLLOW_UP_STREAM,)))
    expected = rng.exponential(size=n), rng.random(n), rng.random(n)
    draws = _FollowUpDraws(DEFAULT_SEED, n)
    pieces = [draws.take(k) for k in (1, 299, 400, 300)]
    for j in range(3):
        assert np.array_equal(np.concatenate([p[j] for p in pieces]), expected[j])


def test_rejects_nonsense_sizes(tmp_path):
    with pytest.raises(ValueError):
        generate_demo(tmp_path, cycles=0)


# --- validity against the catalog ------------------------------------------------------------------------


def test_units_sheet(demo):
    wb = load_workbook(demo["dir"] / "units.xlsx", read_only=True)
    assert wb.sheetnames == ["units"]
    units = demo["units"]
    assert list(units.columns) == [
        "hospital",
        "department",
        "hospital_name",
        "department_name",
        "division",
        "own_hospital",
    ]
    assert not units.duplicated(["hospital", "department"]).any()
    hospitals = units.drop_duplicates("hospital")
    assert len(hospitals) >= 8
    assert hospitals["hospital"].str.fullmatch(r"H\d\d").all()
    assert hospitals["hospital_name"].is_unique
    assert (hospitals["own_hospital"] == "1").sum() == 1
    assert set(units["own_hospital"]) == {"0", "1"}
    assert units.notna().all().all()


def test_care_cycles_match_catalog_and_units(demo):
    cat = default_catalog()
    cy = demo["cycles"]
    used = [v for v in STORED_CASEMIX if any(v in c.casemix_names for c in cat.conditions.values())]
    assert list(cy.columns) == [
        "cycle_id",
        "patient_id",
        "condition",
        "hospital",
        "department",
        "index_date",
        "treatment",
        *used,
    ]
    assert cy["cycle_id"].is_unique and cy["cycle_id"].str.fullmatch(r"C\d{7}").all()
    assert cy["patient_id"].str.fullmatch(r"P[0-9a-f]{12}").all()
    assert cy["patient_id"].duplicated().any(), "a few patients have two care cycles"
    assert cy["patient_id"].value_counts().max() == 2
    assert set(cy["condition"]) == set(cat.conditions)
    units = set(zip(demo["units"]["hospital"], demo["units"]["department"], strict=True))
    assert set(zip(cy["hospital"], cy["department"], strict=True)) <= units
    assert cy.groupby(["condition", "hospital"])["department"].nunique().max() == 1
    dates = pd.to_datetime(cy["index_date"], format="%Y-%m-%d")
    assert dates.min() >= pd.Timestamp(FIRST_INDEX) and dates.max() <= pd.Timestamp(LAST_INDEX)
    assert dates.is_monotonic_increasing  # cycle ids are chronological
    for cond in cat.conditions.values():
        part = cy[cy["condition"] == cond.id]
        assert set(part["treatment"]) <= set(cond.treatments)
        for name in used:
            values = part[name]
            var = next((v for v in cond.casemix if v.name == name), None)
            if var is None:
                assert (values == "").all(), (cond.id, name)
                continue
            present = values[values != ""]
            if var.type == "category":
                assert set(present) <= set(var.codes), (cond.id, name)
            else:
                if var.type == "integer":
                    assert present.str.fullmatch(r"-?\d+").all(), (cond.id, name)  # no "65.0"
                x = present.astype(float)
                assert x.min() >= var.min and x.max() <= var.max, (cond.id, name)


def test_some_casemix_values_are_missing_but_never_age(demo):
    cy = demo["cycles"]
    assert (cy["age"] != "").all()
    cat = default_catalog()
    rates = []
    for cond in cat.conditions.values():
        part = cy[cy["condition"] == cond.id]
        for name in cond.casemix_names:
            if name != "age":
                rates.append((part[name] == "").mean())
    assert 0.003 < np.mean(rates) < 0.03


def test_clinical_outcomes_are_complete_valid_and_only_after_their_window(demo):
    cat = default_catalog()
    oc = demo["outcomes"].merge(demo["cycles"][["cycle_id", "condition", "index_date", "treatment"]], on="cycle_id")
    assert not oc.duplicated(["cycle_id", "outcome"]).any()
    assert (pd.to_datetime(oc["date"]) <= AS_OF_TS).all()
    assert (pd.to_datetime(oc["date"]) >= pd.to_datetime(oc["index_date"])).all()
    follow_up = pd.read_csv(demo["result"].follow_up, dtype=str, keep_default_na=False)
    for cond in cat.conditions.values():
        part = oc[oc["condition"] == cond.id]
        # the vital status of survival indicators is its own file (tests/test_survival.py)
        vital = {i.outcome for i in cond.indicators if i.kind in SURVIVAL_KINDS}
        assert set(part["outcome"]) <= {o.id for o in cond.outcomes} - vital
        assert vital <= set(follow_up["outcome"])
        for o in cond.outcomes:
            if o.id in vital:
                continue
            values = part.loc[part["outcome"] == o.id, "value"]
            assert len(values) > 0, (cond.id, o.id)
            if o.type == "binary":
                assert set(values) <= {"0", "1"}
                assert 0 < (values == "1").mean() < 1, (cond.id, o.id)
            else:
                assert values.str.fullmatch(r"\d+").all()
                x = values.astype(int)
                assert x.min() >= o.min and x.max() <= o.max
    # 30-day outcomes exist for every cycle; 1-year outcomes only where the year has passed
    hip = oc[oc["condition"] == "hip_osteoarthritis"]
    n_hip = (demo["cycles"]["condition"] == "hip_osteoarthritis").sum()
    assert (hip["outcome"] == "readmission_30d").sum() == n_hip
    rev = hip[hip["outcome"] == "revision_1y"]
    assert (pd.to_datetime(rev["index_date"]) + pd.Timedelta(days=365) <= AS_OF_TS).all()
    late = demo["cycles"][
        (demo["cycles"]["condition"] == "hip_osteoarthritis")
        & (pd.to_datetime(demo["cycles"]["index_date"]) + pd.Timedelta(days=365) > AS_OF_TS)
    ]
    assert len(late) > 0 and not rev["cycle_id"].isin(late["cycle_id"]).any()


def test_prom_items_are_integers_within_the_item_range(demo):
    cat = default_catalog()
    pr = demo["proms"].merge(demo["cycles"][["cycle_id", "condition", "index_date"]], on="cycle_id")
    assert not pr.duplicated(["cycle_id", "instrument", "timepoint", "item"]).any()
    assert pr["value"].str.fullmatch(r"\d+").all()
    for cond in cat.conditions.values():
        part = pr[pr["condition"] == cond.id]
        uses = {u.instrument: u.timepoints for u in cond.proms}
        assert set(part["instrument"]) == set(uses)
        for inst_id, tps in uses.items():
            sub = part[part["instrument"] == inst_id]
            assert set(sub["timepoint"]) == set(tps)
            inst = cat.instruments[inst_id]
            lo = sub["item"].map({i.id: i.min for i in inst.items})
            hi = sub["item"].map({i.id: i.max for i in inst.items})
            assert lo.notna().all(), (cond.id, inst_id)
            v = sub["value"].astype(int)
            assert ((v >= lo) & (v <= hi)).all(), (cond.id, inst_id)
    done = pd.to_datetime(pr["completed_date"])
    index = pd.to_datetime(pr["index_date"])
    assert (done <= AS_OF_TS).all()
    base = pr["timepoint"] == "baseline"
    lag = (index[base] - done[base]).dt.days
    assert lag.between(0, 30).all()
    tp_days = pr["timepoint"].map({"6m": 182, "12m": 365})
    off = (done[~base] - index[~base]).dt.days - tp_days[~base]
    assert off.between(-30, 30).all()


def test_some_responders_skip_single_items(demo):
    pr = demo["proms"]
    n_items = pr.groupby(["cycle_id", "instrument", "timepoint"]).size()
    full = {i.id: len(i.items) for i in default_catalog().instruments.values()}
    expected = n_items.index.get_level_values("instrument").map(full)
    short = (n_items.to_numpy() < expected.to_numpy()).mean()
    assert 0.005 < short < 0.08
    assert (n_items.to_numpy() >= expected.to_numpy() - 1).all()


def test_follow_up_nonresponse_is_realistic(demo):
    cat = default_catalog()
    cy = demo["cycles"]
    pr = demo["proms"]
    answered = set(zip(pr["cycle_id"], pr["timepoint"], strict=True))
    rates = {}
    for cond in cat.conditions.values():
        part = cy[cy["condition"] == cond.id]
        for tp in cond.timepoints:
            eligible = part[pd.to_datetime(part["index_date"]) + pd.Timedelta(days=tp.days) <= AS_OF_TS]
            got = [(c, tp.id) in answered for c in eligible["cycle_id"]]
            rates.setdefault("baseline" if tp.days == 0 else "followup", []).extend(got)
    nonresponse_fu = 1 - np.mean(rates["followup"])
    nonresponse_base = 1 - np.mean(rates["baseline"])
    assert 0.30 <= nonresponse_fu <= 0.60
    assert nonresponse_base < nonresponse_fu


def test_costs_follow_the_catalog_activities_and_rates(demo):
    cat = default_catalog()
    co = demo["costs"].merge(demo["cycles"][["cycle_id", "condition", "hospital"]], on="cycle_id")
    assert not co.duplicated(["cycle_id", "activity"]).any()
    assert co["quantity"].str.fullmatch(r"[1-9]\d*").all()
    assert co["unit_cost"].str.fullmatch(r"\d+\.\d\d").all()
    for cond in cat.conditions.values():
        assert set(co.loc[co["condition"] == cond.id, "activity"]) <= set(cond.cost_activities)
    typical = co["activity"].map({k: a.typical_unit_cost_eur for k, a in cat.cost_activities.items()})
    ratio = co["unit_cost"].astype(float) / typical
    assert ratio.between(0.8, 1.2).all()
    assert ratio.std() > 0.03  # rates differ by hospital
    # one rate per hospital, condition and activity
    assert co.groupby(["hospital", "condition", "activity"])["unit_cost"].nunique().max() == 1
    # ward days follow the length of stay
    los = demo["outcomes"].query("outcome == 'length_of_stay'").set_index("cycle_id")["value"].astype(int)
    ward = co.query("activity == 'ward_day'").set_index("cycle_id")["quantity"].astype(int)
    joined = pd.concat([los, ward], axis=1, join="inner")
    assert (joined.iloc[:, 1] <= joined.iloc[:, 0]).all()
    assert np.corrcoef(joined.iloc[:, 0], joined.iloc[:, 1])[0, 1] > 0.8


# --- realism: case-mix drives outcomes, PROMs are coherent ------------------------------------------------


def test_mortality_rises_with_age_and_asa(demo):
    oc = demo["outcomes"]
    cy = demo["cycles"]
    mort = oc[oc["outcome"].str.startswith("mortality")].merge(cy, on="cycle_id")
    mort = mort.assign(died=mort["value"].astype(int), age=mort["age"].astype(float))
    fit = smf.logit("died ~ age + C(condition)", data=mort).fit(disp=0)
    assert fit.params["age"] > 0.02 and fit.pvalues["age"] < 1e-4
    comp = oc[oc["outcome"].isin(["severe_complication", "complication_90d"])].merge(cy, on="cycle_id")
    comp = comp[comp["asa"] != ""]
    comp = comp.assign(y=comp["value"].astype(int), asa=comp["asa"].astype(float), age=comp["age"].astype(float))
    fit = smf.logit("y ~ asa + age + C(condition)", data=comp).fit(disp=0)
    assert fit.params["asa"] > 0


def test_casemix_only_unit_treats_older_patients(demo):
    truth = demo["truth"]
    cmo = {(e["condition"], e["hospital"]) for e in truth["casemix_only"]}
    assert len(cmo) == 1
    cond, hosp = cmo.pop()
    part = demo["cycles"][demo["cycles"]["condition"] == cond]
    age = part["age"].astype(float)
    assert age[part["hospital"] == hosp].mean() > age[part["hospital"] != hosp].mean() + 4


def _oxford_totals(demo, condition: str, instrument: str) -> pd.DataFrame:
    pr = demo["proms"]
    pr = pr[pr["instrument"] == instrument].merge(demo["cycles"][["cycle_id", "condition"]], on="cycle_id")
    pr = pr[pr["condition"] == condition]
    wide = pr.assign(v=pr["value"].astype(int)).pivot_table(
        index="cycle_id", columns="timepoint", values="v", aggfunc="sum"
    )
    counts = pr.pivot_table(index="cycle_id", columns="timepoint", values="value", aggfunc="count")
    return wide[(counts == 12).all(axis=1)]


def test_arthroplasty_improves_the_oxford_score(demo):
    for cond, inst in (("hip_osteoarthritis", "oxford_hip"), ("knee_osteoarthritis", "oxford_knee")):
        tot = _oxford_totals(demo, cond, inst)
        assert 15 <= tot["baseline"].mean() <= 27
        change = (tot["12m"] - tot["baseline"]).mean()
        assert 12 <= change <= 22, (cond, change)


def test_cancer_quality_of_life_changes_modestly_and_is_coherent(demo):
    pr = demo["proms"].merge(demo["cycles"][["cycle_id", "condition", "age"]], on="cycle_id")
    qlq = pr[(pr["instrument"] == "qlq_c30") & pr["item"].isin(["q29", "q30"])]
    ql = qlq.assign(v=qlq["value"].astype(int)).groupby(["cycle_id", "timepoint"])["v"].mean()
    ql2 = (ql - 1) / 6 * 100
    by_tp = ql2.groupby(level="timepoint").mean()
    assert 50 <= by_tp["baseline"] <= 85
    assert abs(by_tp["12m"] - by_tp["baseline"]) < 10
    # physical functioning (q1-q5, higher = worse) correlates with global QoL (q29-q30, higher = better)
    pf = pr[(pr["instrument"] == "qlq_c30") & pr["item"].isin(["q1", "q2", "q3", "q4", "q5"])]
    pf = pf.assign(v=pf["value"].astype(int)).groupby(["cycle_id", "timepoint"])["v"].mean()
    both = pd.concat([ql2, pf], axis=1, join="inner")
    assert np.corrcoef(both.iloc[:, 0], both.iloc[:, 1])[0, 1] < -0.3


# --- the planted truth -------------------------------------------------------------------------------------


def test_truth_names_catalog_indicators_and_existing_units(demo):
    cat = default_catalog()
    truth = demo["truth"]
    units = set(zip(demo["units"]["hospital"], demo["units"]["department"], strict=True))
    treated = set(
        zip(demo["cycles"]["condition"], demo["cycles"]["hospital"], demo["cycles"]["department"], strict=True)
    )
    assert truth["seed"] == 20261124 and truth["cycles"] == N and truth["as_of"] == AS_OF.isoformat()
    own = demo["units"].loc[demo["units"]["own_hospital"] == "1", "hospital"].iloc[0]
    assert truth["own_hospital"] == own
    assert {h["hospital"] for h in truth["hospitals"]} == set(demo["units"]["hospital"])
    for entry in truth["outliers"] + truth["no_effect"]:
        cond = cat.condition(entry["condition"])
        ind = cond.indicator(entry["indicator"])
        assert entry["kind"] == ind.kind
        assert (entry["hospital"], entry["department"]) in units
        assert (entry["condition"], entry["hospital"], entry["department"]) in treated
    kinds = [cat.condition(o["condition"]).indicator(o["indicator"]).kind for o in truth["outliers"]]
    assert 6 <= kinds.count("proportion") <= 10
    assert sum(k in ("mean", "prom_score", "prom_change") for k in kinds) >= 2
    assert kinds.count("cost") == 1
    assert {o["direction"] for o in truth["outliers"]} == {"worse", "better"}
    assert any(o["hospital"] == own for o in truth["outliers"])
    for o in truth["outliers"]:
        assert o["note"]
        if o["effect_type"] == "odds_ratio":
            lower_is_better = cat.condition(o["condition"]).indicator(o["indicator"]).direction == "lower"
            assert (o["effect"] > 1) == (o["direction"] == ("worse" if lower_is_better else "better"))


def test_no_effect_lists_every_other_unit_and_indicator(demo):
    cat = default_catalog()
    truth = demo["truth"]
    key = lambda e: (e["condition"], e["indicator"], e["hospital"])  # noqa: E731
    outliers = {key(e) for e in truth["outliers"]}
    no_effect = {key(e) for e in truth["no_effect"]}
    assert not outliers & no_effect
    treated = set(zip(demo["cycles"]["condition"], demo["cycles"]["hospital"], strict=True))
    # survival indicators: their planted truth is demo.PLANTED_SURVIVAL (vital status file, tests/test_survival.py)
    expected = {
        (c, ind.id, h)
        for c, h in treated
        for ind in cat.condition(c).indicators
        if ind.kind != "volume" and ind.kind not in SURVIVAL_KINDS
    }
    assert outliers | no_effect == expected
    cmo = {key(e) for e in truth["casemix_only"]}
    assert cmo and cmo <= no_effect
    assert len({(c, h) for c, _, h in cmo}) == 1
    assert all(e["crude_z"] is not None for e in truth["casemix_only"])
    false_signals = {key(e) for e in truth["expected_false_signals"]}
    assert false_signals <= no_effect


@pytest.mark.slow
def test_default_size_plants_strong_signals(demo_registry):
    """At the default 50,000 cycles every planted effect is large against its unit's standard error,
    the case-mix-only unit's crude mortality is clearly higher, and a perfect model would not flag it.

    The default demo is the suite's shared demo_registry (generated once per run with the default size and seed,
    imported all-or-nothing, so its stored rows are the generated ones)."""
    assert (DEFAULT_CYCLES, DEFAULT_SEED) == (50_000, 20261124)
    engine, truth = demo_registry
    for o in truth["outliers"]:
        if o["kind"] != "prom_mic":
            assert abs(o["expected_z"]) > 5, o
            assert o["detectable"], o
    mortality = [e for e in truth["casemix_only"] if e["indicator"].startswith("mortality")]
    assert mortality and all(e["crude_signal_expected"] for e in mortality)
    assert all(e["crude_z"] > 3 and abs(e["benchmark_z"]) < 2.5 for e in mortality)
    assert row_counts(engine)["care_cycles"] == 50_000
    assert row_counts(engine)["prom_responses"] > 1_000_000


def test_as_of_is_a_fixed_date():
    assert date(2026, 6, 30) == AS_OF


def _impossible_timelines(out: Path) -> dict[str, int]:
    """Rows of a generated demo whose dates cannot be: after the care cycle's death (the vital status, or a
    mortality outcome with value 1 dated on the death), before its index date (a baseline questionnaire may
    precede it, within its window), or after the demo's "today"."""
    cycles = pd.read_csv(out / "care_cycles.csv", dtype=str).set_index("cycle_id")
    start = pd.to_datetime(cycles["index_date"])
    outcomes = pd.concat(
        [pd.read_csv(out / name, dtype={"cycle_id": str}) for name in ("clinical_outcomes.csv", FOLLOW_UP_FILE)]
    )
    outcomes["date"] = pd.to_datetime(outcomes["date"])
    proms = pd.read_csv(out / "prom_responses.csv", dtype={"cycle_id": str}, parse_dates=["completed_date"])
    dead = outcomes[(outcomes["value"] == 1) & outcomes["outcome"].str.match(r"mortality|death$")]
    death = dead.groupby("cycle_id")["date"].min()
    baseline = proms["timepoint"] == "baseline"
    window = pd.Timedelta(days=BASELINE_WINDOW_DAYS)
    end = pd.Timestamp(AS_OF)
    o_start, p_start = outcomes["cycle_id"].map(start), proms["cycle_id"].map(start)
    return {
        "outcome after death": int((outcomes["date"] > outcomes["cycle_id"].map(death)).sum()),
        "prom after death": int((proms["completed_date"] > proms["cycle_id"].map(death)).sum()),
        "outcome before start": int((outcomes["date"] < o_start).sum()),
        "follow-up prom before start": int(((proms["completed_date"] < p_start) & ~baseline).sum()),
        "baseline before its window": int(((proms["completed_date"] < p_start - window) & baseline).sum()),
        "outcome after today": int((outcomes["date"] > end).sum()),
        "prom after today": int((proms["completed_date"] > end).sum()),
        "cycle after today": int((start > end).sum()),
    }


@pytest.mark.parametrize(("cycles", "seed"), [(500, DEFAULT_SEED), (500, 1), (1500, 7), (3000, 11)])
def test_the_demo_writes_no_impossible_timeline(tmp_path, cycles, seed):
    """No questionnaire, outcome or vital status of a dead patient's care cycle after the death (a care team
    reading its demo saw a dead patient's quality of life a year later: 71 of 718 dead cycles at 4,000 cycles), and
    nothing before the cycle began or after the demo's today; several seeds and sizes, the same files per seed."""
    out = tmp_path / "demo"
    generate_demo(out, cycles=cycles, seed=seed)
    assert _impossible_timelines(out) == dict.fromkeys(_impossible_timelines(out), 0)
