"""The import batches a file lists on its cover (workbook, PDF, explanation sheet): per viewer only the batches of
data the viewer reads. A care team limited to H01 was given every other hospital's file names, importers (people)
and row counts, and a care team every other condition's (the cover listed vbhc.registry.import_batches whole)."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.registry_files import outcomes, write_csv, write_small_registry
from vbhc import access
from vbhc.access import Role, Scope, Viewer

OWN, OUT = "oesophageal_cancer", "hip_osteoarthritis"
H02_FILE, H02_BY = "h02-secret-outcomes.csv", "someone@h02.example"
HIP_FILE, HIP_BY = "hip-secret-outcomes.csv", "someone@hip.example"

CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({OWN})),))
CARE_H01 = Viewer("care-h01@example.org", "Care H01", (Scope(Role.CARE_TEAM, frozenset({OWN}), frozenset({"H01"})),))
MANAGER = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, frozenset({OWN}), frozenset({"H01"})),))
ADMIN = Viewer("admin@example.org", "Admin", (Scope(Role.ADMIN),))
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """The small registry, then one file of H02's oesophageal outcomes and one of hip outcomes, each imported by
    someone else (their rows now point at those batches)."""
    from vbhc.ingest import import_files
    from vbhc.store import get_engine, upgrade_schema

    url = f"sqlite:///{tmp_path / 'vbhc.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    get_engine.cache_clear()
    engine = get_engine(url)
    upgrade_schema(engine)
    import_files(write_small_registry(tmp_path / "files"), engine, imported_by="registry@example.org")
    rows = outcomes()
    h02 = [dict(r, value="13") for r in rows if r["outcome"] == "length_of_stay" and int(r["cycle_id"][-2:]) % 2 == 0]
    hip = [dict(r, value="1") for r in rows if r["outcome"] == "revision_1y"]
    import_files([write_csv(tmp_path / H02_FILE, h02)], engine, imported_by=H02_BY)
    import_files([write_csv(tmp_path / HIP_FILE, hip)], engine, imported_by=HIP_BY)
    yield engine
    get_engine.cache_clear()


def _listed(engine, viewer: Viewer) -> set[str]:
    from vbhc.registry import batch_reach, import_batches

    batches = access.provenance_for(viewer, [OWN], import_batches(engine), batch_reach(engine))
    return set(batches["file_name"])


def test_a_file_lists_the_batches_of_the_data_its_viewer_reads(registry):
    """Quality every batch; a care team its condition's (not the hip file); a care team limited to H01 neither
    H02's file nor the hip file, but the shared files holding H01's rows; a manager and an admin none."""
    everything = _listed(registry, QUALITY)
    assert {H02_FILE, HIP_FILE, "care_cycles.csv", "units.csv"} <= everything
    assert _listed(registry, CARE) == everything - {HIP_FILE}
    limited = _listed(registry, CARE_H01)
    assert H02_FILE not in limited and HIP_FILE not in limited
    assert {"care_cycles.csv", "units.csv", "clinical_outcomes.csv"} <= limited
    assert _listed(registry, MANAGER) == set() and _listed(registry, ADMIN) == set()


def _text(content: bytes) -> str:
    if content[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(content)) as z:
            return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
    return content.decode("latin-1")


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages).replace("\n", "")


def test_the_pages_workbook_and_pdf_name_no_other_hospitals_files_or_importers(registry):
    """The Excel and PDF buttons (ui.render.report_workbook/report_pdf) as a care team limited to H01: the cover,
    the explanation sheet and the PDF's provenance list H01's data's batches only. Before, H02's file name and
    importer (and the hip file's) were on the cover."""
    from ui import render
    from vbhc.indicators import indicator_table

    result = indicator_table(OWN, "hospital", engine=registry)
    workbook = _text(render.report_workbook(CARE_H01, [result], "en"))
    assert "care_cycles.csv" in workbook  # the provenance table is there
    for secret in (H02_FILE, H02_BY, HIP_FILE, HIP_BY):
        assert secret not in workbook
    pdf = _pdf_text(render.report_pdf(CARE_H01, result, "H01", "en"))
    assert "care_cycles.csv" in pdf
    for secret in (H02_FILE, HIP_FILE):
        assert secret not in pdf
    quality = _text(render.report_workbook(QUALITY, [result], "en"))
    assert H02_FILE in quality and HIP_FILE in quality


def test_the_batch_reach_names_each_batchs_conditions_and_hospitals(registry):
    from vbhc.registry import batch_reach, import_batches

    ids = import_batches(registry).set_index("file_name")["id"]
    reach = batch_reach(registry)
    h02 = reach[reach["batch_id"] == ids[H02_FILE]]
    assert set(zip(h02["condition"], h02["hospital"], strict=True)) == {(OWN, "H02")}
    units = reach[reach["batch_id"] == ids["units.csv"]]
    assert units["condition"].isna().all() and set(units["hospital"]) == {"H01", "H02"}
