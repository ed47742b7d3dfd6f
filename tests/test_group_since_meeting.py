""" "Since the last meeting" of a comparison group reads the group as it was at the meeting only for the indicators
with a signal now (vbhc.meeting.signalled): a view at the meeting with those indicators' rows alone (none when
the unit has no signal now) gives the same table, to the bit, as the whole view at the meeting, which the click
that picks a group computed before (a second group view beside the group's own, and its signals then of every
indicator). Checked for every unit of groups of both unit levels on the small demo registry."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from vbhc import meeting
from vbhc.indicators import BASE_COLUMNS, IndicatorResult, compute_indicators, load_condition_data, restrict

WHEN = dt.date(2025, 7, 1)


@pytest.mark.parametrize(
    ("condition", "level", "peers"),
    [
        ("colorectal_cancer", "hospital", ("H01", "H02", "H03")),
        ("colorectal_cancer", "department", ("H01", "H04")),
        ("hip_osteoarthritis", "department", ("H02", "H03", "H05")),
    ],
)
def test_the_group_at_the_meeting_with_only_the_signalled_indicators_gives_the_same_table(
    small_demo_registry, condition, level, peers
):
    engine, _ = small_demo_registry
    whole = load_condition_data(condition, engine=engine)
    registry = compute_indicators(whole, level)  # the registry's models, which the group's are recalibrated from
    label = meeting.as_of_label(registry, WHEN)
    assert label is not None and label != ""
    then = restrict(whole, label)
    compute_indicators(then, level)  # the registry's models as they were at the meeting
    now = compute_indicators(restrict(whole, None, list(peers)), level)
    whole_then = compute_indicators(restrict(then, None, list(peers)), level)
    # no signal now: no row of the group then is read (ui.data.group_indicators gives a table without rows)
    no_rows = IndicatorResult(condition, level, None, pd.DataFrame(columns=BASE_COLUMNS))
    signalled = 0
    for unit in sorted(now.table["unit"].astype(str).unique()):
        found = meeting.signals(now, unit)
        wanted = meeting.signalled(found)
        signalled += bool(wanted)
        assert all(found[k] for k in wanted)
        assert not any(v for k, v in found.items() if k not in wanted)
        # the unit's signals now, and none (every indicator without a signal now)
        for signals_now, before in (({unit: found}, None), ({unit: {key: set() for key in found}}, no_rows)):
            expected = meeting.since_last_meeting(now, unit, WHEN, before=whole_then, now=signals_now)
            if before is None:  # the wanted indicators' rows alone, on their own (a fresh cut: nothing of the whole)
                before = compute_indicators(restrict(then, None, list(peers)), level, indicators=wanted)
                assert set(before.table["indicator"]) <= set(wanted)
            got = meeting.since_last_meeting(now, unit, WHEN, before=before, now=signals_now)
            pd.testing.assert_frame_equal(got, expected, check_exact=True)
            assert got.attrs == expected.attrs
    assert signalled  # the group's units have signals now: the rows computed alone are compared


def test_signalled_keeps_the_indicators_with_a_signal_now_of_those_asked():
    now = {"b": {"worse"}, "a": {"concern", "better"}, "c": set(), "d": {"improvement"}}
    assert meeting.signalled(now) == ("a", "b", "d")
    assert meeting.signalled(now, ("b", "c")) == ("b",)
    assert meeting.signalled({"c": set()}) == ()
