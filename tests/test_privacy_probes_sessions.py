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
import re

import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.roles import MAPPING, USERS
from tests.shown import tables as shown_tables
from vbhc.i18n import t
from vbhc.registry import unit_names
from vbhc.registry import units as registry_units
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

CONDITION = "colorectal_cancer"


@pytest.fixture
def signed_in_db(small_demo_registry, monkeypatch, tmp_path):
    engine, _ = small_demo_registry
    mapping = tmp_path / "access.toml"
    mapping.write_text(MAPPING, encoding="utf-8")
    monkeypatch.setenv("VBHC_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    monkeypatch.setenv("VBHC_AUTH", "oidc")
    get_engine.cache_clear()
    yield engine
    get_engine.cache_clear()


def _app(user: str, page: str, **state) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS[user]}
    at.query_params["lang"] = "en"
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
