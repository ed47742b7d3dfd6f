"""The PROM scores the indicators read from questionnaires the database pivots (registry.prom_scores) are the
same frame as scoring the item rows in pandas (proms.score_responses of registry.prom_responses), on SQLite and
on PostgreSQL: the fast read must not change a single score, date, category or row order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import case, func, insert, select, update

from tests import registry_source
from vbhc import models, proms, registry
from vbhc.catalog import default_catalog
from vbhc.demo import generate_demo
from vbhc.indicators import load_condition_data

DEMO_CYCLES = 600


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> list[Path]:
    """A small demo registry's files in import order, generated once for the module."""
    return generate_demo(tmp_path_factory.mktemp("pivot") / "files", cycles=DEMO_CYCLES).import_order()


@pytest.fixture(scope="module")
def sqlite_source(demo_files, _sqlite_schema, tmp_path_factory) -> registry_source.Source:
    """demo_files imported once into a SQLite registry of the current schema, the database every SQLite
    `demo_engine` is a copy of (generating and importing the demo for each test was most of this module's time)."""
    folder = tmp_path_factory.mktemp("pivot_source")
    return registry_source.sqlite_imported(_sqlite_schema, folder, demo_files, imported_by="test")


@pytest.fixture(scope="module")
def postgres_source(demo_files, postgres_server, _postgres_schema) -> Iterator[registry_source.Source]:
    """As sqlite_source, on the suite's PostgreSQL server (the template of every PostgreSQL `demo_engine`)."""
    with registry_source.postgres_imported(postgres_server, _postgres_schema, demo_files, imported_by="test") as source:
        yield source


#: A test that uses one of these fixtures gets a PostgreSQL `engine` made straight from the module's imported
#: registry, its source (tests/conftest.py `postgres_template`)
POSTGRES_SOURCES = {"demo_engine": "postgres_source"}


@pytest.fixture
def demo_engine(engine, request):
    """A small demo registry imported into the backend under test: the test's `engine` made a copy of the
    module's imported registry (the same rows and import batches; tests below change their copy)."""
    registry_source.overwrite_from(engine, request, "source")
    return engine


def _item_path(condition: str, engine, **filters) -> pd.DataFrame:
    return proms.score_responses(registry.prom_responses(condition, engine=engine, **filters))


def test_pivoted_scores_equal_item_scores(demo_engine):
    catalog = default_catalog()
    for condition in catalog.conditions:
        expected = _item_path(condition, demo_engine)
        assert len(expected), condition  # the demo answers every condition's questionnaires
        pd.testing.assert_frame_equal(registry.prom_scores(condition, engine=demo_engine), expected, check_exact=True)


def test_pivoted_scores_follow_the_filters(demo_engine):
    condition = next(iter(default_catalog().conditions))
    units = registry.condition_units(condition, engine=demo_engine)
    hospital = str(units["hospital"].iloc[0])
    years = registry.condition_volumes(engine=demo_engine)
    year = str(pd.Timestamp(years["last_index_date"].max()).year)
    for filters in ({"hospitals": [hospital]}, {"period": year}, {"hospitals": [hospital], "period": year}):
        expected = _item_path(condition, demo_engine, **filters)
        got = registry.prom_scores(condition, engine=demo_engine, **filters)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
        assert len(got) < len(_item_path(condition, demo_engine))


def test_indicator_data_reads_the_pivoted_scores(demo_engine):
    condition = next(iter(default_catalog().conditions))
    data = load_condition_data(condition, engine=demo_engine)
    pd.testing.assert_frame_equal(data.scores, _item_path(condition, demo_engine), check_exact=True)


def _questionnaire(engine, instrument: str) -> tuple[str, str, str, int]:
    """(cycle_id, timepoint, condition, batch_id) of one returned questionnaire of `instrument`."""
    q, c = models.PromQuestionnaire, models.CareCycle
    with engine.connect() as conn:
        row = conn.execute(
            select(q.c.cycle_id, q.c.timepoint, c.condition, q.c.batch_id)
            .join(c, c.cycle_id == q.c.cycle_id)
            .where(q.c.instrument == instrument)
            .order_by(q.c.cycle_id, q.c.timepoint)
            .limit(1)
        ).one()
    return tuple(row)


def _add_item(engine, cycle_id: str, instrument: str, timepoint: str, item: str, value: float, batch: int) -> None:
    """One stored answer more, as a raw write (past the importer): the item gets a position when it has none,
    the questionnaire is added when it is not stored."""
    q, i = models.PromQuestionnaire, models.PromItem.__table__
    with engine.begin() as conn:
        position = conn.execute(select(i.c.position).where(i.c.instrument == instrument, i.c.item == item)).scalar()
        if position is None:
            last = conn.execute(select(func.max(i.c.position)).where(i.c.instrument == instrument)).scalar() or 0
            position = last + 1
            conn.execute(insert(i).values(instrument=instrument, item=item, position=position))
        column = models.prom_answer_column(position)
        key = (q.c.cycle_id == cycle_id, q.c.instrument == instrument, q.c.timepoint == timepoint)
        if conn.execute(update(q).where(*key).values({column: value})).rowcount == 0:
            row = dict(cycle_id=cycle_id, instrument=instrument, timepoint=timepoint, batch_id=batch)
            conn.execute(insert(q).values({**row, column: value}))


def test_bad_item_values_are_dropped_alike(demo_engine):
    """Rows the importer would reject (a code out of range, a fraction of an ordinal code, a questionnaire with
    one item and no date) still get the same scores on both paths."""
    catalog = default_catalog()
    instrument = next(u.instrument for c in catalog.conditions.values() for u in c.proms)
    spec = catalog.instruments[instrument]
    cycle_id, timepoint, condition, batch = _questionnaire(demo_engine, instrument)
    q = models.PromQuestionnaire
    with demo_engine.begin() as conn:  # every answer of the questionnaire out of range
        conn.execute(
            update(q)
            .where(q.c.cycle_id == cycle_id, q.c.instrument == instrument, q.c.timepoint == timepoint)
            .values({a: case((q.c[a].is_not(None), spec.items[0].max + 1)) for a in models.PROM_ANSWER_COLUMNS})
        )
    other = registry.care_cycles(condition, engine=demo_engine)["cycle_id"]
    answered = set(registry.prom_responses(condition, engine=demo_engine)["cycle_id"].astype(str))
    fresh = next(str(c) for c in other if str(c) not in answered)
    _add_item(demo_engine, fresh, instrument, timepoint, spec.items[-1].id, spec.items[-1].min + 0.5, batch)
    expected = _item_path(condition, demo_engine)
    assert expected["cycle_id"].astype(str).eq(fresh).any()
    pd.testing.assert_frame_equal(registry.prom_scores(condition, engine=demo_engine), expected, check_exact=True)


def test_an_item_the_catalog_does_not_know_is_an_error(demo_engine):
    catalog = default_catalog()
    instrument = next(u.instrument for c in catalog.conditions.values() for u in c.proms)
    cycle_id, timepoint, condition, batch = _questionnaire(demo_engine, instrument)
    _add_item(demo_engine, cycle_id, instrument, timepoint, "not_an_item", 1.0, batch)
    with pytest.raises(ValueError, match=r"PROM items not in the catalog: not_an_item"):  # named, not a missing value
        _item_path(condition, demo_engine)
    with pytest.raises(ValueError, match=r"items not in instrument .*: not_an_item"):
        registry.prom_scores(condition, engine=demo_engine)


def test_a_timepoint_the_catalog_does_not_know_is_an_error_not_a_missing_value(demo_engine):
    """Stored rows the catalog cannot place (written by an older version, or by hand) are named, on both paths:
    made a missing timepoint, they would drop out of every indicator unseen."""
    catalog = default_catalog()
    instrument = next(u.instrument for c in catalog.conditions.values() for u in c.proms)
    cycle_id, _, condition, batch = _questionnaire(demo_engine, instrument)
    item = catalog.instruments[instrument].items[0].id
    _add_item(demo_engine, cycle_id, instrument, "week_99", item, 1.0, batch)
    for read in (
        lambda: _item_path(condition, demo_engine),
        lambda: registry.prom_scores(condition, engine=demo_engine),
    ):
        with pytest.raises(ValueError, match=r"PROM timepoints not in the catalog: week_99"):
            read()
