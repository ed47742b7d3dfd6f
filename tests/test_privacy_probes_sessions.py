"""Privacy probes of what outlives one script run: two sessions of different roles in one server process.

Every cache of the pages (st.cache_data / st.cache_resource, the module LRUs of ui.data and ui.render, the
results store) is shared by every session of the server. A first session that sees every hospital warms them; a
second session of a manager (its own hospital by name, the others anonymised) or of a care team limited to one
hospital must not get the first's figures, units or names: not in the page's texts and tables, not in its widgets'
options, not in the data every chart embeds in its Vega-Lite spec (the browser holds the whole dataset, whatever
the chart draws), and not in the files the page offers. And the reverse order: the limited session first must not
leave its view to the one that sees all.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import zipfile
from collections.abc import Callable
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import START_PAGE, run_on_page
from tests.roles import USERS
from tests.shown import tables as shown_tables
from ui.render import XLSX_MIME
from vbhc import access, audit
from vbhc.i18n import t
from vbhc.registry import unit_names
from vbhc.registry import units as registry_units
from vbhc.settings import PROJECT_ROOT, suppress_below

CONDITION = "colorectal_cancer"


def _app(user: str, page: str, query: dict[str, str] | None = None, **state) -> AppTest:
    """The page as `user` sees it, with the URL's `query` and the session's `state` (widget values) set first."""
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS[user]}
    at.query_params["lang"] = "en"
    for key, value in (query or {}).items():
        at.query_params[key] = value
    for key, value in state.items():
        at.session_state[key] = value
    run_on_page(at, page)
    assert not at.exception, [e.value for e in at.exception]
    return at


def _walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _walk(child)


def everything_sent(at: AppTest) -> str:
    """All the page sent to the browser, as text: every element's message (texts, options, chart specs, table
    bytes) and every chart's and table's Arrow data read back as CSV."""
    parts = []
    for element in _walk(at._tree):
        proto = getattr(element, "proto", None)
        if proto is None:
            continue
        parts.append(str(proto))
        if element.type == "vega_lite_chart":
            for dataset in proto.datasets:
                frame = pa.ipc.open_stream(io.BytesIO(dataset.data.data)).read_pandas()
                parts.append(frame.to_csv())
    for frame in at.dataframe:
        parts.append(frame.value.to_csv())
    return "\n".join(parts)


def _forbidden(engine, own: set[str]) -> re.Pattern:
    names = unit_names(registry_units(engine=engine), "hospital")
    others = [h for h in names if h not in own]
    words = [*others, *(names[h] for h in others)]
    return re.compile(r"(?<![A-Za-z0-9])(" + "|".join(re.escape(w) for w in words) + r")(?![A-Za-z0-9])")


def _names(engine) -> dict[str, str]:
    return unit_names(registry_units(engine=engine), "hospital")


def _leaks(pattern: re.Pattern, text: str) -> list[str]:
    """What of `pattern` is in `text`, each with a little of what surrounds it (for the failure's message)."""
    return [text[max(0, m.start() - 80) : m.end() + 40] for m in pattern.finditer(text)][:5]


#: Every page a manager opens, with the tabs and levels that draw other charts (condition, level and tab as the
#: session state a sidebar click sets).
MANAGER_VIEWS = [
    ("overview", {}),
    ("condition_team", {}),
    ("condition_team", {"team_tab": t("pages.tab_depth", "en")}),
    ("condition_team", {"team_tab": t("pages.tab_casemix", "en")}),
    ("condition_team", {"team_tab": t("pages.tab_cases", "en")}),
    ("condition_team", {"level": "department", "team_tab": t("pages.tab_depth", "en")}),
    ("meeting", {"meeting": dt.date(2025, 6, 1)}),
    ("meeting", {"level": "department", "meeting": dt.date(2025, 6, 1)}),
    ("board", {}),
    ("proms", {}),
    ("proms", {"level": "department", "period": "2025"}),
    ("compare", {}),
    ("compare", {"level": "department"}),
    ("cost_value", {}),
]


@pytest.mark.parametrize(("page", "state"), MANAGER_VIEWS)
def test_a_manager_after_a_session_that_sees_every_hospital_gets_nothing_of_the_others(signed_in_db, page, state):
    """Quality (every hospital by name) opens the page first and fills the server's caches; the manager of H01 then
    opens it with the same filters: no other hospital's id or name in anything the page sends, the chart data
    embedded in the specs included, and no file to download (a manager exports nothing). The meeting date lies in
    the data, so "since the last meeting" has something to say."""
    forbidden = _forbidden(signed_in_db, {"H01"})
    path = f"views/{page}.py"
    seen = everything_sent(_app("quality", path, condition=CONDITION, **state))
    assert forbidden.search(seen), "the first session sees every hospital: the probe reads what it sends"
    at = _app("manager", path, condition=CONDITION, **state)
    assert not _leaks(forbidden, everything_sent(at)), _leaks(forbidden, everything_sent(at))
    assert not at.get("download_button")


def test_a_care_team_limited_to_a_hospital_after_its_whole_condition_team(signed_in_db):
    """The condition's care team (every unit in focus) opens another hospital's unit in depth and its cases; the
    team limited to H01 then asks for the same unit: it is given its own, and no chart of single care cycles
    (VLAD, CUSUM) and no case list of another hospital, though the caches hold them."""
    names = _names(signed_in_db)
    depth, cases = t("pages.tab_depth", "en"), t("pages.tab_cases", "en")
    state = {"condition": CONDITION, "unit_hospital": "H02", "indicator": "mortality_30d"}
    whole = _app("care", "views/condition_team.py", team_tab=depth, **state)
    assert {"H02", names["H02"]} & set().union(*_chart_units(whole))
    _app("care", "views/condition_team.py", team_tab=cases, **state)
    at = _app("care_h01", "views/condition_team.py", team_tab=depth, **state)
    assert at.selectbox(key="unit_hospital").value == "H01"
    single = [units for units in _chart_units(at) if len(units) == 1]
    assert single and all(units <= {"H01", names["H01"]} for units in single), single
    at = _app("care_h01", "views/condition_team.py", team_tab=cases, **state)
    text = everything_sent(at)
    assert names["H01"] in text and names["H02"] not in text


def test_after_a_manager_quality_gets_every_hospital_by_name(signed_in_db):
    """The reverse order: the manager (others anonymised) first, then quality with the same filters: quality gets
    its own view, every hospital by name, not the manager's the caches hold."""
    names = _names(signed_in_db)
    _app("manager", "views/compare.py", condition=CONDITION)
    at = _app("quality", "views/compare.py", condition=CONDITION)
    shown = set(shown_tables(at)[0].value[t("column.unit", "en")].astype(str))
    assert shown == set(names.values()), shown  # every hospital by name, none as "other unit"


def test_after_a_care_team_limited_to_a_hospital_its_whole_team_picks_every_unit(signed_in_db):
    """The team limited to H01 first, then the condition's whole team: every hospital's unit to pick."""
    names = _names(signed_in_db)
    _app("care_h01", "views/condition_team.py", condition=CONDITION)
    at = _app("care", "views/condition_team.py", condition=CONDITION)
    assert len(at.selectbox(key="unit_hospital").options) == len(names)


def _chart_units(at: AppTest) -> list[set[str]]:
    """Per chart the page drew, the units in its embedded data (ids or names, as the chart carries them)."""
    found = []
    for element in _walk(at._tree):
        if element.type == "vega_lite_chart":
            units: set[str] = set()
            for dataset in element.proto.datasets:
                frame = pa.ipc.open_stream(io.BytesIO(dataset.data.data)).read_pandas()
                for column in ("unit_id", "unit"):
                    if column in frame:
                        units |= set(frame[column].astype(str))
            found.append(units)
    return found


# --------------------------------------------------------------------------------------------- links and ids
def _denied_since(engine, user: str, first_id: int) -> pd.DataFrame:
    events = audit.read(engine, user=user, action="denied")
    return events[events["id"] > first_id]


def _last_id(engine) -> int:
    events = audit.read(engine)
    return int(events["id"].max()) if len(events) else 0


def test_a_link_or_a_widget_naming_another_hospitals_unit_gives_a_manager_the_own_unit(signed_in_db):
    """A shared or tampered link (?unit_hospital=H02, a free comparison group) and a widget's state set to another
    hospital's unit: the manager of H01 gets H01 and nothing of H02 (after quality opened H02 with the same
    filters); the link's refusal is in the audit log with the parameter and the id asked, nothing of the figures
    it would have shown."""
    forbidden = _forbidden(signed_in_db, {"H01"})
    for page in ("views/condition_team.py", "views/meeting.py"):
        _app("quality", page, condition=CONDITION, unit_hospital="H02")
        first = _last_id(signed_in_db)
        at = _app("manager", page, query={"unit_hospital": "H02", "peers": "H02,H03,H04,H05,H06"}, condition=CONDITION)
        assert at.sidebar.selectbox(key="unit_hospital").value == "H01"
        assert not _leaks(forbidden, everything_sent(at)), _leaks(forbidden, everything_sent(at))
        denied = _denied_since(signed_in_db, "manager@example.org", first)
        details = [json.loads(d) for d in denied["detail"]]
        assert {(d.get("filter"), d.get("asked")) for d in details} >= {("unit_hospital", "H02")}, details
        assert all(set(d) == {"what", "filter", "asked"} for d in details), details
        at = _app("manager", page, condition=CONDITION, unit_hospital="H02")
        assert at.sidebar.selectbox(key="unit_hospital").value == "H01"
        assert not _leaks(forbidden, everything_sent(at)), _leaks(forbidden, everything_sent(at))


@pytest.mark.parametrize(("user", "page"), [("manager", "data"), ("manager", "audit"), ("care_h01", "audit")])
def test_a_deep_link_to_a_page_the_role_may_not_open_draws_another(signed_in_db, user, page):
    """A link straight to the Data or Audit page: not in the viewer's navigation, so the first run draws the
    overview (the navigation's first page) and asking for the page fails; nothing of the page is sent."""
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        _app(user, f"views/{page}.py", condition=CONDITION)
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS[user]}
    at.query_params["lang"] = "en"
    os.environ[START_PAGE] = page
    try:
        at.run()
    finally:
        del os.environ[START_PAGE]
    assert [title.value for title in at.title] == [t("app.title", "en")]
    assert not at.get("file_uploader")  # the Data page's upload; the audit log's table is not drawn either


# --------------------------------------------------------------------------------------------- audit log
def test_a_refused_export_logs_what_was_asked_not_the_figures(signed_in_db):
    """A manager's export of a table (refused: a manager exports nothing): the "denied" event names the permission,
    condition, unit and what was asked, and holds none of the table's names or figures; the file is never built.
    Nor does a refused view of another condition store anything of it."""
    from vbhc.access import AccessDenied, Role, Scope, Viewer

    manager = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, hospitals=frozenset({"H01"})),))
    secret = pd.DataFrame({"unit": ["H02", "SECRET-UNIT"], "n": [7, 3], "value": [0.4285714, 0.1234567]})
    first = _last_id(signed_in_db)
    built = []
    with pytest.raises(AccessDenied):
        access.export_table(manager, secret, what="chart_data", file_name="f.csv", condition=CONDITION, unit="H01")
    with pytest.raises(AccessDenied):
        access.export_file(
            manager, lambda: built.append(1) or b"SECRET", what="excel_report", condition=CONDITION, engine=signed_in_db
        )
    care = Viewer("care-h01@example.org", "", (Scope(Role.CARE_TEAM, frozenset({CONDITION}), frozenset({"H01"})),))
    with pytest.raises(AccessDenied):
        access.indicator_rows(care, secret.assign(condition="hip_osteoarthritis"), engine=signed_in_db)
    assert not built
    denied = audit.read(signed_in_db, action="denied")
    denied = denied[denied["id"] > first]
    assert len(denied) == 3
    stored = denied.to_csv()
    for figure in ("SECRET", "0.428", "0.123", "H02"):
        assert figure not in stored, (figure, stored)


# --------------------------------------------------------------------------------------------- downloads
@pytest.fixture
def offered_files(monkeypatch) -> list[tuple[str, str, Callable[[], Any]]]:
    """Every file a page run offers (st.download_button's deferred data: the callable a click runs), recorded as
    (file name, MIME type, callable) so a test can build each file as a click would."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    offered: list[tuple[str, str, Callable[[], Any]]] = []
    register = MediaFileManager.add_deferred

    def recording(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        offered.append((str(file_name), str(mimetype), data_callable))
        return register(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", recording)
    return offered


def _file_text(name: str, content: bytes) -> str:
    """A CSV's text, or every part of a workbook (its XML) as text."""
    if name.endswith(".xlsx"):
        with zipfile.ZipFile(io.BytesIO(content)) as book:
            return "\n".join(book.read(part).decode("utf-8") for part in book.namelist())
    return content.decode("utf-8-sig")


DOWNLOAD_VIEWS = [
    ("overview", {}),
    ("condition_team", {}),
    ("condition_team", {"level": "department", "period": "2025", "team_tab": t("pages.tab_depth", "en")}),
    ("compare", {"level": "department", "period": "2025"}),
    ("proms", {"level": "department", "period": "2025"}),
    ("cost_value", {"level": "department", "period": "2025"}),
    ("meeting", {}),
]


@pytest.mark.parametrize("user", ["care", "care_h01"])
def test_every_file_a_care_team_downloads_keeps_to_its_condition_and_the_file_rule(signed_in_db, offered_files, user):
    """After quality opened the same pages (its files built from the same caches), every chart CSV and workbook a
    care team of colorectal cancer is offered holds no other condition, and no chart CSV a row about fewer care
    cycles than the threshold (the file rule, for every role: a file leaves the hospital). The department level
    of one year has such rows on the page."""
    from vbhc.catalog import default_catalog

    conditions = default_catalog().conditions
    others = [c for c in conditions if c != CONDITION]
    words = [*others, *(conditions[c].label("en") for c in others), *(conditions[c].label("nl") for c in others)]
    other_condition = re.compile("|".join(re.escape(w) for w in words))
    counts = {t(f"chart.label.{c}", "en") for c in ("n", "cycles")}
    threshold = suppress_below()
    for page, state in DOWNLOAD_VIEWS:
        _app("quality", f"views/{page}.py", condition=CONDITION, **state)
    offered_files.clear()
    for page, state in DOWNLOAD_VIEWS:
        _app(user, f"views/{page}.py", condition=CONDITION, **state)
    built = [(name, build()) for name, mime, build in offered_files if mime in ("text/csv", XLSX_MIME)]
    assert any(name.endswith(".csv") for name, _ in built) and any(name.endswith(".xlsx") for name, _ in built)
    for name, content in built:
        text = _file_text(name, content)
        assert not other_condition.search(text), (name, other_condition.search(text))
        if name.endswith(".csv"):
            frame = pd.read_csv(io.StringIO(text))
            for column in counts & set(frame.columns):
                values = pd.to_numeric(frame[column], errors="coerce")
                small = frame[(values > 0) & (values < threshold)]
                assert small.empty, (name, small.to_dict("records"))
