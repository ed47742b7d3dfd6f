"""vbhc.altair_speedups changes how fast Altair builds a chart, never what it builds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import altair as alt
import numpy as np
import pandas as pd
import pytest
from altair.utils import data as altair_data
from altair.utils import schemapi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_charts import _builders, indicator_rows
from vbhc import altair_speedups, charts


@contextmanager
def plain_altair() -> Iterator[None]:
    altair_speedups.uninstall()
    try:
        yield
    finally:
        altair_speedups.install()


def spec_json(chart: alt.TopLevelMixin) -> str:
    return json.dumps(chart.to_dict(), sort_keys=True)


@pytest.mark.parametrize(("name", "build"), _builders(), ids=[name for name, _ in _builders()])
@pytest.mark.parametrize("lang", ["en", "nl"])
def test_every_chart_is_the_same_with_and_without_the_speedups(name, build, lang):
    assert altair_speedups.installed()
    fast = spec_json(build(lang)[0])
    with plain_altair():
        assert not altair_speedups.installed()
        plain = spec_json(build(lang)[0])
    assert fast == plain


def test_highlighted_charts_and_their_swapped_spec_are_the_same_with_and_without():
    rows = pd.concat([indicator_rows(), indicator_rows("leak"), indicator_rows("resp", kind="response_rate")])
    builds = [
        lambda: charts.small_multiples_chart(rows, lang="nl", highlight="H03"),
        lambda: charts.caterpillar_chart(indicator_rows(), lang="en", highlight="H05", value="oe"),
        lambda: charts.crude_vs_adjusted_chart(indicator_rows(), lang="nl", highlight="H02"),
    ]
    fast = [charts.with_highlight(b().to_dict(validate=False), "H07") for b in builds]
    with plain_altair():
        plain = [charts.with_highlight(b().to_dict(validate=False), "H07") for b in builds]
    assert json.dumps(fast, sort_keys=True) == json.dumps(plain, sort_keys=True)


@pytest.mark.parametrize(("name", "build"), _builders(), ids=[name for name, _ in _builders()])
def test_every_charts_data_takes_the_fast_path(name, build, monkeypatch):
    def refuse(data):
        raise AssertionError(f"{name}: a frame went to Altair's own conversion: {getattr(data, 'dtypes', data)}")

    monkeypatch.setattr(altair_speedups.altair_data, "to_values", refuse)
    build("nl")[0].to_dict()


def test_install_is_idempotent_and_uninstall_puts_altair_back():
    fast_copy = schemapi._deep_copy
    altair_speedups.install()
    assert schemapi._deep_copy is fast_copy is altair_speedups._deep_copy
    with plain_altair():
        assert schemapi._deep_copy is not altair_speedups._deep_copy
        assert alt.data_transformers.active == "default"
        assert schemapi.DEBUG_MODE
    assert alt.data_transformers.active == altair_speedups.TRANSFORMER
    assert not schemapi.DEBUG_MODE


def test_a_remembered_channel_is_handed_out_as_a_copy():
    first = alt.Chart(pd.DataFrame({"n": [1]})).encode(x="n:Q").encoding.x
    first.title = "changed by a caller"
    second = alt.Chart(pd.DataFrame({"n": [1]})).encode(x="n:Q").encoding.x
    assert second.to_dict() == {"field": "n", "type": "quantitative"}


def test_the_memo_stays_within_its_size():
    memo = altair_speedups._FromDictMemo(schemapi.SchemaBase.from_dict.__func__.original, size=3)
    for i in range(10):
        memo(alt.X, {"shorthand": f"f{i}:Q"}, validate=False)
    assert len(memo._objects) == 3


def test_too_many_rows_are_still_refused():
    big = pd.DataFrame({"n": np.arange(5001)})
    with pytest.raises(alt.MaxRowsError):
        alt.Chart(big).mark_point().encode(x="n:Q").to_dict()


def test_frames_altair_must_judge_go_to_altair():
    assert altair_speedups.chart_values(pd.DataFrame({"d": pd.to_timedelta([1, 2], unit="D")})) is None
    assert altair_speedups.chart_values(pd.DataFrame({0: [1, 2]})) is None
    with pytest.raises(ValueError, match="timedelta"):
        alt.Chart(pd.DataFrame({"d": pd.to_timedelta([1], unit="D")})).mark_point().to_dict()


# ------------------------------------------------------------------------------------ the data transformer

N = st.shared(st.integers(min_value=0, max_value=12), key="rows")
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
TEXT = st.one_of(st.none(), st.text(max_size=6))


def _column(kind: str, n: int, draw) -> pd.Series:
    if kind == "float":
        return pd.Series(draw(st.lists(FLOATS, min_size=n, max_size=n)), dtype="float64")
    if kind == "float32":
        return pd.Series(draw(st.lists(st.floats(width=32), min_size=n, max_size=n)), dtype="float32")
    if kind == "int":
        return pd.Series(draw(st.lists(st.integers(-(2**40), 2**40), min_size=n, max_size=n)), dtype="int64")
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if kind == "object_text":
        return pd.Series(draw(st.lists(TEXT, min_size=n, max_size=n)), dtype=object)
    if kind == "string":
        return pd.Series(draw(st.lists(TEXT, min_size=n, max_size=n)), dtype="string")
    if kind == "category":
        return pd.Series(draw(st.lists(st.sampled_from(["a", "b", None]), min_size=n, max_size=n)), dtype="category")
    if kind == "nullable_int":
        return pd.Series(
            draw(st.lists(st.one_of(st.none(), st.integers(-99, 99)), min_size=n, max_size=n)), dtype="Int64"
        )
    if kind == "nullable_bool":
        return pd.Series(draw(st.lists(st.one_of(st.none(), st.booleans()), min_size=n, max_size=n)), dtype="boolean")
    if kind == "object_numbers":
        values = draw(st.lists(st.one_of(st.none(), st.integers(-9, 9), FLOATS), min_size=n, max_size=n))
        return pd.Series([np.int64(v) if isinstance(v, int) else v for v in values], dtype=object)
    if kind == "datetime_seconds":  # registry dates: whole seconds, converted in one NumPy call
        seconds = draw(st.lists(st.one_of(st.none(), st.integers(0, 2_000_000_000)), min_size=n, max_size=n))
        return pd.Series(pd.to_datetime([None if v is None else pd.Timestamp(v, unit="s") for v in seconds]))
    if kind in ("datetime", "datetime_tz"):
        stamps = draw(
            st.lists(
                st.one_of(
                    st.none(), st.datetimes(min_value=pd.Timestamp("1990-01-01"), max_value=pd.Timestamp("2030-01-01"))
                ),
                min_size=n,
                max_size=n,
            )
        )
        series = pd.Series(pd.to_datetime(stamps))
        return (
            series.dt.tz_localize("Europe/Amsterdam", ambiguous="NaT", nonexistent="NaT")
            if kind == "datetime_tz"
            else series
        )
    raise AssertionError(kind)


KINDS = [
    "float",
    "float32",
    "int",
    "bool",
    "object_text",
    "string",
    "category",
    "nullable_int",
    "nullable_bool",
    "object_numbers",
    "datetime",
    "datetime_seconds",
    "datetime_tz",
]


@st.composite
def frames(draw) -> pd.DataFrame:
    n = draw(N)
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=5))
    return pd.DataFrame({f"{kind}_{i}": _column(kind, n, draw) for i, kind in enumerate(kinds)})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames())
def test_values_equal_altairs_own_conversion(frame):
    # except Altair's NaN in text or mixed columns (pandas 3 type inference), which is not JSON: null instead
    expected = [
        {k: None if isinstance(v, float) and v != v else v for k, v in row.items()}
        for row in altair_data.to_values(frame)["values"]
    ]
    got = altair_speedups.chart_values(frame)
    assert got == expected
    # and the same Python types, so the JSON (and the dataset's hash name) is the same too
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def test_missing_text_is_null_not_nan():
    frame = pd.DataFrame({"label": ["a", None], "mixed": [np.int64(1), np.nan]})
    values = altair_speedups.chart_values(frame)
    assert values == [{"label": "a", "mixed": 1.0}, {"label": None, "mixed": None}]
    json.dumps(values, allow_nan=False)
