"""Dutch throughout: every page, walked in Dutch as each role that changes what is shown, shows no English UI
word and no raw id, None or NaN.

The walk collects the visible text of every element (titles, markdown, captions, alerts, metrics, dataframes'
headers, index and cells, widget labels, help texts, options as formatted, placeholders, buttons, tabs,
expanders), tokenizes it and checks it against
(a) the English words of the message catalog and of the condition catalog's English labels that never occur in
    the Dutch texts, minus an allow-list of names and abbreviations used in Dutch as well; and
(b) raw ids: catalog ids (condition, indicator, outcome, case-mix variable, timepoint, instrument, cost activity,
    treatment), `condition@H01` unit ids, any snake_case identifier, and None/NaN/nan/<NA>/NaT;
(c) dates in the machine's order: an ISO date (2025-06-05) in a text or a cell, a date input that shows
    YYYY-MM-DD; a Dutch reader reads day, month, year (a date column shown with the language's date format passes).

Vega-Lite charts are walked too: their titles, axis, legend and header titles, and the values of the fields a
reader sees on an axis, a facet header, a legend or a text mark (a PROM panel headed `12m` is caught); tooltips
are left out (they name ids on purpose). Their layout is tested with the chart builders (test_chart_layout.py).
Cells that hold data rather than UI text (file names, SHA-256 hashes, user ids) are skipped by their header.
"""

from __future__ import annotations

import html
import json
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.roles import USERS, sign_in_with_roles
from tests.shown import parse_table
from ui.render import TABLE_CLASS
from vbhc import audit, charts
from vbhc.catalog import default_catalog
from vbhc.i18n import DATE_INPUT_FORMAT, t
from vbhc.i18n import catalog as messages
from vbhc.settings import PROJECT_ROOT, catalog_dir
from vbhc.store import get_engine

PAGES = [
    "views/overview.py",
    "views/condition_team.py",
    "views/meeting.py",
    "views/board.py",
    "views/proms.py",
    "views/compare.py",
    "views/cost_value.py",
    "views/data.py",
    "views/audit.py",
    "views/methods.py",
]
INDICATOR_PAGES = PAGES[:7]  # with the meeting page and the board review
#: The team page's tabs (views/condition_team.py: only the open one runs)
TEAM_TABS = ("verdicts", "depth", "casemix", "cases")

#: Names and abbreviations a Dutch text uses as they are.
ALLOW = {
    "prom", "proms", "eq-5d", "eq-5d-5l", "eq", "vas", "asa", "bmi", "nyha", "lvef", "oxford", "cusum", "vlad",
    "o", "e", "spc", "excel", "pdf", "csv", "xlsx", "sha-256", "eortc", "qlq-c30", "promis", "promis-10",
    "global", "health", "hip", "knee", "score", "ichom", "lroi", "oidc", "openid", "connect", "ct", "mri", "pet",
    "icd", "crt", "ic", "ok", "clavien-dindo", "t-score", "c-statistiek", "r²", "porter", "readme", "localhost",
    "vbhc", "demo", "h", "et", "al", "mic", "url", "charlson", "cox",
}  # fmt: skip
#: Columns whose cells are data (file, sheet and user names, hashes, the audit log's JSON record of ids), not
#: interface text: their header is checked, and their cells only for None/NaN.
DATA_COLUMNS = {
    "batch.file",
    "batch.sheet",
    "batch.sha256",
    "batch.imported_by",
    "audit.col_user_id",
    "audit.col_sha256",
    "audit.col_detail",
    "error.value",
}
RAW_TOKENS = {"None", "NaN", "nan", "<NA>", "NaT", "null", "none"}
ISO_DATE = re.compile(r"(?<![\w-])\d{4}-\d{2}-\d{2}(?![\w-])")
#: An improvement item's id (vbhc.improvement: a target, signal or action): the workbook's key, never a name
ITEM_ID = re.compile(r"[TSA]-[0-9a-f]{12}")
WORD = re.compile(r"<NA>|[\w@][\w@'’²-]*")


def _words(text: str) -> set[str]:
    text = re.sub(r"\{[^}]*\}", " ", text)  # placeholders
    return {w.lower().strip("-'’") for w in WORD.findall(text)}


def _catalog_labels(lang: str) -> Iterator[str]:
    for path in catalog_dir().glob("*.toml"):

        def walk(value):
            if isinstance(value, dict):
                for key, item in value.items():
                    if key.endswith(f"_{lang}") and isinstance(item, str):
                        yield item
                    else:
                        yield from walk(item)
            elif isinstance(value, list):
                for item in value:
                    yield from walk(item)

        yield from walk(tomllib.loads(path.read_text(encoding="utf-8")))


def english_words() -> set[str]:
    """Words of the English texts that the Dutch texts never use (so a Dutch page has no reason to show them)."""
    en = set().union(*(_words(v) for v in messages("en").values()), *(_words(v) for v in _catalog_labels("en")))
    nl = set().union(*(_words(v) for v in messages("nl").values()), *(_words(v) for v in _catalog_labels("nl")))
    return {w for w in en - nl - ALLOW if len(w) > 1 and not any(c.isdigit() for c in w)}


def raw_ids() -> set[str]:
    """Catalog ids that are not also ordinary Dutch words (case-sensitive: `asa` is an id, `ASA` a name)."""
    cat = default_catalog()
    ids: set[str] = set(cat.conditions) | set(cat.instruments) | set(cat.cost_activities)
    for c in cat.conditions.values():
        ids |= {i.id for i in c.indicators} | {o.id for o in c.outcomes} | set(c.casemix_names)
        ids |= {tp.id for tp in c.timepoints} | set(c.treatments)
    ids |= set(audit.ACTIONS)
    nl = set().union(*(set(WORD.findall(v)) for v in messages("nl").values()))
    nl |= set().union(*(set(WORD.findall(v)) for v in _catalog_labels("nl")))
    return ids - nl


ENGLISH = english_words()
RAW = raw_ids()


@dataclass
class Finding:
    where: str
    token: str
    text: str

    def __str__(self) -> str:
        return f"{self.where}: {self.token!r} in {self.text[:120]!r}"


# ------------------------------------------------------------------------------------------ the walk
_SKIP_FIELDS = {"id", "form_id", "spec", "icon", "key", "type", "url", "data", "arrow_data", "css", "page_script_hash"}


def _proto_texts(message, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in an element's proto (label, body, help, placeholder, options, value, ...)."""
    for fd, value in message.ListFields():
        if fd.name in _SKIP_FIELDS or fd.name.endswith("_id") or fd.name.startswith("deprecated"):
            continue
        where = f"{path}.{fd.name}" if path else fd.name
        repeated = hasattr(value, "__len__") and not isinstance(value, str | bytes) and not hasattr(value, "ListFields")
        values = value if repeated else [value]
        for v in values:
            if isinstance(v, str):
                yield where, v
            elif hasattr(v, "ListFields"):
                yield from _proto_texts(v, where)


def _dated_columns(proto) -> set[str]:
    """The columns a dataframe shows as dates in the reader's order (a DateColumn or DatetimeColumn whose format
    starts with the day): their cells travel as ISO dates but are not shown so."""
    try:
        config = json.loads(getattr(proto, "columns", "") or "{}")
    except ValueError:
        return set()
    return {
        str(value.get("label") or name)
        for name, value in config.items()
        if isinstance(value, dict)
        and (value.get("type_config") or {}).get("type") in ("date", "datetime")
        and str((value.get("type_config") or {}).get("format") or "").startswith("DD")
    }


def _frame_texts(frame: pd.DataFrame, dated: set[str] = frozenset()) -> Iterator[tuple[str, str]]:
    data = {messages("nl")[k] for k in DATA_COLUMNS}
    for name in [*frame.columns, *frame.index.names]:
        if name is not None:
            yield "dataframe header", str(name)
    if not isinstance(frame.index, pd.RangeIndex):
        for v in frame.index:
            yield "dataframe index", str(v)
    for col in frame.columns:
        kind = "data " if str(col) in data else "dated " if str(col) in dated else ""
        where = f"{kind}dataframe column {col!r}"
        for v in frame[col]:
            yield where, str(v)


#: Encoding channels whose values a reader sees: axes, facet headers, legends and text marks.
SHOWN_CHANNELS = {"x", "y", "row", "column", "facet", "color", "fill", "stroke", "shape", "strokeDash", "text"}
#: Parts of a spec that draw no text of their own (tooltips show ids on purpose; detail/order only group).
_HIDDEN_PARTS = {"tooltip", "detail", "order", "datasets", "data", "config", "params", "transform", "$schema"}


def chart_texts(spec: dict, datasets: dict[str, pd.DataFrame]) -> Iterator[tuple[str, str]]:
    """(where, text) for what a Vega-Lite chart shows: every title and subtitle, and the values of the nominal
    fields drawn on an axis, a facet header, a legend or as text."""
    fields: set[str] = set()

    def titles(value) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            for item in value:
                yield from titles(item)
        elif isinstance(value, dict) and "expr" in value:  # lines picked by the container: the built width's
            yield charts.title_lines({"text": value})
        elif isinstance(value, dict):
            for key in ("text", "subtitle"):
                yield from titles(value.get(key))

    def walk(node) -> Iterator[tuple[str, str]]:
        if isinstance(node, list):
            for item in node:
                yield from walk(item)
        elif isinstance(node, dict):
            for key, value in node.items():
                if key == "title":
                    yield from (("chart title", text) for text in titles(value))
                elif key in _HIDDEN_PARTS:
                    continue
                else:
                    if (
                        key in SHOWN_CHANNELS
                        and isinstance(value, dict)
                        and value.get("type") in ("nominal", "ordinal")
                    ):
                        fields.add(value.get("field", ""))
                    yield from walk(value)

    yield from walk(spec)
    for frame in datasets.values():
        for name in fields & set(frame.columns):
            for value in pd.unique(frame[name].dropna()):
                yield f"chart field {name!r}", str(value)


def _chart_of(proto) -> tuple[dict, dict[str, pd.DataFrame]]:
    """The spec and datasets of a vega_lite_chart element (datasets travel as Arrow bytes)."""
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    spec = json.loads(proto.spec)
    datasets = {d.name: convert_arrow_bytes_to_pandas_df(d.data.data) for d in proto.datasets}
    for name, rows in (spec.get("datasets") or {}).items():
        datasets.setdefault(name, pd.DataFrame(rows))
    return spec, datasets


def visible_texts(at: AppTest) -> Iterator[tuple[str, str]]:
    """(where, text) for every visible text of the app's main area and sidebar (charts left out)."""

    def walk(node) -> Iterator[tuple[str, str]]:
        kind = getattr(node, "type", "")
        proto = getattr(node, "proto", None)
        if kind in ("vega_lite_chart", "arrow_vega_lite_chart") and proto is not None:
            yield from chart_texts(*_chart_of(proto))
            return
        if kind in ("plotly_chart", "deck_gl_json_chart"):
            return
        if kind in ("dataframe", "arrow_data_frame", "table"):
            yield from _frame_texts(node.value, _dated_columns(proto))
            return
        if kind == "html" and f'class="{TABLE_CLASS}"' in node.value:  # a static table: the text it shows
            yield from _frame_texts(parse_table(node.value).value)
            return
        if proto is not None:  # an element, or a block (tab and expander labels)
            for field, text in _proto_texts(proto):
                if kind == "html":  # what a reader sees of it: no style sheet, no tags (a grid's scroll hint)
                    text = html.unescape(re.sub(r"<[^>]*>", " ", re.sub(r"<style>.*?</style>", "", text, flags=re.S)))
                    if not text.strip():
                        continue  # a page's style sheet: never shown as text
                yield f"{kind}.{field}", text
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    yield from walk(at._tree)


def findings(at: AppTest, page: str) -> list[Finding]:
    found = []
    for where, text in visible_texts(at):
        if where.startswith("date_input."):  # its value and bounds travel as ISO dates; what it shows is its format
            if where == "date_input.format" and text != DATE_INPUT_FORMAT["nl"]:
                found.append(Finding(f"{page} {where}", text, text))
            continue
        if not where.startswith(("data ", "dated ")):
            found += [Finding(f"{page} {where}", m.group(0), text) for m in ISO_DATE.finditer(text)]
        for token in set(WORD.findall(text.replace("\\", ""))):  # markdown escapes: "ASA\\-klasse"
            bare = token.strip("-'’")
            raw = bare in RAW_TOKENS or bare in RAW or "@" in bare or re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", bare)
            raw = raw or ITEM_ID.fullmatch(bare)
            if bare in RAW_TOKENS or (not where.startswith("data ") and (raw or bare.lower() in ENGLISH)):
                found.append(Finding(f"{page} {where}", bare, text))
    return found


# ------------------------------------------------------------------------------------------ the tests
@pytest.fixture(autouse=True)
def _fresh_engine_cache():
    get_engine.cache_clear()
    yield
    get_engine.cache_clear()


def _walk(at: AppTest, pages: list[str]) -> list[Finding]:
    at.query_params["lang"] = "nl"
    at.session_state["condition"] = "colorectal_cancer"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    found = []
    for page in pages:
        at.switch_page(page)
        at.run()
        assert not at.exception, (page, [e.value for e in at.exception])
        found += findings(at, page)
        if page == "views/condition_team.py" and at.tabs:  # one tab runs at a time: open each of the others
            for tab in TEAM_TABS[1:]:
                at.session_state["team_tab"] = t(f"pages.tab_{tab}", "nl")
                at.run()
                assert not at.exception, (page, tab, [e.value for e in at.exception])
                found += findings(at, f"{page} ({tab})")
            at.session_state["team_tab"] = t(f"pages.tab_{TEAM_TABS[0]}", "nl")
    return found


def _report(found: list[Finding]) -> str:
    unique = {(f.where, f.token): f for f in found}
    return "English or raw ids on Dutch pages:\n" + "\n".join(str(f) for f in list(unique.values())[:80])


def test_the_word_lists_are_sane():
    assert {"baseline", "age", "missing", "signed", "crude"} <= ENGLISH
    assert not {"prom", "asa", "eq-5d", "benchmark", "zorgtraject"} & ENGLISH
    assert {"colorectal_cancer", "baseline", "12m", "age", "asa", "ward_day", "view", "sign_in"} <= RAW


def test_the_walk_finds_english_and_raw_ids():
    """The checker itself: a page text with English, ids or missing values is caught, a Dutch one passes."""

    class Node:
        def __init__(self, type, value):
            self.type, self._value = type, value

        @property
        def value(self):
            return self._value

    class Fake:
        _tree = type("T", (), {"children": {0: Node("dataframe", pd.DataFrame({"Meetmoment": ["baseline", None]}))}})

    tokens = {f.token for f in findings(Fake(), "x")}  # type: ignore[arg-type]
    assert "baseline" in tokens and tokens & RAW_TOKENS
    Fake._tree.children = {0: Node("dataframe", pd.DataFrame({"Actie": ["A-ec7ae80563b4"]}))}
    assert {f.token for f in findings(Fake(), "x")} == {"A-ec7ae80563b4"}  # type: ignore[arg-type]
    Fake._tree.children = {0: Node("dataframe", pd.DataFrame({"Meetmoment": ["Voormeting", "–"]}))}
    assert not findings(Fake(), "x")  # type: ignore[arg-type]


def test_the_walk_reads_charts():
    """A PROM histogram headed by raw timepoint ids (`baseline`, `12m`) or an English title is caught; the same
    chart with the catalog's Dutch timepoint names passes."""
    from tests.test_chart_layout import TIMEPOINTS, Scale
    from vbhc import charts

    scores = pd.DataFrame(
        {"group": ["Ziekenhuis Oost"] * 4, "timepoint": ["baseline", "12m"] * 2, "score": [10, 20, 30, 90]}
    )
    binned = charts.histogram(scores, "score", ["group", "timepoint"], bins=5, range_=(0, 100))

    class Proto:
        def __init__(self, spec):
            self.spec, self.datasets = json.dumps(spec), []

    class Node:
        type = "vega_lite_chart"

        def __init__(self, spec):
            self.proto, self.children = Proto(spec), {}

    class Fake:
        def __init__(self, spec):
            self._tree = type("T", (), {"children": {0: Node(spec)}})

    raw = charts.score_distribution_chart(binned, lang="nl", scale=Scale())  # no catalog timepoints: ids
    tokens = {f.token for f in findings(Fake(raw), "x")}  # type: ignore[arg-type]
    assert {"baseline", "12m"} <= tokens
    english = dict(raw, title={"text": "Score distribution at baseline"})
    assert "distribution" in {f.token for f in findings(Fake(english), "x")}  # type: ignore[arg-type]
    dutch = charts.score_distribution_chart(binned, lang="nl", scale=Scale(), timepoints=TIMEPOINTS)
    assert not findings(Fake(dutch), "x")  # type: ignore[arg-type]


def test_every_page_is_dutch_with_an_empty_database(tmp_path, monkeypatch, local_mode):
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    found = _walk(AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180), PAGES)
    assert not found, _report(found)


def test_every_page_is_dutch_in_local_mode(small_demo_registry, monkeypatch, local_mode):
    """The localhost single-user mode has every role: every page, every element (the words do not depend on the
    registry's size: the small demo registry)."""
    engine, _ = small_demo_registry
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    found = _walk(AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180), PAGES)
    assert not found, _report(found)


@pytest.mark.parametrize(
    ("user", "pages"),
    [
        ("manager", INDICATOR_PAGES),  # other units anonymised, volumes in bands, no patient rows or exports
        # patient rows, aggregated exports, the meeting's forms
        ("care", ["views/condition_team.py", "views/meeting.py", "views/methods.py"]),
        ("quality", ["views/audit.py", "views/data.py"]),  # the audit log with other users' events
    ],
)
def test_every_page_is_dutch_per_role(small_demo_registry, monkeypatch, tmp_path, user, pages):
    engine, _ = small_demo_registry
    sign_in_with_roles(monkeypatch, tmp_path, engine)
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    # the roles come from the claims; the display name is data (and shown in the sidebar), so a neutral one
    at.user = {"is_logged_in": True, **USERS[user], "name": "Testgebruiker"}
    found = _walk(at, pages)
    assert not found, _report(found)
