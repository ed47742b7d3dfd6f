"""Impossible timelines: nothing of a care cycle is dated after its recorded death (the vital status a survival
indicator follows, value 1 with the date of death). The importer refuses such a row with a one-line problem naming
file, row, column, value and the death date, whether the death is in the same import or already stored, on every
path a file takes (CSV, XLSX, `vbhc import`, the data page's upload), and a refusal changes no stored row."""

from __future__ import annotations

import csv

import pytest
from openpyxl import Workbook

from tests.registry_files import outcomes, proms, write_csv, write_small_registry
from vbhc.access import Role, Scope, Viewer, guarded_import
from vbhc.cli import main
from vbhc.ingest import ImportRefused, import_files
from vbhc.store import get_engine, row_counts

ADMIN = Viewer("beheer@example.org", "Beheer", (Scope(Role.ADMIN),))
#: C0001: oesophageal cancer (a survival indicator follows "death"), index date 2024-02-15; its 12-month PROM
#: answers are dated 2025-06-01 in the small registry
DEAD = "C0001"
DIED = "2024-11-02"
AFTER_DEATH_RULE = f"dated after the death recorded for its care cycle ({DIED})"


def _files(folder, death: str = DIED, extra_outcomes: list[dict[str, str]] = ()):
    """The small registry with C0001's vital status: died on `death`."""
    files = write_small_registry(folder)
    rows = [*outcomes(), {"cycle_id": DEAD, "outcome": "death", "value": "1", "date": death}, *extra_outcomes]
    write_csv(files[2], rows)
    return files


def _prom_rows(path) -> list[int]:
    """Row numbers (as a person sees them) of C0001's follow-up answers in the PROM file."""
    with path.open(encoding="utf-8") as fh:
        return [
            n for n, r in enumerate(csv.DictReader(fh), start=2) if r["cycle_id"] == DEAD and r["timepoint"] == "12m"
        ]


def _after_death(report) -> list[tuple]:
    return [(p.file, p.row, p.column, p.value) for p in report.problems if AFTER_DEATH_RULE in p.rule]


def test_a_prom_after_the_death_in_the_same_import_is_refused_and_nothing_is_stored(engine, tmp_path):
    files = _files(tmp_path / "files")
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as info:
        import_files(files, engine)
    rows = _prom_rows(files[3])
    assert len(rows) == 6
    assert _after_death(info.value.report) == [("prom_responses.csv", r, "completed_date", "2025-06-01") for r in rows]
    assert len(info.value.report.problems) == 6, [p.rule for p in info.value.report.problems]
    assert row_counts(engine) == before, "a refusal changes no row"


def test_a_prom_after_a_stored_death_is_refused_and_nothing_is_stored(engine, tmp_path):
    files = _files(tmp_path / "files")
    import_files(files[:3], engine)
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as info:
        import_files(files[3:], engine)
    assert [r for _, r, _, _ in _after_death(info.value.report)] == _prom_rows(files[3])
    assert row_counts(engine) == before


def test_an_outcome_after_the_death_is_refused_in_the_same_file_and_against_a_stored_death(engine, tmp_path):
    leak = {"cycle_id": DEAD, "outcome": "anastomotic_leak", "value": "1", "date": "2025-01-10"}
    files = _files(tmp_path / "files", extra_outcomes=[leak])
    with pytest.raises(ImportRefused) as info:
        import_files(files[:3], engine)
    row = len(outcomes()) + 3  # header, the rows, the death, then the leak
    assert _after_death(info.value.report) == [("clinical_outcomes.csv", row, "date", "2025-01-10")]
    assert row_counts(engine)["clinical_outcomes"] == 0

    stored = _files(tmp_path / "stored")
    import_files(stored[:3], engine)
    before = row_counts(engine)
    later = write_csv(tmp_path / "later_outcomes.csv", [leak])
    with pytest.raises(ImportRefused) as info:
        import_files([later], engine)
    assert _after_death(info.value.report) == [("later_outcomes.csv", 2, "date", "2025-01-10")]
    assert row_counts(engine) == before


def test_the_day_of_death_and_a_corrected_vital_status_are_accepted(engine, tmp_path):
    """Dates are days: a questionnaire or outcome on the day of death is allowed. A vital status corrected to
    "alive" in the same import replaces the stored death (as the upsert does), so the answers after it are kept."""
    files = _files(tmp_path / "same_day", death="2025-06-01")
    import_files(files, engine)
    assert row_counts(engine)["prom_responses"] == len(proms())

    alive = write_csv(
        tmp_path / "alive.csv", [{"cycle_id": DEAD, "outcome": "death", "value": "0", "date": "2026-01-01"}]
    )
    late = write_csv(tmp_path / "late.csv", [{**r, "completed_date": "2025-12-01"} for r in proms()])
    import_files([alive, late], engine)


def test_an_xlsx_workbook_with_a_prom_after_the_death_is_refused(engine, tmp_path):
    files = _files(tmp_path / "files")
    wb = Workbook()
    wb.remove(wb.active)
    for path, sheet in zip(files[:4], ("units", "care_cycles", "clinical_outcomes", "prom_responses"), strict=True):
        ws = wb.create_sheet(sheet)
        with path.open(encoding="utf-8") as fh:
            for row in csv.reader(fh):
                ws.append(row)
    book = tmp_path / "registry.xlsx"
    wb.save(book)
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as info:
        import_files([book], engine)
    found = [
        (p.file, p.sheet, p.row, p.column, p.value) for p in info.value.report.problems if AFTER_DEATH_RULE in p.rule
    ]
    rows = _prom_rows(files[3])
    assert found == [("registry.xlsx", "prom_responses", r, "completed_date", "2025-06-01") for r in rows]
    assert row_counts(engine) == before


def test_the_upload_of_the_data_page_refuses_a_prom_after_the_death(engine, tmp_path):
    files = _files(tmp_path / "files")
    before = row_counts(engine)
    with pytest.raises(ImportRefused) as info:
        guarded_import(ADMIN, files, engine)
    assert len(_after_death(info.value.report)) == 6
    assert row_counts(engine) == before


def test_the_command_line_refuses_a_prom_after_the_death(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    get_engine.cache_clear()
    try:
        files = _files(tmp_path / "files")
        assert main(["import", "--no-precompute", *map(str, files)]) == 2
        err = capsys.readouterr().err
        row = _prom_rows(files[3])[0]
        assert (
            f"prom_responses.csv row {row} column 'completed_date'" in err
            and AFTER_DEATH_RULE in err
            and "2025-06-01" in err
        )
        assert sum(row_counts(get_engine(url)).values()) == 0
    finally:
        get_engine.cache_clear()
