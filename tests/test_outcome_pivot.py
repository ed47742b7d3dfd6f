"""The care cycles with their clinical outcomes as columns (registry.outcomes_wide) come pivoted by the database:
one row per care cycle is read instead of one per cycle and outcome (at national scale tens of millions of rows
fewer), and the frame is the one pivoting the long outcome rows in pandas gives, on SQLite and on PostgreSQL: not a
value, date, type, column or row order may change."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import delete, insert, select

from vbhc import models, registry
from vbhc.catalog import EVENT_DATE_SUFFIX, SURVIVAL_KINDS, default_catalog
from vbhc.demo import generate_demo
from vbhc.ingest import import_files

DEMO_CYCLES = 600


@pytest.fixture
def demo_engine(engine, tmp_path):
    """A small demo registry imported into the backend under test."""
    result = generate_demo(tmp_path / "files", cycles=DEMO_CYCLES)
    import_files(result.import_order(), engine, imported_by="test")
    return engine


def _long_path(condition: str, engine, **filters) -> pd.DataFrame:
    """The frame as pivoting the long outcome rows in pandas gives it (the way outcomes_wide read it before)."""
    cycles = registry.care_cycles(condition, engine=engine, **filters)
    long = registry.clinical_outcomes(condition, engine=engine, **filters)
    wide = long.pivot(index="cycle_id", columns="outcome", values="value")
    wide.columns = [str(c) for c in wide.columns]
    cond = default_catalog().condition(condition)
    for outcome in cond.outcomes:
        if outcome.id not in wide:
            wide[outcome.id] = float("nan")
    for ident in sorted({i.outcome for i in cond.indicators if i.kind in SURVIVAL_KINDS and i.outcome}):
        dated = long[long["outcome"] == ident].set_index("cycle_id")["date"]
        wide[ident + EVENT_DATE_SUFFIX] = pd.to_datetime(dated.reindex(wide.index))
    return cycles.merge(wide, left_on="cycle_id", right_index=True, how="left")


def test_pivoted_outcomes_equal_the_long_rows_pivoted(demo_engine):
    for condition in default_catalog().conditions:
        expected = _long_path(condition, demo_engine)
        assert len(expected), condition
        pd.testing.assert_frame_equal(registry.outcomes_wide(condition, engine=demo_engine), expected, check_exact=True)


def test_pivoted_outcomes_follow_the_filters(demo_engine):
    condition = next(iter(default_catalog().conditions))
    hospital = str(registry.condition_units(condition, engine=demo_engine)["hospital"].iloc[0])
    years = registry.condition_volumes(engine=demo_engine)
    year = str(pd.Timestamp(years["last_index_date"].max()).year)
    for filters in ({"hospitals": [hospital]}, {"period": year}, {"hospitals": [hospital], "period": year}):
        got = registry.outcomes_wide(condition, engine=demo_engine, **filters)
        pd.testing.assert_frame_equal(got, _long_path(condition, demo_engine, **filters), check_exact=True)
        assert 0 < len(got) < len(registry.care_cycles(condition, engine=demo_engine))


def test_one_row_per_care_cycle_is_read(demo_engine, monkeypatch):
    """The database pivots: the rows read are the care cycles, not the care cycles and every outcome row."""
    read = registry._read
    counted: list[int] = []

    def counting(query, engine, transform=None):
        frame = read(query, engine, transform)
        counted.append(len(frame))
        return frame

    monkeypatch.setattr(registry, "_read", counting)
    for condition in default_catalog().conditions:
        counted.clear()
        frame = registry.outcomes_wide(condition, engine=demo_engine)
        assert sum(counted) == len(frame), condition


def test_a_cycle_without_outcomes_and_an_outcome_without_rows(demo_engine):
    """A cycle none of whose outcomes is recorded keeps its row (every outcome missing), and an outcome no cycle
    has is a column of missing values after the recorded ones, as the pandas pivot places it."""
    condition = next(c for c, cond in default_catalog().conditions.items() if _dated(cond))
    cond = default_catalog().condition(condition)
    o, c = models.ClinicalOutcome, models.CareCycle
    first = cond.outcomes[0].id
    with demo_engine.begin() as conn:
        cycle = conn.execute(select(c.cycle_id).where(c.condition == condition).order_by(c.cycle_id)).scalars().first()
        conn.execute(delete(o).where(o.cycle_id == cycle))
        ids = select(c.cycle_id).where(c.condition == condition).scalar_subquery()
        conn.execute(delete(o).where(o.outcome == first, o.cycle_id.in_(ids)))
    got = registry.outcomes_wide(condition, engine=demo_engine)
    pd.testing.assert_frame_equal(got, _long_path(condition, demo_engine), check_exact=True)
    row = got[got["cycle_id"] == cycle]
    outcomes = [x.id for x in cond.outcomes] + [i + EVENT_DATE_SUFFIX for i in _dated(cond)]
    assert row[outcomes].isna().all(axis=None)
    assert list(got.columns).index(first) > list(got.columns).index(cond.outcomes[1].id)


def test_an_outcome_the_catalog_does_not_name_keeps_its_column(demo_engine):
    """A stored outcome the catalog no longer names for the condition (a catalog changed after the import) is a
    column of the frame, as when pandas pivoted every stored row: the database's pivot only knows the catalog's."""
    condition = next(iter(default_catalog().conditions))
    o, c = models.ClinicalOutcome, models.CareCycle
    with demo_engine.begin() as conn:
        cycle, batch = conn.execute(
            select(c.cycle_id, c.batch_id).where(c.condition == condition).order_by(c.cycle_id)
        ).first()
        conn.execute(insert(o).values(cycle_id=cycle, outcome="retired_outcome", value=1.0, batch_id=batch))
    got = registry.outcomes_wide(condition, engine=demo_engine)
    pd.testing.assert_frame_equal(got, _long_path(condition, demo_engine), check_exact=True)
    assert got.loc[got["cycle_id"] == cycle, "retired_outcome"].tolist() == [1.0]


def _dated(cond) -> list[str]:
    return sorted({i.outcome for i in cond.indicators if i.kind in SURVIVAL_KINDS and i.outcome})
