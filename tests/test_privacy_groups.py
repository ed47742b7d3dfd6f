"""Differencing comparison groups: a manager sees each group's benchmark (the pooled rate, a fraction whose
denominator is the group's n) and the registry's exactly, so any two or three views whose sums and differences
leave one other hospital give that hospital's figures by name. A manager now picks among published groups only
(vbhc.access.offered_groups): every "atom" of the offered groups (the other units with the same membership in every
one) holds MIN_OTHER_UNITS units from as many hospitals, so no sum or difference of views is smaller than that.
Synthetic registries of twelve and thirteen hospitals (the demo has ten: no group is possible there)."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine

from vbhc import access
from vbhc.access import (
    GROUP_NOT_PUBLISHED,
    AccessConfigError,
    PublishedGroup,
    Role,
    Scope,
    Viewer,
    comparison_group,
    comparison_group_refusal,
    comparison_groups_offered,
    load_comparison_groups,
    offered_groups,
)
from vbhc.catalog import default_catalog
from vbhc.disclosure import MIN_OTHER_UNITS
from vbhc.indicators import ConditionData, compute_indicators, restrict

CONDITION = "colorectal_cancer"
INDICATOR = "mortality_30d"
MANAGER = Viewer("m@example.org", "", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
QUALITY = Viewer("q@example.org", "", (Scope(Role.QUALITY),))


def _hospitals(count: int) -> list[str]:
    return [f"H{i:02d}" for i in range(1, count + 1)]


def _registry(count: int, seed: int) -> ConditionData:
    """`count` hospitals of 30-150 care cycles each with a 30-day mortality, one department each."""
    cond = default_catalog().condition(CONDITION)
    cond = dataclasses.replace(cond, casemix=(), indicators=tuple(i for i in cond.indicators if i.id == INDICATOR))
    rng = np.random.default_rng(seed)
    hospitals = np.repeat(_hospitals(count), rng.integers(30, 150, count))
    n = len(hospitals)
    cycles = pd.DataFrame(
        {
            "cycle_id": [f"c{i:05d}" for i in range(n)],
            "hospital": hospitals,
            "department": "SUR",
            "index_date": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D"),
            "mortality_30d": (rng.random(n) < 0.09).astype(float),
        }
    )
    empty = pd.DataFrame(columns=["cycle_id", "instrument", "timepoint", "scale", "score", "completed_date"])
    return ConditionData(
        cond, None, cycles, empty, pd.DataFrame(columns=["cycle_id", "cost"]), pd.Timestamp("2025-12-31")
    )


def _teams(data: ConditionData) -> pd.DataFrame:
    return data.cycles.groupby(["hospital", "department"]).size().rename("care_cycles").reset_index()


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    from vbhc.store import upgrade_schema

    eng = create_engine(f"sqlite:///{tmp_path_factory.mktemp('groups') / 'audit.db'}")
    upgrade_schema(eng)
    return eng


def _unit_years(data: ConditionData) -> pd.DataFrame:
    """vbhc.registry.condition_unit_years of the synthetic registry."""
    year = pd.to_datetime(data.cycles["index_date"]).dt.year.rename("year")
    return data.cycles.groupby(["hospital", "department", year]).size().rename("care_cycles").reset_index()


def _view(
    data: ConditionData, viewer: Viewer, group, engine, published=(), period: str | None = None
) -> tuple[Fraction, Fraction, Fraction]:
    """What the viewer reads of a group's view, as the pages compute it (ui.data.result_for): the group as
    comparison_group keeps it, the table through indicator_rows. Returns the benchmark as the attacker recovers it
    (the exact fraction events/n of the view's cycles, from the pooled rate's digits) and the own unit's n and
    observed."""
    peers, _ = comparison_group(viewer, CONDITION, "hospital", group, _unit_years(data), None, published)
    table = compute_indicators(restrict(data, period, list(peers) or None), "hospital").table
    rows = access.indicator_rows(
        viewer, table, engine=engine, record_view=False, others=access.other_units_shown(viewer, CONDITION, peers)
    )
    rows = rows[rows["indicator"] == INDICATOR]
    own = rows[rows["unit"] == "H01"].iloc[0]
    benchmark = Fraction(float(own["target"])).limit_denominator(len(data.cycles))
    return benchmark, Fraction(int(own["observed"])), Fraction(int(own["n"]))


def _events_and_n(rate: Fraction) -> tuple[int, int]:
    return rate.numerator, rate.denominator


def _truth(data: ConditionData, hospitals) -> tuple[int, int]:
    rows = data.cycles[data.cycles["hospital"].isin(list(hospitals))]
    return int(rows[INDICATOR].sum()), len(rows)


def test_two_groups_that_differ_by_one_hospital_give_that_hospitals_figures(engine):
    """Thirteen hospitals, a manager of H01: H01-H06 (five others in, seven out) and H01-H07 (six in, six out) each
    passed the size rules, and their benchmarks' difference was H07's 30-day mortality, events and n, by name. With
    no published groups a manager gets the registry's benchmark for any pick; with both groups published only the
    first is offered (H07 alone would be an atom)."""
    data = _registry(13, seed=3)
    hospitals = _hospitals(13)
    small, large = hospitals[:6], hospitals[:7]
    # the attack, as the views were kept before: both groups' exact fractions differ by H07's cells
    e1, n1 = _truth(data, small)
    e2, n2 = _truth(data, large)
    assert (e2 - e1, n2 - n1) == _truth(data, ["H07"])
    views = {tuple(g): _view(data, MANAGER, g, engine) for g in (small, large)}
    a, b = views[tuple(small)][0], views[tuple(large)][0]
    if (a.denominator, b.denominator) == (n1, n2):  # what the manager could read while both were kept
        pytest.fail(f"H07 read from two groups: {b.numerator - a.numerator} of {b.denominator - a.denominator}")
    teams = _teams(data)
    for group in (small, large):
        assert comparison_group(MANAGER, CONDITION, "hospital", group, teams, None, ()) == ((), True)
        assert comparison_group_refusal(MANAGER, CONDITION, "hospital", group, teams, None, ()) == GROUP_NOT_PUBLISHED
    assert a == b  # both the registry's benchmark: nothing to difference
    published = (PublishedGroup("A", frozenset(small)), PublishedGroup("B", frozenset(large)))
    assert offered_groups(MANAGER, CONDITION, "hospital", teams, None, published) == published[:1]
    assert comparison_group(MANAGER, CONDITION, "hospital", small, teams, None, published) == (tuple(small), False)
    assert comparison_group(MANAGER, CONDITION, "hospital", large, teams, None, published) == ((), True)
    # quality sees every unit: nothing to difference, any group is kept
    assert comparison_group(QUALITY, CONDITION, "hospital", large, teams, None, ()) == (tuple(large), False)


def test_three_views_whose_sum_leaves_one_hospital_are_not_all_offered(engine):
    """Twelve hospitals, a manager of H01. G1 = H02-H07, G2 = H07-H12: each holds six other hospitals and leaves
    five outside it, each pair of views (G1, G2, the registry) differs by five hospitals or more, and yet
    G1 + G2 - registry - own = H07. Before, the manager read H07's exact 30-day mortality from the three
    benchmarks. G2 is not offered once G1 is (H07 would be an atom of one hospital)."""
    data = _registry(12, seed=3)
    teams = _teams(data)
    hospitals = _hospitals(12)
    g1, g2 = hospitals[1:7], hospitals[6:]
    for group in (g1, g2):  # each passed the rules a group had to pass
        refusal = comparison_group_refusal(MANAGER, CONDITION, "hospital", ["H01", *group], teams, None, ())
        assert refusal in (None, GROUP_NOT_PUBLISHED)
    published = (PublishedGroup("G1", frozenset(g1)), PublishedGroup("G2", frozenset(g2)))
    assert [g.name for g in offered_groups(MANAGER, CONDITION, "hospital", teams, None, published)] == ["G1"]
    views = [_view(data, MANAGER, ["H01", *g], engine, published) for g in (g1, g2, [])]
    (b1, own_o, own_n), (b2, _, _), (reg, _, _) = views
    events = b1.numerator + b2.numerator - reg.numerator - own_o
    n = b1.denominator + b2.denominator - reg.denominator - own_n
    assert (events, n) != _truth(data, ["H07"]), "H07 read from G1 + G2 - registry - own"
    assert b2 == reg  # G2 refused: the registry's benchmark


def _without_late_years(data: ConditionData, hospitals) -> ConditionData:
    """The registry with `hospitals` treating no patient from 2025 on (left the registry)."""
    late = data.cycles["hospital"].isin(list(hospitals)) & (pd.to_datetime(data.cycles["index_date"]) >= "2025-01-01")
    return dataclasses.replace(data, cycles=data.cycles[~late].reset_index(drop=True))


def test_a_group_whose_atom_is_one_hospital_in_a_year_is_not_offered(engine):
    """Eleven hospitals, H08-H11 without patients from 2025 on. The group H02-H06 holds five other hospitals and
    leaves five outside it over all dates, but in 2025 only H07 is outside it: the registry's 2025 benchmark minus
    the group's was H07's 2025 figures. The atoms are checked in every year (vbhc.registry.condition_unit_years),
    so the group is not offered, in any period (all dates minus the other years would give 2025 back)."""
    data = _without_late_years(_registry(11, seed=3), ["H08", "H09", "H10", "H11"])
    group = (PublishedGroup("G", frozenset(_hospitals(6)[1:])),)
    assert offered_groups(MANAGER, CONDITION, "hospital", _teams(data), None, group) == group  # all dates only
    assert offered_groups(MANAGER, CONDITION, "hospital", _unit_years(data), None, group) == ()
    chosen = ["H01", *sorted(group[0].hospitals)]
    assert comparison_group(MANAGER, CONDITION, "hospital", chosen, _unit_years(data), None, group) == ((), True)
    in_group, _, _ = _view(data, MANAGER, chosen, engine, group, "2025")
    registry, _, _ = _view(data, MANAGER, [], engine, group, "2025")
    assert in_group == registry  # the registry's benchmark for both: nothing to difference


def test_an_indicator_counted_in_one_hospital_of_an_atom_shows_the_registrys_benchmark(engine):
    """Eleven hospitals; H08-H11 treat patients but record no 30-day mortality (as PROMs some hospitals do not
    collect). The group H02-H06 passes the atoms of the units treating the condition, yet for this indicator only
    H07 is counted outside it: the registry's benchmark minus the group's was H07's mortality. The indicator is
    withheld from every group view (vbhc.access.group_indicators_withheld: the registry's rows instead, ui.data
    .result_for), checked over the grid of periods; an indicator counted everywhere keeps the group's."""
    data = _registry(11, seed=3)
    cycles = data.cycles.copy()
    cycles.loc[cycles["hospital"].isin(["H08", "H09", "H10", "H11"]), INDICATOR] = np.nan
    data = dataclasses.replace(data, cycles=cycles)
    group = (PublishedGroup("G", frozenset(_hospitals(6)[1:])),)
    chosen = ["H01", *sorted(group[0].hospitals)]
    teams = _unit_years(data)
    assert comparison_group(MANAGER, CONDITION, "hospital", chosen, teams, None, group) == (tuple(chosen), False)
    (in_group, _, _), (registry, _, _) = (_view(data, MANAGER, g, engine, group) for g in (chosen, []))
    h07 = data.cycles[data.cycles["hospital"] == "H07"]
    assert (registry.numerator - in_group.numerator, registry.denominator - in_group.denominator) == (
        int(h07[INDICATOR].sum()),
        len(h07),
    )  # what the group's view gave while it showed the group's benchmark
    grid = [compute_indicators(restrict(data, p), "hospital").table for p in (None, "2024", "2025")]
    withheld = access.group_indicators_withheld(MANAGER, CONDITION, "hospital", teams, None, grid, group)
    assert withheld == {INDICATOR}
    whole = _registry(11, seed=3)  # every hospital counted: the group's benchmark is kept
    grid = [compute_indicators(restrict(whole, p), "hospital").table for p in (None, "2024", "2025")]
    assert access.group_indicators_withheld(MANAGER, CONDITION, "hospital", _unit_years(whole), None, grid, group) == (
        frozenset()
    )
    assert access.group_indicators_withheld(QUALITY, CONDITION, "hospital", teams, None, grid, group) == frozenset()


def test_an_atom_must_hold_five_hospitals_at_every_level():
    """The rule on a registry of departments: a group offered at department level needs every atom to hold
    MIN_OTHER_UNITS departments from as many hospitals (five departments of one hospital are one hospital)."""
    rows = [("H01", "SUR")] + [("H02", d) for d in ("SUR", "GAS", "ONC", "INT", "RAD")]
    rows += [(f"H{i:02d}", "SUR") for i in range(3, 3 + 2 * MIN_OTHER_UNITS)]
    teams = pd.DataFrame(rows, columns=["hospital", "department"])
    one = (PublishedGroup("H02", frozenset({"H02"})),)
    five = (PublishedGroup("five", frozenset(f"H{i:02d}" for i in range(2, 2 + MIN_OTHER_UNITS))),)
    for level in ("department", "hospital", "condition_team"):
        assert offered_groups(MANAGER, CONDITION, level, teams, None, one) == ()
        assert offered_groups(MANAGER, CONDITION, level, teams, None, five) == five
        assert comparison_groups_offered(MANAGER, CONDITION, level, teams, None, ()) is False
        assert comparison_groups_offered(MANAGER, CONDITION, level, teams, None, five) is True


def test_published_groups_file(tmp_path: Path, monkeypatch):
    """The published set is read from VBHC_COMPARISON_GROUPS_FILE (none without the file); a mistake names the
    file, the group, the key and the value on one line."""
    monkeypatch.setenv("VBHC_COMPARISON_GROUPS_FILE", str(tmp_path / "groups.toml"))
    assert load_comparison_groups() == ()
    (tmp_path / "groups.toml").write_text(
        '[[group]]\nname = "Academic"\nhospitals = ["H01", "H02"]\nnote = "umc"\n', encoding="utf-8"
    )
    assert load_comparison_groups() == (PublishedGroup("Academic", frozenset({"H01", "H02"})),)
    for text, named in (
        ('[[group]]\nname = "A"\nhospitals = []\n', "group 1, key 'hospitals', value []"),
        ('[[group]]\nname = "A"\nhospitals = ["H01"]\n[[group]]\nname = "A"\nhospitals = ["H02"]\n', "group 2"),
        ('[[group]]\nname = "A"\nhospital = ["H01"]\n', "key 'hospital'"),
        ("[groups]\n", "unknown top-level key 'groups'"),
    ):
        (tmp_path / "groups.toml").write_text(text, encoding="utf-8")
        with pytest.raises(AccessConfigError) as err:
            load_comparison_groups()
        assert "groups.toml" in str(err.value) and named in str(err.value) and "\n" not in str(err.value)


def test_before_free_groups_gave_one_hospital_by_name(engine, monkeypatch):
    """The defect, with the group check as it was (a manager's free pick kept when it passed the size rules): the
    two attacks above read H07's exact 30-day mortality (events and n) from the benchmarks."""
    real = access.GroupChoice.refusal

    def as_before(choice):
        reason = real(choice)
        return None if reason == GROUP_NOT_PUBLISHED else reason

    monkeypatch.setattr(access.GroupChoice, "refusal", as_before)
    data = _registry(13, seed=3)
    (a, _, _), (b, _, _) = (_view(data, MANAGER, g, engine) for g in (_hospitals(13)[:6], _hospitals(13)[:7]))
    assert (b.numerator - a.numerator, b.denominator - a.denominator) == _truth(data, ["H07"])
    data = _registry(12, seed=3)
    hospitals = _hospitals(12)
    (b1, own_o, own_n), (b2, _, _), (reg, _, _) = (
        _view(data, MANAGER, ["H01", *g], engine) for g in (hospitals[1:7], hospitals[6:], [])
    )
    events = b1.numerator + b2.numerator - reg.numerator - own_o
    n = b1.denominator + b2.denominator - reg.denominator - own_n
    assert (events, n) == _truth(data, ["H07"])
    # a group offered on its atoms over all dates: its 2025 benchmark and the registry's gave H07's 2025 cells
    monkeypatch.setattr(access, "offered_groups", lambda *args, **kwargs: tuple(args[5]))
    data = _without_late_years(_registry(11, seed=3), ["H08", "H09", "H10", "H11"])
    group = (PublishedGroup("G", frozenset(_hospitals(6)[1:])),)
    chosen = ["H01", *sorted(group[0].hospitals)]
    (in_group, _, _), (registry, _, _) = (_view(data, MANAGER, g, engine, group, "2025") for g in (chosen, []))
    late = data.cycles[pd.to_datetime(data.cycles["index_date"]).dt.year == 2025]
    h07 = late[late["hospital"] == "H07"]
    assert (registry.numerator - in_group.numerator, registry.denominator - in_group.denominator) == (
        int(h07[INDICATOR].sum()),
        len(h07),
    )


def test_the_pages_show_the_registrys_rows_for_a_thin_indicator(engine, monkeypatch):
    """ui.data.result_for's step for a manager's group view: the withheld indicator's rows are the registry's (its
    benchmark), not the group's."""
    from ui import data as pages

    data = _registry(11, seed=3)
    cycles = data.cycles.copy()
    cycles.loc[cycles["hospital"].isin(["H08", "H09", "H10", "H11"]), INDICATOR] = np.nan
    data = dataclasses.replace(data, cycles=cycles)
    group = (PublishedGroup("G", frozenset(_hospitals(6)[1:])),)
    peers = tuple(["H01", *sorted(group[0].hospitals)])

    def result(condition, level, period, peers=()):
        return compute_indicators(restrict(data, period or None, list(peers) or None), level)

    monkeypatch.setattr(pages, "result", result)
    monkeypatch.setattr(pages, "grid_periods", lambda condition: ["", "2024", "2025"])
    monkeypatch.setattr(pages, "condition_unit_years", lambda url, version, condition: _unit_years(data))
    monkeypatch.setattr(pages, "units", lambda url, version: None)
    monkeypatch.setattr(pages, "published_groups", lambda: group)
    monkeypatch.setattr(pages, "engine", lambda url: engine)
    monkeypatch.setattr(pages, "version", lambda: "test")

    def shown(table: pd.DataFrame) -> float:
        return float(table.loc[(table["indicator"] == INDICATOR) & (table["unit"] == "H01"), "target"].iloc[0])

    in_group = access.indicator_rows(
        MANAGER, result(CONDITION, "hospital", "", peers).table, engine=engine, record_view=False, others="hide"
    )
    registry = access.indicator_rows(MANAGER, result(CONDITION, "hospital", "").table, engine=engine, record_view=False)
    assert shown(in_group) != shown(registry)
    got = pages._registry_benchmark_where_thin(MANAGER, CONDITION, "hospital", "", peers, in_group)
    assert shown(got) == shown(registry)
    assert set(got["unit"]) == {"H01"}  # still no other unit by name


def test_the_prom_histograms_group_panel_withholds_a_timepoint_of_a_thin_atom():
    """Sixteen hospitals, a manager of H01 offered G1 = H02-H06 and G2 = H02-H11. At 12 months only H07 of
    H07-H11 has responses: each panel passes the rules alone (its group and what is outside it hold five units or
    more), but G2's panel minus G1's was H07's twelve patients' scores by name. The atom check withholds the
    timepoint in every group view (vbhc.disclosure.comparison_group_withheld, `offered`)."""
    from vbhc.disclosure import comparison_group_withheld

    rows = []
    for number in range(1, 17):
        hospital = f"H{number:02d}"
        rows += [(hospital, hospital, "baseline", 2024)] * 12
        if number <= 7 or number >= 12:
            rows += [(hospital, hospital, "12m", 2024)] * 12
    cells = pd.DataFrame(rows, columns=["unit", "hospital", "timepoint", "year"])
    g1, g2 = _hospitals(6)[1:], _hospitals(11)[1:]
    for group in (g1, g2):  # the rules as they were: each panel shown
        assert comparison_group_withheld(cells, "H01", "", threshold=10, hospitals=["H01", *group]) == set()
    for group in (g1, g2):
        got = comparison_group_withheld(cells, "H01", "", threshold=10, hospitals=["H01", *group], offered=[g1, g2])
        assert got == {"12m"}
    # with G1 offered alone every atom holds at both timepoints
    assert comparison_group_withheld(cells, "H01", "", threshold=10, hospitals=["H01", *g1], offered=[g1]) == set()


def test_the_own_units_charts_of_a_thin_indicator_are_the_registrys(monkeypatch):
    """ui.data.unit_charts_for: the own unit's SPC chart of an indicator withheld from group views is the
    registry's (its expected values recalibrated to the group carried the group's level), the others the group's."""
    from ui import data as pages

    peers = ("H01", "H02")
    monkeypatch.setattr(pages, "comparison_group", lambda viewer, condition, level, chosen: (peers, False))
    monkeypatch.setattr(pages, "_thin_indicators", lambda viewer, condition, level, chosen: frozenset({"thin"}))
    charts = {peers: {"thin": "group thin", "kept": "group kept"}, (): {"thin": "registry thin", "kept": "registry"}}
    monkeypatch.setattr(pages, "unit_charts", lambda condition, level, period, chosen, unit: charts[chosen])
    got = pages.unit_charts_for(MANAGER, CONDITION, "hospital", "", peers, "H01")
    assert got == {"thin": "registry thin", "kept": "group kept"}


def test_since_the_last_meeting_in_a_group_view_signals_on_the_team_pages_charts(monkeypatch):
    """ui.render.since_last_meeting in a comparison-group view takes the unit's signals from the charts the team
    page draws (ui.data.unit_charts_for): an indicator the viewer's group views withhold signals on the registry's
    chart, not on the group's (whose expected values carry the group's level of it)."""
    import datetime as dt
    from types import SimpleNamespace

    from ui import auth, filters, render
    from ui import data as pages
    from vbhc import meeting

    peers = ("H02", "H03", "H04", "H05", "H06")
    chosen = SimpleNamespace(meeting=dt.date(2025, 1, 1), comparison="previous", period="", peers=peers)
    monkeypatch.setattr(filters, "current", lambda: chosen)
    monkeypatch.setattr(auth, "current", lambda: MANAGER)
    monkeypatch.setattr(pages, "comparison_group", lambda viewer, condition, level, chosen: (peers, None))
    monkeypatch.setattr(pages, "result", lambda *args: SimpleNamespace())
    monkeypatch.setattr(pages, "as_of_label", lambda result, when: chosen.period)
    monkeypatch.setattr(pages, "unit_charts", lambda *args: {"thin": "group thin", "kept": "group kept"})
    drawn = {"thin": "registry thin", "kept": "group kept"}
    monkeypatch.setattr(pages, "unit_charts_for", lambda viewer, *args: drawn if viewer == MANAGER else {})
    monkeypatch.setattr(render, "cached", lambda key, compute, **kw: compute())
    used = {}

    def signals(result, unit, *, charts=None):
        used["charts"] = charts
        return {}

    monkeypatch.setattr(meeting, "signals", signals)
    monkeypatch.setattr(meeting, "since_last_meeting", lambda *args, **kw: pd.DataFrame())
    result = SimpleNamespace(condition=CONDITION, level="hospital", table=pd.DataFrame())
    render.since_last_meeting(result, "H01", "nl")
    assert used["charts"] == drawn
