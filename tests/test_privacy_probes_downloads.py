"""Privacy probes of the files a viewer takes away, by role, called in vbhc directly: `vbhc.reports.make_report`
asked for by a signed-in viewer (the API a scheduled or dashboard run calls with a Viewer) lists on its cover the
import batches of the data that viewer reads only, as the pages' buttons do (vbhc.access.provenance_for); the
audit log is read by the quality directorate only. Registry of tests.test_privacy_provenance."""

from __future__ import annotations

import pytest

from tests.test_privacy_provenance import (
    ADMIN,
    CARE,
    CARE_H01,
    H02_BY,
    H02_FILE,
    HIP_BY,
    HIP_FILE,
    MANAGER,
    OWN,
    QUALITY,
    _pdf_text,
    _text,
    registry,  # noqa: F401 (the fixture)
)
from vbhc import access


def _report(engine, tmp_path, viewer, fmt: str, **kw) -> str:
    from vbhc.reports import make_report

    path = make_report(
        tmp_path / f"report.{fmt}", fmt=fmt, conditions=[OWN], engine=engine, actor=viewer, external=False, **kw
    )
    content = path.read_bytes()
    return _pdf_text(content) if fmt == "pdf" else _text(content)


@pytest.mark.parametrize("fmt", ["xlsx", "pdf"])
def test_make_report_for_a_care_team_of_one_hospital_names_no_other_hospitals_files(registry, tmp_path, fmt):  # noqa: F811
    """make_report with a Viewer as actor listed every import batch on the cover (vbhc.reports.core.provenance
    whole): a care team limited to H01 got H02's file name and importer, and the hip file of another condition."""
    unit = {"unit": "H01"} if fmt == "pdf" else {}
    shown = _report(registry, tmp_path, CARE_H01, fmt, **unit)
    assert "care_cycles.csv" in shown  # the provenance is there
    for secret in (H02_FILE, HIP_FILE, *((H02_BY, HIP_BY) if fmt == "xlsx" else ())):
        assert secret not in shown, secret


def test_make_report_for_a_care_team_names_no_other_conditions_files(registry, tmp_path):  # noqa: F811
    shown = _report(registry, tmp_path, CARE, "xlsx")
    assert H02_FILE in shown  # its own condition's batches, every hospital (it reads them)
    assert HIP_FILE not in shown and HIP_BY not in shown


def test_make_report_by_name_and_for_quality_lists_every_batch(registry, tmp_path):  # noqa: F811
    """The command line (a name: the quality directorate's tool) and a quality viewer keep the whole list."""
    for who in (QUALITY, "registry-operator"):
        shown = _report(registry, tmp_path, who, "xlsx")
        assert H02_FILE in shown and HIP_FILE in shown


@pytest.mark.parametrize("viewer", [MANAGER, ADMIN], ids=["manager", "admin"])
def test_make_report_refuses_a_viewer_without_export(registry, tmp_path, viewer):  # noqa: F811
    with pytest.raises(access.AccessDenied):
        _report(registry, tmp_path, viewer, "xlsx")


@pytest.mark.parametrize("viewer", [CARE, CARE_H01, MANAGER, ADMIN], ids=["care", "care_h01", "manager", "admin"])
def test_only_quality_reads_the_audit_log_of_imports_and_peoples_addresses(registry, viewer):  # noqa: F811
    """The log names importers (H02_BY) and every viewer's e-mail address: no role but quality reads it."""
    with pytest.raises(access.AccessDenied):
        access.read_audit(viewer, registry)
    log = access.read_audit(QUALITY, registry)
    assert len(log)
