"""The demo's improvement history (vbhc.demo_history), written through vbhc.improvement from a hand-made truth:
targets for the key indicators, planted signals explained and decided, other signals left new, an action under
way on each of the own hospital's worse outliers and an earlier one on the first, and nothing written twice."""

from __future__ import annotations

import datetime as dt

from tests.registry_files import store_units
from vbhc import annotations, demo_history, improvement
from vbhc.improvement import ActionStatus, Decision, Explanation, Flag, Rule, SignalStatus, TargetKind

VIEWER = demo_history.DEMO_VIEWER
TRUTH = {
    "own_hospital": "H01",
    "index_period": ["2021-01-01", "2025-12-31"],
    "outliers": [
        {"condition": "colorectal_cancer", "indicator": "anastomotic_leak", "hospital": "H01", "direction": "worse",
         "note": "own hospital: more anastomotic leaks"},
        {"condition": "breast_cancer", "indicator": "surgical_site_infection", "hospital": "H02",
         "direction": "better", "note": "fewer surgical site infections"},
        {"condition": "hip_osteoarthritis", "indicator": "readmission_30d", "hospital": "H01", "direction": "worse",
         "note": "own hospital: more readmissions"},
    ],
    "casemix_only": [{"condition": "colorectal_cancer", "hospital": "H06", "indicator": "mortality_30d"}],
}  # fmt: skip
BENCHMARKS = {
    ("colorectal_cancer", "anastomotic_leak"): 0.0812,
    ("colorectal_cancer", "mortality_30d"): 0.0231,
    ("hip_osteoarthritis", "readmission_30d"): 0.0523,
}


def detect(engine, condition: str, *flags: tuple[str, str, str]) -> None:
    found = [Flag(unit, indicator, Rule.FUNNEL_998, side, 0.2) for unit, indicator, side in flags]
    improvement.record_detection(engine, "import", condition, "hospital", "1-1", found)


def test_the_demo_history_is_a_cycle_in_progress_written_once(sqlite_engine):
    engine = store_units(sqlite_engine, ("H04", "H06"))  # the demo writes its history after importing its units
    detect(
        engine,
        "colorectal_cancer",
        ("H01", "anastomotic_leak", "worse"),  # planted
        ("H06", "mortality_30d", "worse"),  # case mix only
        ("H04", "readmission_30d", "worse"),  # chance: for the meeting to explain
    )
    detect(engine, "breast_cancer", ("H02", "surgical_site_infection", "better"))
    detect(engine, "hip_osteoarthritis", ("H01", "readmission_30d", "worse"))

    history = demo_history.write_history(engine, TRUTH, BENCHMARKS)

    targets = improvement.targets(engine, VIEWER, "colorectal_cancer")
    assert sorted((t.indicator, t.kind, t.unit, t.value) for t in targets) == [
        ("anastomotic_leak", TargetKind.EXTERNAL_NORM, "", 0.1),  # 1.25 x the benchmark, to half a percent
        ("anastomotic_leak", TargetKind.TEAM_GOAL, "H01", 0.08),
        ("mortality_30d", TargetKind.TEAM_GOAL, "H01", 0.025),
    ]
    assert all(t.valid_from == dt.date(2021, 1, 1) for t in targets)
    assert next(t for t in targets if t.kind == TargetKind.EXTERNAL_NORM).source == demo_history.NORM_SOURCE

    hip_targets = improvement.targets(engine, VIEWER, "hip_osteoarthritis")
    assert sorted((t.indicator, t.kind, t.unit, t.value) for t in hip_targets) == [
        ("readmission_30d", TargetKind.EXTERNAL_NORM, "", 0.065),  # 1.25 x 5.23% = 6.54%, to half a percent
        ("readmission_30d", TargetKind.TEAM_GOAL, "H01", 0.05),  # no 30-day mortality indicator for hip
    ]

    [hip] = improvement.signals(engine, VIEWER, "hip_osteoarthritis")
    assert (hip.explanation, hip.decision) == (Explanation.REAL, Decision.ACTION)
    by_unit = {s.unit: s for s in improvement.signals(engine, VIEWER, "colorectal_cancer")}
    leak, case_mix, chance = by_unit["H01"], by_unit["H06"], by_unit["H04"]
    assert (leak.status, leak.explanation, leak.decision) == (SignalStatus.DECIDED, Explanation.REAL, Decision.ACTION)
    assert "more anastomotic leaks" in leak.explanation_text
    assert (case_mix.explanation, case_mix.decision) == (Explanation.CASE_MIX, Decision.NO_ACTION)
    assert chance.status == SignalStatus.NEW
    better = next(s for s in improvement.signals(engine, VIEWER, "breast_cancer"))
    assert (better.explanation, better.decision) == (Explanation.REAL, Decision.NO_ACTION)
    assert sorted(history.explained) == sorted(s.item_id for s in (leak, case_mix, better, hip))

    acts = annotations.chart_actions(engine, VIEWER, "colorectal_cancer", "anastomotic_leak", "H01")
    assert [(a.status, a.title) for a in acts] == [
        (ActionStatus.DONE, "Casusbespreking van elke naadlekkage"),
        (ActionStatus.IN_PROGRESS, "Verbetertraject naadlekkage"),
    ]
    assert acts[1].signal_ids == [leak.item_id] and acts[0].signal_ids == []
    assert [
        a.title for a in annotations.chart_actions(engine, VIEWER, "colorectal_cancer", "anastomotic_leak", "H02")
    ] == []
    # the second worse outlier of the own hospital gets only the action under way (no earlier one)
    acts = annotations.chart_actions(engine, VIEWER, "hip_osteoarthritis", "readmission_30d", "H01")
    assert [(a.status, a.title, a.start, a.signal_ids) for a in acts] == [
        (
            ActionStatus.IN_PROGRESS,
            "Verbetertraject heropname binnen 30 dagen",
            demo_history.ACTIONS[1][0],
            [hip.item_id],
        )
    ]
    assert acts[0].expected_effect == "Minder heropname binnen 30 dagen, binnen een jaar te zien"
    assert history.summary() == "Improvement history: 5 target(s), 4 explained signal(s), 3 action(s)"

    again = demo_history.write_history(engine, TRUTH, BENCHMARKS)
    assert again.already_there and len(improvement.actions(engine, VIEWER)) == 3


def test_the_action_under_way_starts_when_the_planted_improvement_does(sqlite_engine):
    """truth.json's planted improvement (vbhc.demo.PLANTED_IMPROVEMENTS) sets the start of the action under way, so
    its before/after view finds the effect; the done action keeps its own start."""
    truth = {
        **TRUTH,
        "improvements": [
            {"condition": "colorectal_cancer", "indicator": "anastomotic_leak", "hospital": "H01",
             "start": "2024-11-15"},
            {"condition": "hip_osteoarthritis", "indicator": "readmission_30d", "hospital": "H01",
             "start": "2024-07-01"},
        ],
    }  # fmt: skip
    demo_history.write_history(store_units(sqlite_engine), truth, BENCHMARKS)
    acts = annotations.chart_actions(sqlite_engine, VIEWER, "colorectal_cancer", "anastomotic_leak", "H01")
    assert [(a.status, a.start) for a in acts] == [
        (ActionStatus.DONE, demo_history.ACTIONS[0][0]),
        (ActionStatus.IN_PROGRESS, dt.date(2024, 11, 15)),
    ]
    acts = annotations.chart_actions(sqlite_engine, VIEWER, "hip_osteoarthritis", "readmission_30d", "H01")
    assert [(a.status, a.start) for a in acts] == [(ActionStatus.IN_PROGRESS, dt.date(2024, 7, 1))]


def test_the_demo_norms_source_is_a_proper_name_in_both_languages():
    """A stored source name is shown as stored (a real registry's name is a proper name): the demo's read
    "Fictieve landelijke norm (demodata)" in the English pages. No word of it is one only the Dutch or only the
    English messages use."""
    import re

    from vbhc import demo_external
    from vbhc.i18n import catalog

    def words(lang: str) -> set[str]:
        return {w.lower() for text in catalog(lang).values() for w in re.findall(r"[^\W\d_]{3,}", text)}

    en, nl = words("en"), words("nl")
    for source in (demo_history.NORM_SOURCE, demo_external.SOURCE):
        named = {w.lower() for w in re.findall(r"[^\W\d_]{3,}", source)}
        assert named and not named & (en ^ nl), (source, named & (en ^ nl))
