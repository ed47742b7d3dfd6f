"""PROM answers stored one row per questionnaire (vbhc.models.PromQuestionnaire, vbhc.ingest.prom_store): a
questionnaire split over files or chunks ends up as one row with every answer; one questionnaire has one date;
the catalog's item order never moves an answer; a database of item rows (revision 0007) migrates without changing
a frame the registry reads; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pandas as pd
import pytest
from alembic import command
from sqlalchemy import func, select

from tests.db_snapshot import snapshot
from tests.registry_files import CYCLE_COLUMNS, cycles, proms, write_csv, write_units
from vbhc import models, registry
from vbhc import proms as prom_scoring
from vbhc.catalog import default_catalog
from vbhc.demo import generate_demo
from vbhc.ingest import ImportRefused, import_files
from vbhc.store import alembic_config, row_counts

ITEMS = ["MO", "SC", "UA", "PD", "AD", "VAS"]


def _base(engine, folder: Path) -> None:
    """Units and care cycles of the small registry."""
    folder.mkdir(parents=True, exist_ok=True)
    import_files(
        [write_units(folder / "units.csv"), write_csv(folder / "care_cycles.csv", cycles(), CYCLE_COLUMNS)], engine
    )


def _file(folder: Path, rows: list[dict[str, str]], name: str = "prom_responses.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_csv(folder / name, rows)


def _questionnaires(engine) -> list[dict]:
    q = models.PromQuestionnaire
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(q).order_by(q.c.cycle_id, q.c.timepoint))]


def _answers(engine, condition: str = "hip_osteoarthritis") -> dict[tuple, float]:
    frame = registry.prom_responses(condition, engine=engine)
    keys = zip(*(frame[c].astype(str) for c in ("cycle_id", "instrument", "timepoint", "item")), strict=True)
    return dict(zip(keys, frame["value"].astype(float), strict=True))


def test_a_questionnaire_split_over_files_and_chunks_is_one_row_with_every_answer(engine, tmp_path):
    _base(engine, tmp_path / "base")
    rows = proms()
    first = [r for r in rows if r["item"] in ITEMS[:2]]
    second = [r for r in rows if r["item"] in ITEMS[2:4]]
    later = [r for r in rows if r["item"] in ITEMS[4:]]
    # one batch of two files, read in chunks of 5 rows: every questionnaire straddles chunks and files
    batch = [
        _file(tmp_path / "a", first, "prom_responses_part1.csv"),
        _file(tmp_path / "b", second, "prom_responses_part2.csv"),
    ]
    report = import_files(batch, engine, chunk_rows=5)
    assert [(s.rows_inserted, s.rows_updated, s.rows_unchanged) for s in report.sources] == [
        (len(first), 0, 0),
        (len(second), 0, 0),
    ]
    report = import_files([_file(tmp_path / "c", later)], engine, chunk_rows=5)
    assert [(s.rows_inserted, s.rows_updated, s.rows_unchanged) for s in report.sources] == [(len(later), 0, 0)]
    stored = _questionnaires(engine)
    assert len(stored) == len({(r["cycle_id"], r["timepoint"]) for r in rows})
    assert all(sum(q[a] is not None for a in models.PROM_ANSWER_COLUMNS) == len(ITEMS) for q in stored)
    assert row_counts(engine)["prom_responses"] == len(rows)
    expected = {(r["cycle_id"], r["instrument"], r["timepoint"], r["item"]): float(r["value"]) for r in rows}
    hip = {c["cycle_id"] for c in cycles() if c["condition"] == "hip_osteoarthritis"}
    assert _answers(engine) == {k: v for k, v in expected.items() if k[0] in hip}


def test_a_resent_answer_replaces_an_absent_one_is_kept_and_identical_answers_keep_the_batch(engine, tmp_path):
    _base(engine, tmp_path / "base")
    rows = proms()
    import_files([_file(tmp_path / "all", rows)], engine)
    before = _questionnaires(engine)
    # the same answers again: nothing changes, not even a questionnaire's batch
    resent = [r for r in rows if r["item"] in ITEMS[:3]]
    report = import_files([_file(tmp_path / "same", resent)], engine, force=True)
    assert [(s.rows_inserted, s.rows_updated, s.rows_unchanged) for s in report.sources] == [(0, 0, len(resent))]
    assert _questionnaires(engine) == before
    # one answer changed: counted as one update, the questionnaire's other answers kept, its batch this import's
    changed = [dict(r) for r in resent]
    changed[0]["value"] = "5"
    report = import_files([_file(tmp_path / "changed", changed)], engine)
    assert [(s.rows_inserted, s.rows_updated, s.rows_unchanged) for s in report.sources] == [(0, 1, len(resent) - 1)]
    after = _questionnaires(engine)
    [(old, new)] = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    assert (new["cycle_id"], new["timepoint"]) == (changed[0]["cycle_id"], changed[0]["timepoint"])
    assert new["batch_id"] > old["batch_id"]
    assert [new[a] for a in models.PROM_ANSWER_COLUMNS if new[a] != old[a]] == [5.0]
    assert sum(new[a] is not None for a in models.PROM_ANSWER_COLUMNS) == len(ITEMS)
    # another completed date for a stored questionnaire: it replaces the date, each answer given counted a change
    redated = [dict(r) for r in rows if (r["cycle_id"], r["timepoint"]) == (new["cycle_id"], new["timepoint"])]
    redated = redated[:2]
    for r in redated:
        r["completed_date"] = "2025-07-01"
    report = import_files([_file(tmp_path / "redated", redated)], engine)
    assert [(s.rows_inserted, s.rows_updated, s.rows_unchanged) for s in report.sources] == [(0, 2, 0)]
    final = next(q for q in _questionnaires(engine) if q["id"] == new["id"])
    assert str(final["completed_date"]) == "2025-07-01"
    assert sum(final[a] is not None for a in models.PROM_ANSWER_COLUMNS) == len(ITEMS)


def test_two_dates_in_one_questionnaire_are_refused_and_nothing_stored(engine, tmp_path):
    _base(engine, tmp_path / "base")
    before = snapshot(engine, skip=("audit_events",))
    rows = proms()
    rows[2]["completed_date"] = "2024-02-10"  # C0001's baseline is on its index date, 2024-02-15
    rows[9]["completed_date"] = ""
    with pytest.raises(ImportRefused) as info:
        import_files([write_csv(tmp_path / "prom_responses.csv", rows)], engine, chunk_rows=4)
    lines = [p.line("en") for p in info.value.report.problems]
    assert lines == [
        f"prom_responses.csv row 4 column 'completed_date': value '{rows[2]['completed_date']}': completed on another "
        f"date than row 2 of the same questionnaire ({rows[0]['completed_date']}); a questionnaire has one completed "
        "date",
        "prom_responses.csv row 11 column 'completed_date': value 'empty': completed on another date than row 8 of the "
        f"same questionnaire ({rows[6]['completed_date']}); a questionnaire has one completed date",
    ]
    assert "vragenlijst heeft één invuldatum" in info.value.report.problems[0].line("nl")
    assert snapshot(engine, skip=("audit_events",)) == before


def test_an_instrument_with_more_items_than_answer_columns_is_refused_in_one_line(engine, tmp_path, monkeypatch):
    _base(engine, tmp_path / "base")
    before = snapshot(engine, skip=("audit_events",))
    monkeypatch.setattr(models, "PROM_ANSWER_SLOTS", 4)
    with pytest.raises(ImportRefused) as info:
        import_files([write_csv(tmp_path / "prom_responses.csv", proms())], engine)
    assert [p.line("en") for p in info.value.report.problems] == [
        "prom_responses.csv column 'instrument': value 'eq5d5l': instrument eq5d5l would have 6 items, more than the "
        "4 a questionnaire can store"
    ]
    assert snapshot(engine, skip=("audit_events",)) == before


def test_a_catalog_whose_item_order_changes_reads_the_same_answers(engine, tmp_path):
    """Positions are given at import and kept: a catalog listing the items in another order (a configurable
    catalog directory, an update) reads every answer as the item it was given for."""
    _base(engine, tmp_path / "base")
    rows = proms()
    import_files([_file(tmp_path / "a", [r for r in rows if r["item"] in ITEMS[3:]])], engine)
    catalog = default_catalog()
    spec = catalog.instruments["eq5d5l"]
    turned = dataclasses.replace(
        catalog, instruments={**catalog.instruments, "eq5d5l": dataclasses.replace(spec, items=spec.items[::-1])}
    )
    i = models.PromItem
    with engine.connect() as conn:
        given = conn.execute(select(i.item, i.position).where(i.instrument == "eq5d5l")).all()
    assert sorted(given, key=lambda g: g[1]) == [(item, n) for n, item in enumerate(ITEMS[3:], start=1)]  # file order
    # the rest of the answers imported under the turned catalog: new items get the next positions, none moves
    rest = [r for r in rows if r["item"] in ITEMS[:3]]
    import_files([_file(tmp_path / "b", rest)], engine, catalog=turned)
    with engine.connect() as conn:
        now = conn.execute(select(i.item, i.position).where(i.instrument == "eq5d5l")).all()
    assert sorted(now, key=lambda g: g[1]) == [*sorted(given, key=lambda g: g[1]), ("MO", 4), ("SC", 5), ("UA", 6)]
    condition = "hip_osteoarthritis"
    plain = registry.prom_questionnaires(condition, "eq5d5l", engine=engine)
    other = registry.prom_questionnaires(condition, "eq5d5l", engine=engine, catalog=turned)
    assert list(other.columns[3:]) == [i.id for i in spec.items[::-1]]
    pd.testing.assert_frame_equal(other[plain.columns], plain)
    expected = {(r["cycle_id"], r["timepoint"], r["item"]): float(r["value"]) for r in rows}
    for frame in (plain, other):
        for _, q in frame.iterrows():
            for item in ITEMS:
                assert q[item] == expected[(str(q["cycle_id"]), str(q["timepoint"]), item)]
    pd.testing.assert_frame_equal(
        registry.prom_scores(condition, engine=engine, catalog=turned), registry.prom_scores(condition, engine=engine)
    )


def _long_from_item_rows(engine, condition: str) -> pd.DataFrame:
    """The item rows of a revision 0007 database, as registry.prom_responses gave them, each with its
    questionnaire's latest date (what the migration keeps)."""
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT p.cycle_id, p.instrument, p.timepoint, p.item, p.value, p.completed_date FROM prom_responses p "
            "JOIN care_cycles c ON c.cycle_id = p.cycle_id WHERE c.condition = "
            + ("%(c)s" if engine.dialect.name == "postgresql" else ":c"),
            {"c": condition} if engine.dialect.name == "postgresql" else (condition,),
        ).all()
    frame = pd.DataFrame(rows, columns=["cycle_id", "instrument", "timepoint", "item", "value", "completed_date"])
    frame["completed_date"] = pd.to_datetime(frame["completed_date"])
    latest = frame.groupby(["cycle_id", "instrument", "timepoint"])["completed_date"].transform("max")
    frame["completed_date"] = latest
    kinds = registry._prom_dtypes()
    for column in ("instrument", "timepoint", "item"):
        frame[column] = frame[column].astype(kinds[column])
    frame["value"] = frame["value"].astype("float64")
    frame["cycle_id"] = frame["cycle_id"].astype("category")
    return frame


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    key = ["cycle_id", "instrument", "timepoint", "item"]
    out = frame.assign(_k=frame[key].astype(str).agg("|".join, axis=1)).sort_values("_k", kind="stable")
    out = out.drop(columns="_k").reset_index(drop=True)
    out["cycle_id"] = out["cycle_id"].astype(str)
    return out


def test_a_database_of_item_rows_migrates_without_changing_a_frame(engine, tmp_path, caplog):
    """A registry at revision 0007 (one row per answer) upgraded in place: the same answers, dates and scores;
    a questionnaire whose item rows disagree on the date keeps the latest (logged)."""
    result = generate_demo(tmp_path / "files", cycles=120, seed=11)
    import_files(result.import_order(), engine)
    config = alembic_config(engine)
    command.downgrade(config, "0007")  # the item rows as revision 0007 stored them
    with engine.begin() as conn:
        questionnaire, latest = conn.exec_driver_sql(
            "SELECT cycle_id, max(completed_date) FROM prom_responses GROUP BY cycle_id, instrument, timepoint "
            "ORDER BY cycle_id, instrument, timepoint LIMIT 1"
        ).one()
        first_id = conn.exec_driver_sql(
            "SELECT min(id) FROM prom_responses WHERE cycle_id = "
            + ("%(c)s" if engine.dialect.name == "postgresql" else ":c"),
            {"c": questionnaire} if engine.dialect.name == "postgresql" else (questionnaire,),
        ).scalar_one()
        conn.exec_driver_sql(  # one of its rows a year later: the questionnaire's latest date after the migration
            "UPDATE prom_responses SET completed_date = "
            + ("completed_date + 365" if engine.dialect.name == "postgresql" else "date(completed_date, '+365 days')")
            + f" WHERE id = {int(first_id)}"
        )
        item_rows = conn.exec_driver_sql("SELECT count(*) FROM prom_responses").scalar_one()
    conditions = list(default_catalog().conditions)
    before = {cond: _long_from_item_rows(engine, cond) for cond in conditions}
    with caplog.at_level(logging.WARNING):
        command.upgrade(config, "head")
    assert "1 PROM questionnaires' item rows had different completed dates: the latest is kept" in caplog.text
    assert row_counts(engine)["prom_responses"] == item_rows
    for cond in conditions:
        after = registry.prom_responses(cond, engine=engine)
        pd.testing.assert_frame_equal(_sorted(after), _sorted(before[cond]), check_categorical=False)
        scores = registry.prom_scores(cond, engine=engine)
        pd.testing.assert_frame_equal(scores, prom_scoring.score_responses(before[cond]), check_exact=True)
    with engine.connect() as conn:
        q = models.PromQuestionnaire
        dates = conn.execute(select(func.max(q.c.completed_date)).where(q.c.cycle_id == questionnaire)).scalar_one()
    assert str(dates) > str(latest)


def test_the_registry_reads_the_demo_files_answers(tmp_path):
    """registry.prom_responses gives back exactly the rows of the demo's PROM file, per condition."""
    from vbhc.store import get_engine, upgrade_schema

    result = generate_demo(tmp_path / "files", cycles=200, seed=5)
    engine = get_engine(f"sqlite:///{tmp_path / 'vbhc.db'}")
    upgrade_schema(engine)
    import_files(result.import_order(), engine)
    file = pd.read_csv(tmp_path / "files" / "prom_responses.csv", dtype=str)
    cycles_file = pd.read_csv(tmp_path / "files" / "care_cycles.csv", dtype=str)[["cycle_id", "condition"]]
    file = file.merge(cycles_file, on="cycle_id")
    # stored one row per questionnaire, every answer counted
    counts = row_counts(engine)
    assert counts["prom_questionnaires"] == len(file.drop_duplicates(["cycle_id", "instrument", "timepoint"]))
    assert counts["prom_responses"] == len(file)
    for condition, rows in file.groupby("condition"):
        got = registry.prom_responses(str(condition), engine=engine)
        want = rows.drop(columns="condition").assign(
            value=rows["value"].astype(float), completed_date=pd.to_datetime(rows["completed_date"])
        )
        assert len(got) == len(want)
        pd.testing.assert_frame_equal(
            _sorted(got).astype({c: str for c in ("instrument", "timepoint", "item")}),
            _sorted(want.reset_index(drop=True)),
            check_dtype=False,
        )
    engine.dispose()
    get_engine.cache_clear()
