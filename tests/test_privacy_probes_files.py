"""Privacy probes of every file a role takes away, read back as an adversary would read them: the PDF's text and
its metadata, the Vega-Lite spec (with its embedded data) each PNG is drawn from, the workbook's every part
(document properties, sheet names and states, defined names, comments, pivot caches), the CSV, the file names
the pages offer and the audit log's record of each download.

Last round's session probes (tests/test_privacy_probes_sessions.py) read the CSV and workbook downloads only. Here
one session per role (quality first, filling the server's caches; then a care team limited to H01, the condition's
whole care team and the manager of H01) opens the team page (its report buttons and its charts' menus) and the
compare page on the department level of one year, where small cells abound, and builds every file offered as a
click would. vl-convert is replaced by a recorder (one chart is drawn for real, to read the PNG's chunks): the
spec is what the PNG shows, and drawing ~20 charts would cost more than the probes. The `vbhc external export`
summary (the one file the command line makes for outside the hospital) is probed the same way."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import struct
import zipfile
from collections.abc import Iterator

import openpyxl
import pandas as pd
import pytest
from sqlalchemy import select

from tests.apptest import run_on_page
from tests.roles import MAPPING, USERS
from tests.shown import tables as shown_tables
from vbhc import audit, models
from vbhc.catalog import default_catalog
from vbhc.i18n import t
from vbhc.registry import hospital_of, unit_names
from vbhc.registry import units as registry_units
from vbhc.reports.privacy import CHART_COUNT_COLUMNS, CHART_CYCLE_COLUMNS
from vbhc.settings import PROJECT_ROOT, suppress_below
from vbhc.store import get_engine

CONDITION = "colorectal_cancer"
#: the department level of one year: many units below the threshold, withheld on a limited team's pages
STATE = {"condition": CONDITION, "level": "department", "period": "2025"}
#: the roles in the order their sessions run (quality first: its files and figures are in every cache after it)
ROLES = ("quality", "care_h01", "care", "manager")
#: what each role's files may name of the hospitals (None: any)
FOCUS = {"quality": None, "care": None, "care_h01": {"H01"}, "manager": {"H01"}}
#: a 1x1 PNG: what the recorder returns in place of a drawn chart
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8ffff3f0005fe02fe"
    "a7d6a4e50000000049454e44ae426082"
)
#: PNG chunks that carry no text (a tEXt, iTXt, zTXt or eXIf chunk could carry anything)
IMAGE_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"pHYs", b"sRGB", b"gAMA", b"cHRM", b"tRNS", b"bKGD", b"iCCP"}
#: what the compare page draws in a cell it does not show
NOTHING_SHOWN = "–"
#: the workbook's columns of a unit x indicator that each give its figures (or its n) back
FIGURE_COLUMNS = ("Care cycles", "Observed", "Expected", "O/E", "Crude", "Adjusted", "95% CI lower", "95% CI upper")
#: a workbook part's cell and range references
CELL_REFERENCE = re.compile(r'\b(?:r|ref|sqref)="[^"]*"')
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


@dataclasses.dataclass
class Taken:
    """A file as a click gives it: name, MIME type, bytes and the chart specs vl-convert was asked to draw."""

    name: str
    mime: str
    content: bytes
    specs: list[dict]


@dataclasses.dataclass
class Session:
    files: list[Taken]
    tables: list[pd.DataFrame]  # the compare page's tables
    first_event: int  # the audit log's last id before the session


@pytest.fixture(scope="module")
def files_db(small_demo_registry, tmp_path_factory) -> Iterator:
    """The small demo registry signed in through OIDC with tests.roles's mapping (module-wide: one session per
    role for every probe of this module), no background warm-up."""
    from ui import data

    engine, _ = small_demo_registry
    mapping = tmp_path_factory.mktemp("roles") / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
        mp.setenv("VBHC_ACCESS_FILE", str(mapping))
        mp.setenv("VBHC_AUTH", "oidc")
        mp.setenv("VBHC_REPORT_CHARTS", "0")
        mp.setattr(data, "start_warm_up", lambda url, version: None)
        mp.setattr(data, "background_work", False)
        get_engine.cache_clear()
        yield engine
    get_engine.cache_clear()


def _last_event(engine) -> int:
    events = audit.read(engine)
    return int(events["id"].max()) if len(events) else 0


def _run(user: str, page: str, **state):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS[user]}
    at.query_params["lang"] = "en"
    for key, value in state.items():
        at.session_state[key] = value
    run_on_page(at, page)
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.fixture(scope="module")
def sessions(files_db) -> dict[str, Session]:
    """Per role: every file its pages offered, built as a click builds it, with the specs its charts were drawn
    from; the compare page's tables; where the audit log stood before."""
    import vl_convert
    from streamlit.runtime.media_file_manager import MediaFileManager

    from ui import data

    offered: list = []
    specs: list[dict] = []
    drawn = vl_convert.vegalite_to_png
    register = MediaFileManager.add_deferred

    def recording(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        offered.append((str(file_name), str(mimetype), data_callable))
        return register(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    building: list[str] = []  # the MIME type of the file being built
    real: list[bytes] = []

    def draw(spec, **kwargs):
        specs.append(spec)
        if building == ["image/png"] and not real:  # one PNG download drawn for real: its chunks are read
            real.append(drawn(spec, **kwargs))
            return real[0]
        return TINY_PNG

    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(MediaFileManager, "add_deferred", recording)
        mp.setattr(vl_convert, "vegalite_to_png", draw)
        # every file drawn here, from specs the recorder sees: no chart read from the results store (kept by the
        # digest of its spec, ui.data.kept_chart; tests/test_kept_charts.py), and none of these stand-in drawings
        # stored there for a later test to read
        mp.setattr(data, "kept_chart", lambda digest, draw: draw())
        for user in ROLES:
            first = _last_event(files_db)
            offered.clear()
            _run(user, "views/condition_team.py", **STATE)
            _run(user, "views/condition_team.py", team_tab=t("pages.tab_depth", "en"), **STATE)
            compare = _run(user, "views/compare.py", **STATE)
            files = []
            for name, mime, build in offered:
                before = len(specs)
                building[:] = [mime]
                content = build()
                files.append(Taken(name, mime, content, specs[before:]))
            out[user] = Session(files, [table.value for table in shown_tables(compare)], first)
    return out


# --------------------------------------------------------------------------------------------- reading files
def _xlsx_parts(content: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        return {part: book.read(part).decode("utf-8", "replace") for part in book.namelist()}


def _pdf(content: bytes) -> tuple[str, dict[str, str]]:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(content))
    text = "\n".join(page.extract_text() or "" for page in reader.pages)
    return text, {str(k): str(v) for k, v in (reader.metadata or {}).items()}


def _png_chunks(content: bytes) -> list[tuple[bytes, bytes]]:
    assert content[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, pos = [], 8
    while pos < len(content):
        length, kind = struct.unpack(">I4s", content[pos : pos + 8])
        chunks.append((kind, content[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _everything(taken: Taken) -> str:
    """All an adversary reads of a file, as text: its name, and the PDF's text and metadata, every part of a
    workbook, the CSV, and the specs (with their data) of its charts."""
    parts = [taken.name, *(json.dumps(spec, ensure_ascii=False) for spec in taken.specs)]
    if taken.name.endswith(".pdf"):
        text, meta = _pdf(taken.content)
        parts += [text, json.dumps(meta, ensure_ascii=False)]
    elif taken.name.endswith(".xlsx"):  # every part, without the cell references (H10 is a cell, not a hospital)
        parts += [CELL_REFERENCE.sub("", part) for part in _xlsx_parts(taken.content).values()]
    elif taken.name.endswith(".csv"):
        parts.append(taken.content.decode("utf-8-sig"))
    elif taken.name.endswith(".png"):
        parts += [data.decode("latin-1") for kind, data in _png_chunks(taken.content) if kind != b"IDAT"]
    return "\n".join(parts)


def _word(words) -> re.Pattern:
    return re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(w) for w in words) + r")(?![A-Za-z0-9])")


def _files(sessions, user: str) -> list[Taken]:
    return sessions[user].files


# --------------------------------------------------------------------------------------------- the probes
@pytest.mark.parametrize("user", ["quality", "care_h01", "care"])
def test_every_kind_of_file_is_offered_and_read(sessions, user):
    """The probes below read something: each care role gets a workbook, a PDF, a chart PNG and its CSV, and each
    PNG and PDF was drawn from specs the recorder saw."""
    files = _files(sessions, user)
    kinds = {f.name.rsplit(".", 1)[-1] for f in files}
    assert {"xlsx", "pdf", "png", "csv"} <= kinds, kinds
    drawn = [f for s in sessions.values() for f in s.files if f.name.endswith(".png") and f.content != TINY_PNG]
    assert len(drawn) == 1, "one PNG download is drawn for real, and its chunks read"
    for taken in files:
        if taken.name.endswith((".png", ".pdf")):
            assert taken.specs, taken.name


def test_a_manager_is_offered_no_file(sessions):
    assert not _files(sessions, "manager")


@pytest.mark.parametrize("user", ["quality", "care_h01", "care"])
def test_no_file_names_another_condition_or_a_patient(sessions, files_db, user):
    """No other condition (id, English or Dutch name) and no patient or care cycle identifier, in any file's name,
    text, metadata or chart data."""
    conditions = default_catalog().conditions
    others = [c for c in conditions if c != CONDITION]
    other_condition = _word([*others, *(conditions[c].label(lang) for c in others for lang in ("en", "nl"))])
    with files_db.connect() as connection:
        ids = connection.execute(select(models.CareCycle.cycle_id, models.CareCycle.patient_id)).all()
    identifiers = {str(i) for pair in ids for i in pair}
    for taken in _files(sessions, user):
        text = _everything(taken)
        found = other_condition.search(text)
        assert not found, (taken.name, text[max(0, found.start() - 80) : found.end() + 40])
        tokens = set(re.findall(r"[A-Za-z0-9_]+", text))
        assert not tokens & identifiers, (taken.name, sorted(tokens & identifiers)[:5])


def test_a_care_team_limited_to_h01_gets_no_other_hospital_in_names_or_single_cycle_charts(sessions, files_db):
    """The team limited to H01: the file names offered (they carry the unit) name H01's units only, and no file
    is a chart of single care cycles (VLAD, CUSUM: patient-level, not a care team's export)."""
    names = unit_names(registry_units(engine=files_db), "hospital")
    others = _word([h for h in names if h != "H01"])
    for user in ("care_h01", "care"):
        for taken in _files(sessions, user):
            if user == "care_h01":
                assert not others.search(taken.name), taken.name
            for spec in taken.specs:
                for rows in (spec.get("datasets") or {}).values():
                    first = rows[0] if isinstance(rows, list) and rows else {}
                    assert not set(CHART_CYCLE_COLUMNS) & set(first), (user, taken.name)


def _small(values: pd.Series, threshold: int) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    return (numbers > 0) & (numbers < threshold)


@pytest.mark.parametrize("user", ["quality", "care_h01", "care"])
def test_no_file_shows_a_count_below_the_threshold(sessions, user):
    """The file rule, for every role (a file leaves the hospital): no number of care cycles or patients below the
    threshold in a chart's embedded data (PNG and PDF), a chart CSV, a workbook's care-cycle columns or a PDF
    table's n beside an indicator's name."""
    threshold = suppress_below()
    catalog = default_catalog()
    counts = {t(f"chart.label.{c}", "en") for c in ("n", "cycles")}
    labels = {ind.label("en") for ind in catalog.conditions[CONDITION].indicators}
    label_n = re.compile(
        r"(" + "|".join(re.escape(x) for x in sorted(labels, key=len, reverse=True)) + r")\s+(\d{1,3})(?![\d.,%])"
    )
    for taken in _files(sessions, user):
        if taken.name.endswith(".pdf"):  # the text first: the tables of the PDF, the specs of its charts below
            text = " ".join(_pdf(taken.content)[0].split())
            for found in label_n.finditer(text):
                assert not 0 < int(found.group(2)) < threshold, (taken.name, text[found.start() : found.end() + 40])
        for spec in taken.specs:
            for name, rows in (spec.get("datasets") or {}).items():
                frame = pd.DataFrame(rows) if isinstance(rows, list) and rows else pd.DataFrame()
                for column in set(CHART_COUNT_COLUMNS) & set(frame.columns):
                    small = frame[_small(frame[column], threshold)]
                    assert small.empty, (taken.name, name, small.head().to_dict("records"))
        if taken.name.endswith(".csv"):
            frame = pd.read_csv(io.BytesIO(taken.content), encoding="utf-8-sig")
            for column in counts & set(frame.columns):
                assert not _small(frame[column], threshold).any(), (taken.name, column)
        elif taken.name.endswith(".xlsx"):
            book = openpyxl.load_workbook(io.BytesIO(taken.content), read_only=True)
            for sheet in book.worksheets:
                rows = list(sheet.iter_rows(values_only=True))
                for number, header in enumerate(rows[:6]):
                    cycles = [i for i, v in enumerate(header) if v == t("column.care_cycles", "en")]
                    for row in rows[number + 1 :] if cycles else ():
                        for i in cycles:
                            value = row[i] if i < len(row) else None
                            assert not (isinstance(value, int | float) and 0 < value < threshold), (
                                taken.name,
                                sheet.title,
                                row,
                            )


def test_a_limited_care_teams_workbook_withholds_what_its_page_withholds(sessions):
    """Every cell the compare page leaves empty for the team limited to H01 (another hospital's small unit, and the
    secondary cells that protect it, drawn as NOTHING_SHOWN) is withheld in its workbook too: no number of care
    cycles, observed or expected events, crude or adjusted value of that unit and indicator. The file gives back
    nothing the page hides."""
    session = sessions["care_h01"]
    unit_col = t("column.unit", "en")
    hidden = set()
    for table in session.tables:
        for column in table.columns.drop(unit_col) if unit_col in table else ():
            for unit in table.loc[table[column].astype(str).str.strip() == NOTHING_SHOWN, unit_col]:
                hidden.add((str(unit), str(column)))
    assert hidden, "the page withholds cells of other hospitals' units at this level and period"
    book = next(f for f in session.files if f.name.endswith(".xlsx"))
    sheet = openpyxl.load_workbook(io.BytesIO(book.content), read_only=True)[
        default_catalog().conditions[CONDITION].label("en")
    ]
    rows = list(sheet.iter_rows(values_only=True))
    header = next(i for i, row in enumerate(rows) if row and row[0] == t("column.indicator", "en"))
    frame = pd.DataFrame(rows[header + 1 :], columns=rows[header])
    figures = [c for c in frame.columns if c in FIGURE_COLUMNS]
    assert t("column.care_cycles", "en") in figures, list(frame.columns)
    checked = 0
    for _, row in frame.iterrows():
        if (str(row[t("column.unit_name", "en")]), str(row[t("column.indicator", "en")])) not in hidden:
            continue
        checked += 1
        shown = {c: row[c] for c in figures if isinstance(row[c], int | float) and not pd.isna(row[c])}
        assert not shown, (row[t("column.unit_name", "en")], row[t("column.indicator", "en")], shown)
    assert checked, "the workbook has rows of the units the page withholds"


@pytest.mark.parametrize("user", ["quality", "care_h01", "care"])
def test_no_files_metadata_names_a_person_or_hides_a_part(sessions, user):
    """Metadata: the PDF's document information (Title, Author, Subject, Keywords, Creator, Producer), the
    workbook's document properties, its sheets (none hidden), defined names, comments, pivot caches and external
    links, a PNG's chunks (no text chunk), a CSV's first line (the header, no title line): no e-mail address (the
    viewer's, an importer's) and no part a reader does not see."""
    for taken in _files(sessions, user):
        if taken.name.endswith(".pdf"):
            _, meta = _pdf(taken.content)
            assert set(meta) <= {"/Title", "/Creator", "/Producer", "/CreationDate", "/ModDate"}, meta
            assert not EMAIL.search(json.dumps(meta)), meta
        elif taken.name.endswith(".xlsx"):
            parts = _xlsx_parts(taken.content)
            odd = [p for p in parts if re.search(r"comments|pivot|externalLink|customXml|docProps/custom|vba", p)]
            assert not odd, (taken.name, odd)
            book = openpyxl.load_workbook(io.BytesIO(taken.content))
            assert all(s.sheet_state == "visible" for s in book.worksheets), (taken.name, book.sheetnames)
            assert not list(book.defined_names), (taken.name, list(book.defined_names))
            properties = book.properties
            people = [properties.creator, properties.lastModifiedBy, properties.subject, properties.keywords]
            assert not EMAIL.search(" ".join(str(p) for p in people if p)), (taken.name, people)
            for part in ("docProps/core.xml", "docProps/app.xml"):
                assert not EMAIL.search(parts.get(part, "")), (taken.name, part)
        elif taken.name.endswith(".png"):
            kinds = {kind for kind, _ in _png_chunks(taken.content)}
            assert kinds <= IMAGE_CHUNKS, (taken.name, kinds - IMAGE_CHUNKS)
        elif taken.name.endswith(".csv"):
            header = taken.content.decode("utf-8-sig").splitlines()[0]
            assert not EMAIL.search(header), (taken.name, header)
        assert not EMAIL.search(_everything(taken)), (taken.name, EMAIL.search(_everything(taken)))


@pytest.mark.parametrize("user", ["quality", "care_h01", "care"])
def test_every_file_taken_is_in_the_audit_log_with_its_hash_and_no_figure(sessions, files_db, user):
    """Each file a click gave is recorded as an export by its viewer, with its name and SHA-256; the record holds
    no figure of the file (what, file, bytes, patient_level only) and names no hospital outside the viewer's
    focus."""
    session = sessions[user]
    events = audit.read(files_db, user=USERS[user]["email"], action="export")
    events = events[events["id"] > session.first_event]
    recorded = {(json.loads(d)["file"], s) for d, s in zip(events["detail"], events["sha256"], strict=True)}
    for taken in session.files:
        assert (taken.name, hashlib.sha256(taken.content).hexdigest()) in recorded, taken.name
    names = unit_names(registry_units(engine=files_db), "hospital")
    focus = FOCUS[user]
    others = _word([h for h in names if focus is not None and h not in focus] or ["\0"])
    for detail, unit in zip(events["detail"], events["unit"], strict=True):
        assert set(json.loads(detail)) <= {"what", "file", "bytes", "patient_level"}, detail
        assert not others.search(f"{detail} {unit}"), (detail, unit)


#: the columns that name what a chart's count row is about: a unit, or a period of a trend
KEY_COLUMNS = ("unit", "period")


def _new_figures(frame: pd.DataFrame, key: str, kept: set[str]) -> pd.DataFrame:
    """The rows of `frame` at a `key` outside `kept` that carry a figure not already drawn at a kept key of the
    same line (a constant centre line drawn across every quarter carries nothing of a left-out quarter)."""
    line = next((c for c in ("line", "series", "unit") if c in frame and c != key), None)
    numbers = [c for c in frame.select_dtypes("number").columns if c != key]
    outside = ~frame[key].astype(str).isin(kept)
    known = frame[~outside]
    new = []
    for _, row in frame[outside].iterrows():
        same = known[known[line] == row[line]] if line else known
        new.append(any(not pd.isna(row[c]) and not (same[c] == row[c]).any() for c in numbers))
    return frame[outside][new] if new else frame.iloc[:0]


@pytest.mark.parametrize("user", ["quality", "care_h01", "care"])
def test_a_chart_gives_no_figure_of_a_unit_or_period_whose_count_it_leaves_out(sessions, user):
    """The chart data a PNG or the PDF is drawn from: a unit or a quarter whose count row the file rule left out
    has no figure of its own in the spec's other datasets either (a label placed at its precision, a line through
    its rate, a control limit of its n would each give it back)."""
    for taken in _files(sessions, user):
        for spec in taken.specs:
            sets = {n: pd.DataFrame(r) for n, r in (spec.get("datasets") or {}).items() if isinstance(r, list) and r}
            counted = {n: f for n, f in sets.items() if set(CHART_COUNT_COLUMNS) & set(f.columns)}
            for key in KEY_COLUMNS:
                if not any(key in f for f in counted.values()):
                    continue
                kept = set().union(*(set(f[key].astype(str)) for f in counted.values() if key in f))
                for name, frame in sets.items():
                    if name not in counted and key in frame:
                        new = _new_figures(frame, key, kept)
                        assert new.empty, (taken.name, name, key, new.head().to_dict("records"), sorted(kept)[:5])


@pytest.mark.parametrize(
    ("suffix", "period"), [("csv", ["--period", "2025"]), ("xlsx", [])], ids=["csv-2025", "xlsx-all"]
)
def test_the_command_lines_summary_for_outside_names_the_own_hospital_only(files_db, tmp_path, suffix, period):
    """`vbhc external export` (the own hospital's figures for a national registry or a partner: the one file the
    command line makes for outside the hospital): no other hospital's id or name, no count below the threshold,
    no patient or care cycle identifier, no e-mail address in the file or its document properties."""
    from vbhc.cli import main

    names = unit_names(registry_units(engine=files_db), "hospital")
    others = _word([w for h in names if h != "H01" for w in (h, names[h])])
    out = tmp_path / f"summary.{suffix}"
    args = ["external", "export", "--condition", CONDITION, "--source", "UMC", "--published", "2026-01-01"]
    assert main([*args, *period, "--level", "department", "--hospital", "H01", "--out", str(out)]) == 0
    taken = Taken(out.name, "", out.read_bytes(), [])
    text = _everything(taken)
    assert not others.search(text), others.search(text)
    assert not EMAIL.search(text), EMAIL.search(text)
    with files_db.connect() as connection:
        ids = {
            str(i)
            for pair in connection.execute(select(models.CareCycle.cycle_id, models.CareCycle.patient_id))
            for i in pair
        }
    assert not set(re.findall(r"[A-Za-z0-9_]+", text)) & ids
    frame = pd.read_csv(out, encoding="utf-8-sig") if suffix == "csv" else pd.read_excel(out)
    assert "n" in frame.columns, list(frame.columns)
    assert len(frame) and {hospital_of(str(u)) for u in frame["unit"]} == {"H01"}, set(frame["unit"])
    assert not _small(frame["n"], suppress_below()).any(), frame[_small(frame["n"], suppress_below())]
