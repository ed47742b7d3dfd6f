"""Import: validation with exact locations, all-or-nothing batches, idempotent re-import (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy import select

from tests.backends import sqlite_only
from tests.registry_files import CYCLE_COLUMNS, cycles, write_csv, write_small_registry, write_units
from vbhc import ingest, models
from vbhc.catalog import load_catalog
from vbhc.ingest import ImportRefused, import_files, prom_store
from vbhc.settings import catalog_dir
from vbhc.store import row_counts


def _rewrite(path: Path, row_index: int, column: str, value: str) -> None:
    """Set one cell of a CSV (row_index counts data rows from 0)."""
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    rows[row_index][column] = value
    write_csv(path, rows, list(rows[0]))


def _refused(files, engine, **kw) -> ingest.ImportReport:
    with pytest.raises(ImportRefused) as info:
        import_files(files, engine, **kw)
    return info.value.report


@pytest.fixture
def registry(tmp_path) -> list[Path]:
    return write_small_registry(tmp_path / "files")


def test_valid_registry_imports_and_reimport_adds_nothing(engine, registry):
    report = import_files(registry, engine, imported_by="tester")
    assert report.ok
    counts = row_counts(engine)
    assert counts["care_cycles"] == 12
    assert counts["clinical_outcomes"] == 18
    assert counts["prom_responses"] == 144
    assert counts["cost_lines"] == 24
    assert counts["hospitals"] == 2 and counts["departments"] == 4
    assert counts["import_batches"] == 5

    # the same files again: recognised by content and skipped
    again = import_files(registry, engine)
    assert all(s.skipped_reason for s in again.sources)
    assert row_counts(engine) == counts

    # forced: every row is re-checked, found identical, nothing is added (not even a batch row)
    forced = import_files(registry, engine, force=True)
    assert [s.rows_inserted for s in forced.sources] == [0] * 5
    assert [s.rows_unchanged for s in forced.sources] == [4, 12, 18, 144, 24]
    assert row_counts(engine) == counts


def test_changed_row_is_updated_not_duplicated(engine, registry):
    import_files(registry, engine)
    outcomes = registry[2]
    _rewrite(outcomes, 3, "value", "30")  # C0002 length_of_stay 12 -> 30
    report = import_files([outcomes], engine)
    src = report.sources[0]
    assert (src.rows_inserted, src.rows_updated, src.rows_unchanged) == (0, 1, 17)
    with engine.connect() as conn:
        value, batch = conn.execute(
            select(models.ClinicalOutcome.value, models.ClinicalOutcome.batch_id).where(
                models.ClinicalOutcome.cycle_id == "C0002", models.ClinicalOutcome.outcome == "length_of_stay"
            )
        ).one()
        last_batch = conn.execute(select(models.ImportBatch.id).order_by(models.ImportBatch.id.desc())).scalar()
    assert value == 30 and batch == last_batch
    assert row_counts(engine)["clinical_outcomes"] == 18


def test_import_batch_records_provenance(engine, registry):
    import_files(registry[:2], engine, imported_by="kwaliteit")
    with engine.connect() as conn:
        rows = conn.execute(select(models.ImportBatch).order_by(models.ImportBatch.id)).all()
    assert [r.table_name for r in rows] == ["units", "care_cycles"]
    assert rows[1].file_name == "care_cycles.csv"
    assert rows[1].rows_read == rows[1].rows_inserted == 12
    assert rows[1].imported_by == "kwaliteit"
    import hashlib

    assert rows[1].sha256 == hashlib.sha256(registry[1].read_bytes()).hexdigest()


BAD_CELLS = [
    # (file index, data row, column, value, expected words in the rule)
    (1, 2, "age", "abc", "not a number"),
    (1, 3, "age", "130", "outside the allowed range"),
    (1, 0, "condition", "unknown_disease", "unknown condition"),
    (1, 4, "index_date", "31-12-2023", "YYYY-MM-DD"),
    (1, 1, "stage", "V", "unknown code for stage"),
    (1, 7, "stage", "II", "not a case-mix variable of hip_osteoarthritis"),
    (1, 5, "department", "XXX", "unknown hospital/department"),
    (1, 6, "patient_id", "123456782", "looks like a BSN"),
    (2, 0, "value", "2", "expected 0 or 1"),
    (2, 1, "outcome", "revision_1y", "not an outcome of oesophageal_cancer"),
    (2, 3, "cycle_id", "C9999", "unknown cycle_id"),
    (3, 0, "value", "7", "eq5d5l item MO must be a whole number from 1 to 5"),
    (3, 5, "value", "101", "eq5d5l item VAS must be a whole number from 0 to 100"),
    (3, 2, "item", "XX", "not an item of eq5d5l"),
    (3, 4, "instrument", "oxford_hip", "not a PROM instrument of oesophageal_cancer"),
    (3, 1, "timepoint", "24m", "not collected at this timepoint"),
    (4, 0, "quantity", "-1", "must be 0 or more"),
    (4, 1, "activity", "helicopter", "not a cost activity"),
    (1, 8, "cycle_id", '=HYPERLINK("http://x")', "formula"),
]


#: rules checked against rows already stored (units, care cycles): on PostgreSQL too; the other rules are checked
#: while the file is read, the same on every backend (tests/backends.py)
STORED_ROW_RULES = ("unknown hospital/department", "unknown cycle_id")


@pytest.mark.parametrize(
    ("engine", "file_index", "row", "column", "value", "rule"),
    [
        pytest.param(backend, *case, marks=[pytest.mark.postgres] if backend == "postgres" else [])
        for case in BAD_CELLS
        for backend in (("sqlite", "postgres") if case[4] in STORED_ROW_RULES else ("sqlite",))
    ],
    indirect=["engine"],
)
def test_bad_value_is_refused_with_its_location(engine, registry, file_index, row, column, value, rule):
    import_files(registry[:1], engine)  # the units are already there
    before = row_counts(engine)
    _rewrite(registry[file_index], row, column, value)
    report = _refused(registry, engine)
    # patient identifiers are masked in problems (ingest.shown_value); every other value is shown as given
    match = [p for p in report.problems if p.column == column and p.value == ingest.shown_value(column, value)]
    assert match, report.summary()
    problem = match[0]
    assert problem.file == registry[file_index].name
    assert problem.row == row + 2  # header is row 1
    assert rule in problem.rule
    assert row_counts(engine) == before


@sqlite_only
def test_identifier_columns_are_refused(engine, registry):
    rows = cycles()
    for r in rows:
        r["bsn"] = "123456782"
        r["Date_of_Birth"] = "1950-01-01"
    write_csv(registry[1], rows, [*CYCLE_COLUMNS, "bsn", "Date_of_Birth"])
    report = _refused(registry, engine)
    flagged = {p.column for p in report.problems if "direct patient identifier" in p.rule}
    assert flagged == {"bsn", "Date_of_Birth"}  # as written in the file
    assert row_counts(engine)["care_cycles"] == 0


@sqlite_only
def test_missing_and_unknown_columns(engine, registry):
    rows = [{k: v for k, v in r.items() if k != "index_date"} | {"colour": "red"} for r in cycles()]
    write_csv(registry[1], rows)
    report = _refused(registry, engine)
    rules = {(p.column, p.rule.split(" (")[0]) for p in report.problems}
    assert ("index_date", "required column missing from care_cycles") in rules
    assert ("colour", "unknown column for care_cycles") in rules


def test_duplicate_keys_within_and_across_chunks(engine, registry):
    rows = cycles()
    rows.append(dict(rows[1]))
    write_csv(registry[1], rows, CYCLE_COLUMNS)
    report = _refused(registry, engine, chunk_rows=5)  # the duplicate sits in another chunk than the original
    dup = [p for p in report.problems if "duplicate key" in p.rule]
    assert len(dup) == 1
    assert dup[0].row == 14 and "row 3" in dup[0].rule and dup[0].value == "C0002"


def test_one_bad_file_rolls_back_the_whole_batch(engine, registry):
    _rewrite(registry[4], 3, "unit_cost", "twelve")
    report = _refused(registry, engine)
    assert report.problem_count == 1
    assert row_counts(engine) == dict.fromkeys(row_counts(engine), 0)


@pytest.mark.parametrize("writer", ["prom_store.upsert", "Packer.finish", "insert_directly"])
def test_failure_while_writing_leaves_nothing_behind(engine, registry, monkeypatch, writer):
    """A failure after the PROM questionnaires are written (on a first import the packed questionnaires' direct
    write, whose last one Packer.finish writes), or on the direct path of a first import (insert_directly of the
    costs, after the PROMs; on PostgreSQL inside the file's savepoint), rolls back the whole batch."""
    import_files(registry[:2], engine)
    before = row_counts(engine)
    calls = []
    if writer == "prom_store.upsert":
        real_upsert = prom_store.upsert

        def explode_upsert(*args, **options):
            real_upsert(*args, **options)  # the questionnaires are written, then the write fails
            calls.append("prom_responses")
            raise RuntimeError("disk full")

        monkeypatch.setattr(prom_store, "upsert", explode_upsert)
    elif writer == "Packer.finish":
        real_finish = prom_store.Packer.finish

        def explode_finish(packer):
            real_finish(packer)  # every questionnaire is written (or staged), then the write fails
            calls.append("prom_responses")
            raise RuntimeError("disk full")

        monkeypatch.setattr(prom_store.Packer, "finish", explode_finish)
    else:
        real = ingest.stage.insert_directly

        def explode(conn, spec, *rest, **options):
            result = real(conn, spec, *rest, **options)
            if spec.name == "costs":
                calls.append(spec.name)
                raise RuntimeError("disk full")
            return result

        monkeypatch.setattr(ingest.stage, "insert_directly", explode)
    # a first import takes the direct paths on both databases: its PROM questionnaires are written, not upserted
    if not {"prom_store.upsert": False, "Packer.finish": True, "insert_directly": True}[writer]:
        import_files(registry[2:], engine)
        assert not calls
        return
    with pytest.raises(RuntimeError, match="disk full"):
        import_files(registry[2:], engine)
    assert calls
    assert row_counts(engine) == before


def test_problems_beyond_fifty_are_counted(engine, registry):
    rows = cycles() * 1
    many = []
    for i in range(80):
        r = dict(rows[i % len(rows)])
        r["cycle_id"] = f"X{i:03d}"
        r["age"] = "old"
        many.append(r)
    write_csv(registry[1], many, CYCLE_COLUMNS)
    report = _refused(registry[:2], engine)
    assert report.problem_count == 80
    assert len(report.problems) == 50
    assert "and 30 more problem(s)" in report.summary()


def test_chunked_import_gives_the_same_rows_and_row_numbers(engine, registry):
    _rewrite(registry[3], 100, "value", "9")
    report = _refused(registry, engine, chunk_rows=7)
    assert [p.row for p in report.problems] == [102]
    _rewrite(registry[3], 100, "value", "1")
    import_files(registry, engine, chunk_rows=7)
    assert row_counts(engine)["prom_responses"] == 144


def test_xlsx_sheets_import_and_bad_cell_names_the_sheet(engine, registry, tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.title = "units"
    with registry[0].open(encoding="utf-8") as fh:
        for row in csv.reader(fh):
            ws.append(row)
    ws2 = wb.create_sheet("care_cycles")
    with registry[1].open(encoding="utf-8") as fh:
        for i, row in enumerate(csv.reader(fh)):
            ws2.append([int(v) if (i and v.isdigit() and len(v) < 4) else v for v in row])
    path = tmp_path / "registry.xlsx"
    wb.save(path)
    import_files([path], engine)
    assert row_counts(engine)["care_cycles"] == 12

    ws2.cell(row=5, column=CYCLE_COLUMNS.index("asa") + 1, value=9)
    ws2.cell(row=5, column=1, value="C0100")  # a new cycle, so the file is not skipped as already imported
    wb.save(path)
    report = _refused([path], engine)
    (problem,) = report.problems
    assert (problem.file, problem.sheet, problem.row, problem.column, problem.value) == (
        "registry.xlsx",
        "care_cycles",
        5,
        "asa",
        "9",
    )


def test_dutch_excel_csv_with_semicolons_and_decimal_commas(engine, tmp_path):
    write_units(tmp_path / "units.csv")
    rows = cycles()
    for r in rows:
        r["bmi"] = r["bmi"].replace(".", ",")
    path = write_csv(tmp_path / "care_cycles.csv", rows, CYCLE_COLUMNS, sep=";")
    import_files([tmp_path / "units.csv", path], engine)
    with engine.connect() as conn:
        bmi = conn.execute(select(models.CareCycle.bmi).where(models.CareCycle.cycle_id == "C0003")).scalar_one()
    assert bmi == pytest.approx(23.5)


@pytest.mark.parametrize(
    ("content", "rule"),
    [
        (b"", "empty"),
        ("cycle_id,patient_id\nC1,P\xe9\n".encode("latin-1"), "not UTF-8"),
        (b"\x00\x01\x02garbage", "binary content, not CSV text"),
    ],
)
def test_unreadable_files_get_a_clear_error(sqlite_engine, tmp_path, content, rule):
    name = "care_cycles.csv" if rule != "cannot tell which table" else "mystery.csv"
    path = tmp_path / name
    path.write_bytes(content)
    report = _refused([path], sqlite_engine)
    assert any(rule in p.rule for p in report.problems), report.summary()
    assert row_counts(sqlite_engine)["care_cycles"] == 0


def test_unknown_file_type_and_missing_file(sqlite_engine, tmp_path):
    (tmp_path / "care_cycles.json").write_text("{}")
    report = _refused([tmp_path / "care_cycles.json", tmp_path / "nope.csv"], sqlite_engine)
    rules = [p.rule for p in report.problems]
    assert "unsupported file type: expected .csv or .xlsx" in rules
    assert "file not found" in rules


def test_table_is_recognised_from_header_when_the_name_does_not_say(sqlite_engine, registry, tmp_path):
    renamed = tmp_path / "export_2024.csv"
    renamed.write_bytes(registry[1].read_bytes())
    import_files([registry[0], renamed], sqlite_engine)
    assert row_counts(sqlite_engine)["care_cycles"] == 12


def test_a_vital_status_without_its_date_is_refused(engine, registry, tmp_path):
    """Before: a 'death' row without a date (the outcome the cancer conditions' survival indicators follow) was
    stored, and vbhc.survival left the care cycle out of every unit's survival n without a word. Dated rows, and
    the other outcomes without a date, import as before."""
    import_files(registry[:2], engine)
    before = row_counts(engine)
    path = tmp_path / "vital" / "clinical_outcomes_follow_up.csv"
    path.parent.mkdir()
    rows = [
        {"cycle_id": "C0001", "outcome": "death", "value": "0", "date": "2025-06-30"},
        {"cycle_id": "C0003", "outcome": "death", "value": "1", "date": ""},
        {"cycle_id": "C0005", "outcome": "length_of_stay", "value": "9", "date": ""},
    ]
    write_csv(path, rows, list(rows[0]))
    report = _refused([path], engine)
    assert [(p.row, p.column, p.value) for p in report.problems] == [(3, "date", "")]
    assert report.problems[0].rule.startswith("death needs its date (of death, or the date the patient was last")
    assert "heeft een datum nodig" in report.problems[0].line("nl")
    assert row_counts(engine) == before
    rows[1]["date"] = "2025-01-31"
    write_csv(path, rows, list(rows[0]))
    assert import_files([path], engine).sources[0].rows_inserted == 3


def test_a_vital_status_file_without_a_date_column_is_refused_in_one_line(engine, registry, tmp_path):
    """Before: a follow-up file without its date column was refused with the same line for each of its rows (241 for
    the demo's, the first 50 listed). Now one line names the missing column, on the first row that needs it, also
    when the rows come in several chunks; nothing is stored."""
    import_files(registry[:2], engine)
    before = row_counts(engine)
    path = tmp_path / "vital" / "clinical_outcomes_follow_up.csv"
    path.parent.mkdir()
    rows = [{"cycle_id": "C0005", "outcome": "length_of_stay", "value": "9"}]
    rows += [{"cycle_id": f"C{i:04d}", "outcome": "death", "value": str(i % 2)} for i in (1, 2, 3, 4, 6)]
    write_csv(path, rows, list(rows[0]))
    report = _refused([path], engine, chunk_rows=2)
    assert [(p.file, p.row, p.column, p.value) for p in report.problems] == [
        ("clinical_outcomes_follow_up.csv", 3, "date", None)
    ]
    assert report.problem_count == 1
    assert report.problems[0].rule.startswith("death needs its date (of death, or the date the patient was last")
    assert "the file has no date column" in report.problems[0].rule
    assert "geen kolom date" in report.problems[0].line("nl")
    assert row_counts(engine) == before


def test_two_survival_outcomes_without_the_date_column_are_each_named_once(engine, registry, tmp_path, monkeypatch):
    """A condition whose catalog follows two vital outcomes (death, and a recurrence a hospital added): a follow-up
    file without its date column names each outcome once, not only the first (the once-per-file line was kept per
    rule, so the second outcome went unnamed)."""
    folder = tmp_path / "catalog"
    shutil.copytree(catalog_dir(), folder)
    path = folder / "oesophageal_cancer.toml"
    text = path.read_text(encoding="utf-8")
    death = '    { id = "death", type = "binary",'
    survival = '    { id = "survival_1y",'
    assert death in text and survival in text, "test fixture out of date with the catalog"
    text = text.replace(
        death,
        '    { id = "recurrence", type = "binary", label_en = "Recurrence", label_nl = "Recidief" },\n' + death,
        1,
    )
    text = text.replace(
        survival,
        '    { id = "recurrence_free_1y", label_en = "Recurrence-free at 1 year", label_nl = "Recidiefvrij na 1 jaar", '
        'kind = "survival", outcome = "recurrence", years = 1, direction = "higher", min_n = 20, tier = 2 },\n'
        + survival,
        1,
    )
    path.write_text(text, encoding="utf-8")
    catalog = load_catalog(folder)
    import_files(registry[:2], engine, catalog=catalog)
    before = row_counts(engine)
    follow_up = tmp_path / "vital" / "clinical_outcomes_follow_up.csv"
    follow_up.parent.mkdir()
    rows = [{"cycle_id": "C0001", "outcome": "recurrence", "value": "0"}]
    rows += [{"cycle_id": f"C{i:04d}", "outcome": "death", "value": "1"} for i in (2, 3)]
    rows += [{"cycle_id": "C0004", "outcome": "recurrence", "value": "1"}]
    write_csv(follow_up, rows, list(rows[0]))
    report = _refused([follow_up], engine, catalog=catalog, chunk_rows=2)
    assert [(p.file, p.row, p.column, p.value) for p in report.problems] == [
        ("clinical_outcomes_follow_up.csv", 2, "date", None),
        ("clinical_outcomes_follow_up.csv", 3, "date", None),
    ]
    assert report.problem_count == 2
    assert report.problems[0].rule.startswith("recurrence needs its date")
    assert report.problems[1].rule.startswith("death needs its date")
    assert row_counts(engine) == before


def test_a_file_named_for_one_table_holding_another_s_header_says_so_in_one_line(engine, registry, tmp_path):
    """Before: prom_responses.csv saved as costs.csv was refused with eight lines, a missing column of costs and an
    unknown column for costs for each of the two tables' columns; the line now says which table the header is."""
    import_files(registry[:2], engine)
    before = row_counts(engine)
    named = {p.stem: p for p in registry}
    wrong = tmp_path / "wrong" / "costs.csv"
    wrong.parent.mkdir()
    wrong.write_bytes(named["prom_responses"].read_bytes())
    report = _refused([wrong], engine)
    assert [(p.file, p.row, p.column) for p in report.problems] == [("costs.csv", 1, None)]
    assert report.problems[0].rule == (
        "the name says table costs, but the header row holds the columns of prom_responses: name the file (or sheet) "
        "after the table it holds, or choose the costs file"
    )
    assert "kopregel heeft de kolommen van prom_responses" in report.problems[0].line("nl")
    assert row_counts(engine) == before
    # a workbook sheet named for one table with another's header, the same line
    wb = Workbook()
    ws = wb.active
    ws.title = "clinical_outcomes"
    ws.append(["cycle_id", "activity", "quantity", "unit_cost"])
    ws.append(["C0001", "ok_time", 10, 5])
    wb.save(tmp_path / "book.xlsx")
    report = _refused([tmp_path / "book.xlsx"], engine)
    assert [(p.sheet, p.row) for p in report.problems] == [("clinical_outcomes", 1)]
    assert "holds the columns of costs" in report.problems[0].rule
    # a file of the table it is named for, with a column of another table too, is told column by column as before
    extra = tmp_path / "extra" / "costs.csv"
    extra.parent.mkdir()
    extra.write_text("cycle_id,activity,quantity,unit_cost,instrument\nC0001,ok_time,10,5,eq5d5l\n")
    report = _refused([extra], engine)
    assert [(p.column, p.rule.split(" (")[0]) for p in report.problems] == [("instrument", "unknown column for costs")]


@pytest.mark.parametrize("line_end", [b"\r", b"\r\n"])
def test_a_file_with_carriage_return_line_ends_is_told_by_its_header(sqlite_engine, registry, tmp_path, line_end):
    """A CSV whose lines end in a carriage return alone (an old Mac export), named otherwise than a table: the
    header was looked for up to the first line feed, so the whole file was one 'header' and the command said
    'unexpected error (Error)'. Its first record is its header, as for every other line end."""
    renamed = tmp_path / "export_2024.csv"
    renamed.write_bytes(registry[1].read_bytes().replace(b"\r\n", b"\n").replace(b"\n", line_end))
    import_files([registry[0], renamed], sqlite_engine)
    assert row_counts(sqlite_engine)["care_cycles"] == 12


def test_a_bad_cycle_is_reported_once_not_again_for_each_child_row(engine, registry):
    _rewrite(registry[1], 0, "age", "250")
    report = _refused(registry, engine)
    assert report.problem_count == 1, report.summary()
    assert report.problems[0].column == "age"


@sqlite_only
def test_validation_rules_read_in_dutch_and_in_english_as_before(engine, registry):
    """A refused file's rules come from the message catalog: Dutch on the upload page, English as before."""
    from vbhc.ingest.problems import Rule, rule_text

    import_files(registry[:1], engine)  # the units are already there
    _rewrite(registry[1], 2, "age", "abc")
    _rewrite(registry[1], 1, "stage", "V")
    _rewrite(registry[1], 0, "treatment", "x" * 150)
    report = _refused(registry[1:2], engine)
    assert report.problems and all(isinstance(p.rule, Rule) for p in report.problems), report.summary()
    by_column = {p.column: p for p in report.problems}
    age, stage = by_column["age"], by_column["stage"]
    assert age.rule == rule_text(age.rule, "en") == "not a number"
    assert rule_text(age.rule, "nl") == "geen getal"
    assert stage.rule == "unknown code for stage (allowed: I, II, III, IV)"
    assert rule_text(stage.rule, "nl") == "onbekende code voor stage (toegestaan: I, II, III, IV)"
    too_long = next(p.rule for p in report.problems if p.rule.code == "validate.too_long")
    assert (too_long, rule_text(too_long, "nl")) == ("longer than 100 characters", "langer dan 100 tekens")


def test_a_number_in_a_rule_is_grouped_as_the_readers_language_groups_it():
    """Limits, sizes and offsets inside a rule read "1.000.000" in Dutch (they read "1,000,000" there, which a Dutch
    reader takes for a decimal comma); English is as the f-strings wrote it. A copied rule keeps its message."""
    import copy
    import pickle

    from vbhc.ingest.problems import Number, Rule

    rule = Rule("external.too_many_rows", count=1_200_000, limit=Number(1_000_000))
    assert str(rule) == "1,200,000 rows, more than the limit of 1,000,000 (VBHC_MAX_ROWS)"
    assert rule.in_language("nl") == "1.200.000 rijen, meer dan de limiet van 1.000.000 (VBHC_MAX_ROWS)"
    size = Rule("read.file_too_large", size=Number(2.95, 1), limit=Number(200), setting="VBHC_MAX_UPLOAD_MB")
    assert str(size).startswith("file is 3.0 MB") and "3,0 MB" in size.in_language("nl")
    for again in (copy.deepcopy(rule), pickle.loads(pickle.dumps(rule))):
        assert again == rule and again.in_language("nl") == rule.in_language("nl")
