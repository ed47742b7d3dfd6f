"""The registry's frames are the same whichever way the values travel: on PostgreSQL through COPY into Arrow
(vbhc.registry._copy_types, vbhc.store.copy_out) or in binary (vbhc.registry._binary_results), elsewhere (and for
a column type without an exact reading either way) as text."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pytest
from sqlalchemy import func, insert, select

from tests.registry_files import write_small_registry
from vbhc import models, registry, store
from vbhc.catalog import default_catalog
from vbhc.ingest import import_files

# text that CSV must quote or that a careless reader takes for missing; floats whose shortest text is long
AWKWARD_TEXT = ["", "a,b", 'say "x"', "two\nlines", "NA", "NULL", "\\N", "é 漢", " padded "]
AWKWARD_FLOATS = [0.1 + 0.2, 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, 123456789.123456789, 2.5e-10]


@pytest.fixture
def awkward(engine, tmp_path):
    """The small registry plus cycles whose text, numbers and missing values test the CSV round trip."""
    import_files(write_small_registry(tmp_path / "files"), engine)
    c, o, k = models.CareCycle.__table__, models.ClinicalOutcome.__table__, models.CostLine.__table__
    with engine.begin() as conn:
        batch = conn.execute(select(func.max(models.ImportBatch.__table__.c.id))).scalar_one()
        cycles, outcomes, lines = [], [], []
        for n, text in enumerate(AWKWARD_TEXT):
            cid = f"X{n:03d},{text}"
            value = AWKWARD_FLOATS[n % len(AWKWARD_FLOATS)]
            cycles.append(
                {
                    "cycle_id": cid,
                    "patient_id": f"P{text}",
                    "condition": "oesophageal_cancer",
                    "hospital": "H01",
                    "department": "SUR",
                    "index_date": dt.date(2023, 1, 1) + dt.timedelta(days=n),
                    "treatment": text,
                    "age": None if n % 2 else 60 + n,
                    "sex": None,  # a column all NULL
                    "bmi": None if n % 3 == 0 else {4: float("inf"), 5: float("-inf")}.get(n, value),
                    "stage": None if n % 2 else text,  # text, some of it missing
                    "batch_id": batch,
                }
            )
            outcomes.append({"cycle_id": cid, "outcome": "length_of_stay", "value": value, "batch_id": batch})
            outcomes.append(
                {
                    "cycle_id": cid,
                    "outcome": "mortality_30d",
                    "value": float(n % 2),
                    "date": None if n % 2 else dt.date(2023, 2, 1),
                    "batch_id": batch,
                }
            )
            lines.append({"cycle_id": cid, "activity": "ok", "quantity": value, "unit_cost": 1 / 7, "batch_id": batch})
        conn.execute(insert(c), cycles)
        conn.execute(insert(o), outcomes)
        conn.execute(insert(k), lines)
    return engine


def _frames(engine) -> dict[str, pd.DataFrame]:
    oeso, hip = "oesophageal_cancer", "hip_osteoarthritis"
    return {
        "care_cycles": registry.care_cycles(oeso, engine=engine),
        "all care_cycles": registry.care_cycles(engine=engine),
        "clinical_outcomes": registry.clinical_outcomes(oeso, engine=engine),
        "outcomes_wide": registry.outcomes_wide(oeso, engine=engine),
        "filtered": registry.outcomes_wide(oeso, hospitals=["H01"], period="2023", engine=engine),
        "none": registry.outcomes_wide(oeso, period="2019", engine=engine),
        "prom_responses": registry.prom_responses(hip, engine=engine),
        "prom_questionnaires": registry.prom_questionnaires(hip, "eq5d5l", engine=engine),
        "prom_scores": registry.prom_scores(hip, engine=engine),
        "cost_lines": registry.cost_lines(oeso, engine=engine),
        "units": registry.units(engine=engine),
        "condition_volumes": registry.condition_volumes(engine=engine),
        "condition_unit_years": registry.condition_unit_years(oeso, engine=engine),
        "import_batches": registry.import_batches(engine=engine),
    }


@pytest.mark.parametrize("rows_per_batch", [250_000, 4])
def test_every_frame_is_the_text_cursors(awkward, monkeypatch, rows_per_batch):
    """Each frame equals, dtypes and values to the bit, the one read as text rows, whether read through COPY or
    in binary (batches of 4 rows too: a batch's column all NULL, the transforms per batch)."""
    monkeypatch.setattr(registry, "_FETCH_ROWS", rows_per_batch)
    paths = []
    copy_types, binary = registry._copy_types, registry._binary_results

    def noted(path, decide):
        def decided(*args):
            found = decide(*args)
            paths.append(path if found else None)
            return found

        return decided

    monkeypatch.setattr(registry, "_copy_types", noted("copy", copy_types))
    monkeypatch.setattr(registry, "_binary_results", noted("binary", binary))
    got = _frames(awkward)
    copied = paths.count("copy")
    monkeypatch.setattr(registry, "_copy_types", lambda *args: None)
    paths.clear()
    in_binary = _frames(awkward)
    if awkward.dialect.name == "postgresql":
        assert copied >= 10 and paths.count("binary") >= 10, paths  # the heavy reads took either way
    else:
        assert not copied and "binary" not in paths
    monkeypatch.setattr(registry, "_binary_results", lambda *args: False)
    expected = _frames(awkward)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=f"{name} (COPY)")
        pd.testing.assert_frame_equal(in_binary[name], frame, check_exact=True, obj=f"{name} (binary)")
    treatments = got["care_cycles"].set_index("cycle_id")["treatment"]
    assert [treatments[f"X{n:03d},{text}"] for n, text in enumerate(AWKWARD_TEXT)] == AWKWARD_TEXT
    stays = got["outcomes_wide"].set_index("cycle_id")["length_of_stay"]
    floats = [AWKWARD_FLOATS[n % len(AWKWARD_FLOATS)] for n in range(len(AWKWARD_TEXT))]
    assert [stays[f"X{n:03d},{text}"] for n, text in enumerate(AWKWARD_TEXT)] == floats
    stages = got["all care_cycles"].set_index("cycle_id")["stage"]
    assert [stages[f"X{n:03d},{text}"] for n, text in enumerate(AWKWARD_TEXT) if n % 2 == 0] == AWKWARD_TEXT[::2]
    assert stages[[f"X{n:03d},{text}" for n, text in enumerate(AWKWARD_TEXT) if n % 2]].isna().all()


def _every_condition(engine) -> dict[str, pd.DataFrame]:
    """Each condition's frames the indicator tables read, then a filtered one (never cut from a shared read)."""
    frames = {}
    for condition, cond in default_catalog().conditions.items():
        frames[f"{condition} outcomes"] = registry.clinical_outcomes(condition, engine=engine)
        frames[f"{condition} wide"] = registry.outcomes_wide(condition, engine=engine)
        for use in cond.proms:
            frames[f"{condition} {use.instrument}"] = registry.prom_questionnaires(
                condition, use.instrument, engine=engine
            )
        frames[f"{condition} scores"] = registry.prom_scores(condition, engine=engine)
        frames[f"{condition} costs"] = registry.cost_lines(condition, engine=engine)
        frames[f"{condition} H01"] = registry.cost_lines(condition, hospitals=["H01"], engine=engine)
    return frames


@pytest.mark.parametrize("rows_per_batch", [250_000, 4])
def test_shared_reads_give_each_conditions_own_frames(awkward, monkeypatch, rows_per_batch):
    """Inside registry.shared_reads every condition's frames are the ones it reads on its own (dtypes and values to
    the bit, awkward values, conditions without rows, a condition read twice), while on PostgreSQL each child query
    is read once for all conditions instead of once per condition."""
    monkeypatch.setattr(registry, "_FETCH_ROWS", rows_per_batch)
    expected = _every_condition(awkward)
    copies = []
    copy_out = store.copy_out

    def counted(conn, query, types):
        copies.append(registry._CONDITION in types)
        return copy_out(conn, query, types)

    monkeypatch.setattr(store, "copy_out", counted)
    with registry.shared_reads(awkward):
        got = _every_condition(awkward)
        again = registry.cost_lines("oesophageal_cancer", engine=awkward)  # handed out already: read on its own
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)
    pd.testing.assert_frame_equal(again, expected["oesophageal_cancer costs"], check_exact=True)
    if awkward.dialect.name == "postgresql":
        instruments = {use.instrument for cond in default_catalog().conditions.values() for use in cond.proms}
        assert copies.count(True) == 2 + len(instruments), copies  # outcomes, cost lines, one per instrument
    else:
        assert not copies


def test_a_read_on_postgresql_has_the_read_settings_for_its_transaction_only(awkward, monkeypatch):
    """Each COPY of a condition's registry read runs with registry.READ_SETTINGS (its cycles hashed in memory, not
    in batches on disk with every probing row of the child table; no JIT compilation), and the settings end with
    the read's transaction: the pooled connection gives the next user the server's own. A shared_reads scope's
    read of every condition keeps the server's own."""
    if awkward.dialect.name != "postgresql":
        pytest.skip("PostgreSQL settings")
    names = sorted(registry.READ_SETTINGS)
    seen = []
    copy_out = store.copy_out

    def show(conn) -> dict[str, str]:
        return {name: conn.exec_driver_sql(f"SHOW {name}").scalar_one() for name in names}

    def noted(conn, query, types):
        seen.append(show(conn))
        return copy_out(conn, query, types)

    monkeypatch.setattr(store, "copy_out", noted)
    with awkward.connect() as conn:
        default = show(conn)
    assert all(default[name] != registry.READ_SETTINGS[name] for name in names), default
    registry.prom_scores("hip_osteoarthritis", engine=awkward)
    registry.outcomes_wide("oesophageal_cancer", engine=awkward)
    assert len(seen) >= 3 and all(s == registry.READ_SETTINGS for s in seen), seen
    seen.clear()
    with registry.shared_reads(awkward):  # its read of every condition keeps the server's own
        registry.cost_lines("oesophageal_cancer", engine=awkward)
    assert seen == [default]
    with awkward.connect() as conn:
        assert show(conn) == default


@pytest.mark.parametrize("chunk_bytes", [None, 64])
def test_spilled_shared_reads_give_each_conditions_own_frames(awkward, monkeypatch, tmp_path, chunk_bytes):
    """Above SHARED_READ_MAX_CYCLES a shared_reads scope spills each child query of every condition to a file per
    condition (COPY read in chunks: of 64 bytes too, so rows with quoted newlines straddle chunks) and hands each
    condition the frames it reads on its own (dtypes and values to the bit), each child query read once; the files
    are gone when the scope ends."""
    if awkward.dialect.name != "postgresql":
        pytest.skip("shared reads are PostgreSQL's")
    expected = _every_condition(awkward)
    monkeypatch.setattr(registry, "SHARED_READ_MAX_CYCLES", 0)
    if chunk_bytes:
        monkeypatch.setattr(store, "COPY_CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    chunks, reads = [], []
    copy_out_chunks = store.copy_out_chunks

    def counted(conn, query, types, *args):
        reads.append(registry._CONDITION in types)
        for chunk in copy_out_chunks(conn, query, types, *args):
            chunks.append(chunk.num_rows)
            yield chunk

    monkeypatch.setattr(store, "copy_out_chunks", counted)
    with registry.shared_reads(awkward):
        spilled = [p for p in tmp_path.iterdir() if p.name.startswith("vbhc-shared-reads-")]
        got = _every_condition(awkward)
        assert len(spilled) == 1 and spilled[0].is_dir()
        assert not list(spilled[0].iterdir())  # every condition's file read back and deleted
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, check_exact=True, obj=name)
    assert not spilled[0].exists()
    if chunk_bytes:
        assert len(chunks) > 20 and all(chunks), chunks  # many chunks, each of whole rows
    else:
        instruments = {use.instrument for cond in default_catalog().conditions.values() for use in cond.proms}
        assert reads == [True] * (2 + len(instruments))  # outcomes, cost lines, one per instrument: each read once


def test_spilled_files_are_removed_when_a_condition_raises(awkward, monkeypatch, tmp_path):
    """The spill folder goes with the shared_reads scope also when the work inside it raises, the files of the
    conditions not yet read with it."""
    if awkward.dialect.name != "postgresql":
        pytest.skip("shared reads are PostgreSQL's")
    monkeypatch.setattr(registry, "SHARED_READ_MAX_CYCLES", 0)
    spill = tmp_path / "spill"
    spill.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(spill))
    with pytest.raises(ZeroDivisionError), registry.shared_reads(awkward):
        registry.cost_lines("oesophageal_cancer", engine=awkward)
        (folder,) = spill.iterdir()
        assert list(folder.iterdir())  # the other conditions' cost lines, waiting
        _ = 1 / 0
    assert not list(spill.iterdir())


@pytest.mark.parametrize("chunk_bytes", [1, 7, 64, 1 << 20])
def test_copy_out_chunks_are_copy_outs_rows(awkward, chunk_bytes):
    """COPY's rows read in chunks of whole rows (a chunk cut only at a newline outside quotes) are copy_out's:
    the same rows, values and order, whatever the chunk size."""
    if awkward.dialect.name != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    c = models.CareCycle
    query = select(c.cycle_id, c.treatment, c.bmi, c.stage, c.index_date).order_by(c.cycle_id)
    types = {"cycle_id": pa.string(), "treatment": pa.string(), "bmi": pa.float64(), "stage": pa.string()}
    types["index_date"] = pa.date32()
    with awkward.connect() as conn:
        whole = store.copy_out(conn, query, types)
        chunks = list(store.copy_out_chunks(conn, query, types, chunk_bytes))
    assert len(chunks) > (1 if chunk_bytes < 1 << 20 else 0)
    assert pa.concat_tables(chunks).equals(whole)
    assert "two\nlines" in whole.column("treatment").to_pylist()
