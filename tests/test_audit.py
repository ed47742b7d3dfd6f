"""The audit log: migration on SQLite and PostgreSQL, recording and filtering, CSV export that cannot run
formulas, imports audited in their own transaction, and the `vbhc audit` command."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from sqlalchemy import inspect

from tests.registry_files import write_small_registry
from vbhc import audit, ingest
from vbhc.access import Role, Scope, Viewer
from vbhc.cli import main
from vbhc.i18n import t
from vbhc.ingest import ImportRefused, import_files
from vbhc.store import get_engine, row_counts

QUALITY = Viewer("kwaliteit@example.org", "Kwaliteit", (Scope(Role.QUALITY), Scope(Role.ADMIN)))


def test_migration_creates_the_audit_table(engine):
    columns = {c["name"] for c in inspect(engine).get_columns("audit_events")}
    assert set(audit.COLUMNS) <= columns
    assert {"ix_audit_events_at", "ix_audit_events_user_at"} <= {
        ix["name"] for ix in inspect(engine).get_indexes("audit_events")
    }


def test_record_and_read_with_filters(engine):
    audit.record(engine, QUALITY, "view", condition="colorectal_cancer", unit="H01", detail={"what": "indicators"})
    audit.record(engine, "cli-user", "export", detail="audit log", sha256="ab" * 32)
    audit.record(engine, QUALITY, "denied", condition="breast_cancer", detail={"permission": "patient_rows"})
    df = audit.read(engine)
    assert list(df.columns) == audit.COLUMNS
    assert list(df["action"]) == ["view", "export", "denied"]
    assert df["at"].dt.tz is not None
    first = df.iloc[0]
    assert (first["user_id"], first["roles"], first["condition"], first["unit"]) == (
        "kwaliteit@example.org",
        "admin,quality",
        "colorectal_cancer",
        "H01",
    )
    assert list(audit.read(engine, user="cli-user")["sha256"]) == ["ab" * 32]
    assert list(audit.read(engine, action=["view", "denied"])["action"]) == ["view", "denied"]
    assert len(audit.read(engine, since=dt.date.today() - dt.timedelta(days=1))) == 3
    assert audit.read(engine, since=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).empty
    assert list(audit.read(engine, limit=2)["action"]) == ["export", "denied"]


def test_patient_data_and_unknown_actions_are_refused(sqlite_engine):
    for key in ("patient_id", "cycle_ids", "rows"):
        with pytest.raises(ValueError, match="must not carry patient-level data"):
            audit.record(sqlite_engine, QUALITY, "view", detail={key: ["P0001"]})
    with pytest.raises(ValueError, match="unknown audit action"):
        audit.record(sqlite_engine, QUALITY, "peek")
    assert audit.read(sqlite_engine).empty


def test_repeated_views_are_recorded_once_within_the_dedupe_window(sqlite_engine):
    for _ in range(5):
        audit.record(sqlite_engine, QUALITY, "view", condition="breast_cancer", dedupe_seconds=60)
    audit.record(sqlite_engine, QUALITY, "view", condition="thyroid_cancer", dedupe_seconds=60)
    assert len(audit.read(sqlite_engine)) == 2


def test_csv_export_neutralises_formulas(sqlite_engine):
    audit.record(sqlite_engine, '=HYPERLINK("http://evil","klik")', "sign_in", detail="+cmd|' /C calc'!A0")
    data = audit.to_csv(audit.read(sqlite_engine))
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0]["user_id"] == '\'=HYPERLINK("http://evil","klik")'
    assert rows[0]["detail"].startswith("'+cmd")
    assert rows[0]["at"].endswith("Z")
    assert audit.to_csv(audit.read(sqlite_engine).iloc[0:0]).decode("utf-8-sig").startswith("id,at,user_id")


def test_import_is_audited_in_the_batch_transaction(engine, tmp_path):
    files = write_small_registry(tmp_path / "files")
    import_files(files, engine, imported_by="kwaliteit", actor=QUALITY)
    events = audit.read(engine, action="import")
    assert len(events) == 5
    assert list(events["sha256"]) == [ingest.read._sha256(f) for f in files]
    assert set(events["user_id"]) == {"kwaliteit@example.org"}
    assert '"inserted": 12' in events.iloc[1]["detail"]
    # the same files again: skipped, still recorded as an import that changed nothing
    import_files(files, engine, imported_by="kwaliteit")
    again = audit.read(engine, action="import").iloc[5:]
    assert set(again["user_id"]) == {"kwaliteit"} and again["detail"].str.contains("skipped").all()


def test_refused_and_failed_imports_are_audited_as_refused_without_values(engine, tmp_path, monkeypatch):
    files = write_small_registry(tmp_path / "files")
    lines = files[1].read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3].replace("P0003x", "123456782")  # a BSN where a pseudonym belongs
    files[1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(ImportRefused):
        import_files(files, engine, actor=QUALITY)
    assert audit.read(engine, action="import").empty  # rolled back with the batch
    refused = audit.read(engine, action="import_refused")
    assert len(refused) == 1
    detail = refused.iloc[0]["detail"]
    assert "123456782" not in detail and "P000" not in detail
    # kept as where and which rule, read in the log's reader's language
    assert "care_cycles.csv row 4 column 'patient_id': looks like a BSN" in audit.describe(detail, "en")
    assert "care_cycles.csv rij 4 kolom 'patient_id': " in audit.describe(detail, "nl")

    files = write_small_registry(tmp_path / "files")

    def exploding(real):
        def explode(conn, spec, *rest, **options):
            result = real(conn, spec, *rest, **options)
            if spec.name == "costs":
                raise RuntimeError("disk full: value 'P0001x'")
            return result

        return explode

    for writer in ("upsert", "insert_directly"):  # the staged path, and the direct path of a first import
        explode = exploding(getattr(ingest.stage, writer))
        monkeypatch.setattr(ingest.stage, writer, explode)
    with pytest.raises(RuntimeError):
        import_files(files, engine, actor=QUALITY)
    assert row_counts(engine)["care_cycles"] == 0
    assert audit.read(engine, action="import").empty
    failed = audit.read(engine, action="import_refused").iloc[-1]
    assert '"error": "RuntimeError"' in failed["detail"] and "P0001x" not in failed["detail"]


@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    monkeypatch.setenv("VBHC_USER", "os-gebruiker")
    get_engine.cache_clear()
    yield get_engine(url)
    get_engine.cache_clear()


def test_cli_import_records_the_os_user_and_audit_exports_csv(cli_db, tmp_path, capsys):
    files = write_small_registry(tmp_path / "files")
    assert main(["import", "--by", "registratie", *map(str, files)]) == 0
    events = audit.read(cli_db, action="import")
    assert set(events["user_id"]) == {"os-gebruiker"}
    capsys.readouterr()
    assert main(["audit", "--since", dt.date.today().isoformat(), "--action", "import"]) == 0
    printed = capsys.readouterr().out
    assert "os-gebruiker" in printed and "care_cycles.csv" in printed
    out = tmp_path / "audit.csv"
    assert main(["audit", "--csv", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 5
    export = audit.read(cli_db, action="export").iloc[0]
    assert export["sha256"] == audit.sha256_of(out.read_bytes())
    assert main(["audit", "--since", "yesterday"]) == 2


# ------------------------------------------------------------------------------------------------ the log as read
def test_every_detail_key_and_code_is_named_in_both_languages():
    """The audit page names every key an event may carry and every code of the product's own (record() refuses
    others), in Dutch and in English: no stored English key or code reaches the Dutch page."""
    from vbhc.i18n import catalog

    for lang in ("nl", "en"):
        messages = catalog(lang)
        assert not [k for k in audit.DETAIL if f"audit.detail.{k}" not in messages], lang
        assert set(audit.CODE_MESSAGES) == {
            k for k, s in audit.DETAIL.items() if s in (audit.Shown.CODE, audit.Shown.ASKED)
        }
        for key, prefix in audit.CODE_MESSAGES.items():
            assert any(m.startswith(prefix) for m in messages), (lang, key)
    dutch = catalog("nl")
    assert all(dutch[k] != catalog("en")[k] for k in dutch if k.startswith("audit.what.") and not k.endswith("pdf"))


def test_record_refuses_a_detail_the_log_cannot_name(engine):
    """A key outside vbhc.audit.DETAIL, or a code of the product's own that the catalog does not name, fails in
    tests instead of showing as stored English on the Dutch page; nothing is written. A value someone asked for
    (a level, a format) is kept as asked."""
    with pytest.raises(ValueError, match="DETAIL"):
        audit.record(engine, QUALITY, "view", detail={"what": "indicators", "colour": "red"})
    with pytest.raises(ValueError, match="no code the catalog names"):
        audit.record(engine, QUALITY, "view", detail={"what": "external figures upload.csv"})
    with pytest.raises(ValueError, match="no code the catalog names"):
        audit.record(engine, QUALITY, "edit", detail={"what": "target", "change": "renamed"})
    assert audit.read(engine).empty
    assert audit.record(engine, QUALITY, "export_refused", detail={"what": "report", "format": "odt", "level": "ward"})
    assert audit.describe(audit.read(engine)["detail"].iloc[0], "nl") == "Wat: Rapport · Niveau: ward · Formaat: odt"
    assert audit.describe(audit.read(engine)["detail"].iloc[0], "en") == "What: Report · Level: ward · Format: odt"


def test_describe_names_keys_codes_units_and_counts_in_the_readers_language():
    import json

    detail = json.dumps(
        {
            "what": "external figures",
            "file": "dica_2025.csv",
            "source": "DICA",
            "figures": 1234,
            "patient_level": False,
            "hospitals": ["H01", "H02"],
            "indicator": "anastomotic_leak",
            "since": "2026-11-04 00:00:00",
            "period": "all",
            "skipped": "identical content already imported",
            "files": [{"file": "a.csv", "sha256": "0123456789abcdef" * 4}],
        },
        sort_keys=True,
    )
    names = {"H01": "Amsterdam UMC", "H02": "UMC Utrecht", "anastomotic_leak": "Naadlekkage"}

    def name(kind: audit.Shown, value: str) -> str:
        assert kind in (audit.Shown.UNIT, audit.Shown.INDICATOR)
        return names[value]

    assert audit.describe(detail, "nl", name) == (
        "Wat: Externe cijfers · Bestand: dica_2025.csv · Bestanden: a.csv (SHA-256 0123456789ab…) · Bron: DICA"
        " · Periode: Alle · Indicator: Naadlekkage · Ziekenhuizen: Amsterdam UMC, UMC Utrecht · Cijfers: 1.234"
        " · Overgeslagen: identieke inhoud al geïmporteerd · Gegevens op patiëntniveau: nee · Vanaf: 4 nov 2026, 00:00"
    )
    english = audit.describe(detail, "en", name)
    assert english.startswith("What: External figures · File: dica_2025.csv · Files: a.csv (SHA-256 0123456789ab…)")
    assert "Skipped: identical content already imported" in english
    assert "Figures: 1,234" in english and "Patient-level data: no" in english and "From: 4 Nov 2026, 00:00" in english


def test_a_refusals_problems_read_in_the_readers_language_and_older_ones_as_stored():
    """A refused file's problems are kept as where and which rule (the message and its values, never the cell's
    value), so the Dutch log reads Dutch rules and numbers grouped the Dutch way. A problem list written before
    (English text), a count, or a rule this version does not know is shown as stored."""
    from vbhc.ingest.problems import Number, Problem, Rule, audited_problems

    problems = [
        Problem("costs.csv", None, 3, "amount", "12,5x", Rule("validate.not_a_number")),
        Problem(
            "big.csv", None, None, None, None, Rule("read.zip_too_many_parts", parts=Number(1200), limit=Number(1000))
        ),
        Problem("units.xlsx", "Blad1", 2, "hospital", None, "a rule no message names"),
    ]
    detail = audit._detail_text({"problem_count": 3, "problems": audited_problems(problems)})
    assert "12,5x" not in detail
    nl, en = audit.describe(detail, "nl"), audit.describe(detail, "en")
    assert nl.startswith(
        f"Aantal problemen: 3 · Problemen: costs.csv rij 3 kolom 'amount': {t('problem.validate.not_a_number', 'nl')}; "
    )
    assert "1.200" in nl and "1,200" in en and "units.xlsx" in nl and "a rule no message names" in nl
    assert en.count("; ") == 2 and "costs.csv row 3 column 'amount': " in en
    # older events and other writers: as stored, never dropped, never a traceback
    assert audit.describe('{"problems": ["x.csv row 3: not a number"]}', "nl").endswith(": x.csv row 3: not a number")
    assert audit.describe('{"problems": 4}', "nl").endswith(": 4")
    unknown = '{"problems": [{"file": "x.csv", "rule": "no.such_rule", "values": {}}]}'
    assert '"rule": "no.such_rule"' in audit.describe(unknown, "nl")


def test_describe_shows_what_it_cannot_read_as_stored():
    """Events written before details were objects, or by another version: shown, never dropped or a traceback."""
    assert audit.describe("audit log", "nl") == "audit log"
    assert audit.describe('["a", 1]', "nl") == '["a", 1]'
    assert audit.describe(None, "nl") == audit.describe("", "en") == "\u2013"
    assert audit.describe('{"what": "history T-1", "colour": "red"}', "nl") == "Wat: history T-1 · colour: red"


def test_a_report_whose_build_fails_is_audited_as_refused_without_the_error_text(sqlite_engine, tmp_path, monkeypatch):
    """`vbhc report` (and a scheduled report) recorded a ReportError as export_refused, but a failure nobody
    foresaw (a chart that cannot be drawn, a bug) left nothing in the log. Now recorded too, with the error's
    class only (its text may quote data); the error goes on and no file is written."""
    from vbhc.reports import run

    def fails(*args, **kwargs):
        raise RuntimeError("patient P-000123")

    monkeypatch.setattr(run, "_build", fails)
    with pytest.raises(RuntimeError):
        run.make_report(tmp_path / "r.xlsx", fmt="xlsx", engine=sqlite_engine, actor="tester", via="cli")
    events = audit.read(sqlite_engine)
    assert list(events["action"]) == ["export_refused"]
    detail = events["detail"].iloc[0]
    assert '"error": "RuntimeError"' in detail and '"file": "r.xlsx"' in detail and "P-000123" not in detail
    assert not (tmp_path / "r.xlsx").exists()
