"""Sign-in and roles in the dashboard (AppTest with a signed-in st.user; the browser test signs in for real)."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from tests.roles import MAPPING, USERS
from tests.shown import tables as shown_tables
from vbhc import access, audit
from vbhc.access import OTHER_UNIT
from vbhc.i18n import t
from vbhc.registry import unit_names
from vbhc.registry import units as registry_units
from vbhc.settings import PROJECT_ROOT

#: how the English pages name an anonymised unit ("Other unit 3"; vbhc.access's id is "other unit 3")
OTHER_NAME = t("comparison.other_unit", "en", number="").strip()


def _app(user: str | None, page: str | None = None, **state) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **USERS[user]} if user else {"is_logged_in": False}
    at.query_params["lang"] = "en"
    for key, value in state.items():
        at.session_state[key] = value
    if page:
        run_on_page(at, page)
    else:
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _texts(at: AppTest) -> str:
    return " ".join(e.value for kind in ("caption", "info", "markdown", "error", "warning") for e in getattr(at, kind))


def test_signed_out_sees_only_the_sign_in_screen(signed_in_db):
    at = _app(None)
    assert [b.label for b in at.button] == [t("app.sign_in", "en")]
    assert t("auth.sign_in_needed", "en") in _texts(at)
    assert not at.dataframe and not shown_tables(at) and not at.selectbox  # no filters, no numbers


def test_a_user_without_a_role_sees_nothing(signed_in_db):
    at = _app("nobody")
    assert "no role is granted" in " ".join(e.value for e in at.error)
    assert not at.dataframe and not shown_tables(at)


def test_manager_sees_own_units_only_and_no_patient_rows_or_exports(signed_in_db):
    names = unit_names(registry_units(engine=signed_in_db), "hospital")
    before = audit.read(signed_in_db)
    first = int(before["id"].max()) if len(before) else 0
    at = _app("manager", "views/condition_team.py", condition="colorectal_cancer", team_tab=t("pages.tab_cases", "en"))
    assert at.selectbox(key="unit_hospital").options == [names["H01"]]
    texts = _texts(at)
    assert t("auth.no_patient_rows", "en") in texts
    at = _app("manager", "views/condition_team.py", condition="colorectal_cancer")
    assert t("auth.no_export", "en") in _texts(at)
    assert not at.checkbox  # no patient-row export option
    at = _app("manager", "views/compare.py", condition="colorectal_cancer")
    units = set(shown_tables(at)[0].value[t("column.unit", "en")].astype(str))
    assert names["H01"] in units and not units & {names[h] for h in ("H02", "H03", "H04")}
    assert any(u.startswith(OTHER_NAME) for u in units)
    events = audit.read(signed_in_db, user="manager@example.org")
    assert {"sign_in", "view"} <= set(events["action"])
    # the pages never asked for what the role may not see (the registry is shared: other tests' probes are refused
    # in it too, so only this test's events)
    assert not (events[events["id"] > first]["action"] == "denied").any()


def test_care_team_sees_its_condition_with_patient_rows_and_reports(signed_in_db):
    at = _app("care", "views/condition_team.py")
    assert at.selectbox(key="condition").options == ["Colorectal cancer"]  # its own condition only
    assert len(at.selectbox(key="unit_hospital").options) == 10  # every unit: the peers are the benchmark
    cases = _app("care", "views/condition_team.py", team_tab=t("pages.tab_cases", "en"))
    assert t("auth.no_patient_rows", "en") not in _texts(cases)
    assert t("pages.record_key", "en") in cases.dataframe[0].value.columns  # the pseudonymised cases to discuss
    # the dates span more than a quarter (a 12-month outcome is known a year later): the intro says whose quarter
    # and what the date is, and the outcome column is the wide one (its long names were cut off at 260 px)
    intro = t("pages.cases_intro", "en", unit="X").split("X", 1)[1]
    assert any(intro in c.value for c in cases.caption), intro
    config = json.loads(cases.dataframe[0].proto.columns)
    # no fixed width on the texts: the grid sizes each to its longest text; at 400 px the outcome was cut off
    # and the reason's risk mid-number ("verwacht risico 19,"); the risk is a column of its own
    outcome, risk, why = (t(f"pages.{key}", "en") for key in ("outcome", "expected_risk", "why"))
    assert all("width" not in config[name] for name in (outcome, risk, why)), config
    grid = cases.dataframe[0].value
    assert list(grid.columns)[2:] == [outcome, risk, why]
    assert grid[risk].str.fullmatch(r"\d+\.\d%").all(), grid[risk].tolist()
    assert not grid[why].str.contains(r"\d").any(), grid[why].tolist()
    assert t("auth.no_export", "en") not in _texts(at)
    assert not at.checkbox  # aggregated exports only
    for page in ("views/audit.py", "views/data.py"):  # not in a care team's navigation
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)


def _chart_units(at: AppTest) -> list[set[str]]:
    """Per chart the page drew, the unit ids in its data (its datasets are sent as Arrow tables)."""
    import io

    import pyarrow as pa

    def walk(node):
        for child in getattr(node, "children", {}).values():
            yield child
            yield from walk(child)

    found = []
    for element in walk(at._tree):
        if element.type == "vega_lite_chart":
            units: set[str] = set()
            for dataset in element.proto.datasets:
                frame = pa.ipc.open_stream(io.BytesIO(dataset.data.data)).read_pandas()
                if "unit_id" in frame or "unit" in frame:
                    units |= set(frame["unit_id" if "unit_id" in frame else "unit"].astype(str))
            found.append(units)
    return found


def test_a_care_team_limited_to_a_hospital_takes_only_its_own_units_in_focus(signed_in_db):
    """A care team limited to H01 picked another hospital's unit and got its VLAD/CUSUM chart (each care cycle's
    outcome by date: patient-level) and its trend by quarter (quarters of a few care cycles), below the cells its
    tables withhold. It now picks among its own hospital's units (a tampered URL falls back), and still sees every
    unit in the comparison charts."""
    units = registry_units(engine=signed_in_db)
    names = unit_names(units, "hospital")
    depth = t("pages.tab_depth", "en")
    at = _app("care_h01", "views/condition_team.py", unit_hospital="H02", team_tab=depth, indicator="mortality_30d")
    assert at.selectbox(key="unit_hospital").options == [names["H01"]]
    assert at.selectbox(key="unit_hospital").value == "H01"
    single = [units for units in _chart_units(at) if len(units) == 1]  # the unit's own charts (VLAD, CUSUM)
    assert single and all(units <= {"H01", names["H01"]} for units in single), single
    at = _app("care_h01", "views/condition_team.py", level="department")
    options = at.selectbox(key="unit_department").value, at.selectbox(key="unit_department").options
    assert options[0].startswith("H01/") and all(u.startswith(names["H01"]) for u in options[1]), options
    at = _app("care", "views/condition_team.py", unit_hospital="H02")  # without a hospital limit: every unit
    assert at.selectbox(key="unit_hospital").value == "H02"


def test_a_care_team_limited_to_a_hospital_is_not_offered_a_comparison_group(signed_in_db):
    """A group's figures minus the team's own gave other hospitals' withheld cells back, so vbhc.access refuses
    any group for it: the sidebar does not offer one (it offered the box and then refused every pick) and says
    why; a shared link's group falls back to all units. A team without a hospital limit keeps the box."""
    at = _app("care_h01", "views/condition_team.py", peers=["H01", "H02"])
    assert not [m for m in at.sidebar.multiselect if m.label == t("filter.comparison_group", "en")]
    assert any(t("comparison.not_with_withheld", "en") in c.value for c in at.sidebar.caption)
    assert "peers" not in at.query_params
    at = _app("care", "views/condition_team.py")
    assert [m.label for m in at.sidebar.multiselect] == [t("filter.comparison_group", "en")]


def test_a_manager_is_not_offered_a_group_the_registry_has_too_few_hospitals_for(signed_in_db):
    """A manager's group must hold five other hospitals and leave five outside it (else the registry's benchmark
    minus the group's singles out the hospitals outside it), which the demo's ten hospitals cannot: every pick was
    refused with a warning. The sidebar now says why instead of offering the box; a link's group falls back to all
    units, said on the page, in the viewer's language."""
    at = _app("manager", "views/condition_team.py", condition="colorectal_cancer", peers=["H02", "H03"])
    assert not [m for m in at.sidebar.multiselect if m.label == t("filter.comparison_group", "en")]
    assert any(
        t("comparison.no_group_possible", "en", count=access.MIN_OTHER_UNITS) in c.value for c in at.sidebar.caption
    )
    assert not at.sidebar.warning  # no refusal of a pick the sidebar never offered
    assert "peers" not in at.query_params


def test_quality_may_export_patient_rows_and_read_the_audit_log(signed_in_db):
    at = _app("quality", "views/condition_team.py", condition="colorectal_cancer")
    assert [c.label for c in at.checkbox] == [t("download.with_patient_rows", "en")]
    at = _app("quality", "views/audit.py")
    assert at.title[0].value == t("audit.title", "en")
    log = at.dataframe[0].value
    # shown as the reader reads it (the CSV download keeps the stored ids)
    assert {t("audit.action_sign_in", "en")} <= set(log[t("audit.col_action", "en")])
    assert "care@example.org" in set(log[t("audit.col_user_id", "en")]) or len(log)  # earlier tests' events, or its own


def test_the_audit_log_names_units_as_every_other_page_does(signed_in_db):
    """A signal detected or a target set for a hospital, a department or a condition team is logged with the unit's
    id; the log shows its name (the detection of the demo's signals showed "H09" in the unit column)."""
    units = registry_units(engine=signed_in_db)
    hospitals, departments = unit_names(units, "hospital"), unit_names(units, "department")
    department = next(iter(departments))
    ids = ["H09", department, "colorectal_cancer@H02"]
    for unit in ids:
        audit.record(signed_in_db, "quality@example.org", "edit", condition="colorectal_cancer", unit=unit)
    at = _app("quality", "views/audit.py")
    shown = set(at.dataframe[0].value[t("audit.col_unit", "en")])
    assert {hospitals["H09"], departments[department]} <= shown, shown
    assert t("comparison.team_unit", "en", condition="Colorectal cancer", hospital=hospitals["H02"]) in shown
    assert not shown & set(ids), shown


def test_the_audit_log_reads_its_details_in_the_readers_language(signed_in_db):
    """The details column showed the stored JSON: English keys and codes on the Dutch page and unit ids in its
    lists. It now names them as the page's language does (the CSV download keeps the JSON)."""
    names = unit_names(registry_units(engine=signed_in_db), "hospital")
    detail = {"what": "board", "hospitals": ["H03", "H04"], "teams": 12}
    audit.record(signed_in_db, "quality@example.org", "view", detail=detail)
    audit.record(signed_in_db, "quality@example.org", "edit", detail={"what": "signal", "change": "detected"})
    for lang, board in (("nl", "Bestuursoverzicht"), ("en", "Board review")):
        at = _app("quality", "views/audit.py", _chosen_lang=lang)  # ui.filters.CHOSEN_LANGUAGE
        details = list(at.dataframe[0].value[t("audit.col_detail", lang)])
        hospitals = ", ".join(names[h] for h in ("H03", "H04"))
        what, seen = t("audit.detail.what", lang), t("audit.detail.hospitals", lang)
        assert f"{what}: {board} · {seen}: {hospitals} · {t('audit.detail.teams', lang)}: 12" in details, details
        assert not [d for d in details if "{" in d or '"what"' in d], details
        # the hospitals of this event by name (the registry is shared: another test's refused link keeps the ids
        # it asked for, as asked)
        assert not [d for d in details if d.startswith(f"{what}: {board}") and "H03" in d], details
        assert t("audit.detail.change", lang) + ": " + t("audit.change.detected", lang) in " ".join(details)


def test_manager_cost_page_names_no_other_hospital(signed_in_db):
    import pandas as pd

    from ui.data import only_visible
    from vbhc.indicators import IndicatorResult

    names = unit_names(registry_units(engine=signed_in_db), "hospital")
    at = _app("manager", "views/cost_value.py", condition="colorectal_cancer")
    shown = " ".join(" ".join(map(str, frame.value.to_numpy().ravel())) for frame in [*at.dataframe, *shown_tables(at)])
    assert names["H01"] in shown and OTHER_NAME in shown  # own unit by name, the others anonymised
    assert not any(h in shown for h in ("H02", "H03", "H04", "H05")), shown
    assert not any(names[h] in shown for h in ("H02", "H03", "H04", "H05")), shown
    # per-unit frames computed from the full data are cut to the units the viewer's table names
    table = pd.DataFrame({"unit": ["H01", f"{OTHER_UNIT} 1"], "anonymised": [False, True]})
    result = IndicatorResult("colorectal_cancer", "hospital", None, table)
    breakdown = pd.DataFrame({"unit": ["H01", "H02", "H03"], "cost": [1.0, 2.0, 3.0]})
    assert only_visible(result, breakdown)["unit"].tolist() == ["H01"]
    quality_table = table.assign(anonymised=False)
    assert len(only_visible(IndicatorResult("c", "hospital", None, quality_table), breakdown)) == 3


def test_a_viewer_never_gets_another_scopes_cached_view(signed_in_db, monkeypatch, tmp_path):
    """One server serves every viewer; its shared caches are keyed by Viewer.cache_key. A grant with a typo,
    hospitals ["H01,H02"] (no such hospital: this manager's pages show only anonymised units), had the key of a
    manager of ["H01", "H02"]: after that manager's visit it was shown both hospitals by name and figures."""
    mapping = tmp_path / "typo.toml"
    mapping.write_text(
        MAPPING
        + '[[grant]]\nuser = "two@example.org"\nrole = "manager"\nhospitals = ["H01", "H02"]\n'
        + '[[grant]]\nuser = "typo@example.org"\nrole = "manager"\nhospitals = ["H01,H02"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    monkeypatch.setitem(USERS, "two", {"email": "two@example.org", "name": "Two", "groups": []})
    monkeypatch.setitem(USERS, "typo", {"email": "typo@example.org", "name": "Typo", "groups": []})
    names = unit_names(registry_units(engine=signed_in_db), "hospital")

    def units(user: str) -> set[str]:
        at = _app(user, "views/compare.py", condition="colorectal_cancer")
        return set(shown_tables(at)[0].value[t("column.unit", "en")].astype(str))

    assert {names["H01"], names["H02"]} <= units("two")  # the first viewer fills the caches
    assert not units("typo") & set(names.values())  # the second, same filters: no hospital by name


@pytest.mark.parametrize("address", ["0.0.0.0", "", "::", "dashboard.example.org", "10.0.0.5", "127.0.0.2", "[::1]"])
def test_local_mode_is_refused_unless_the_server_listens_on_localhost(small_demo_db, monkeypatch, address):
    """The single-user mode (every role, no sign-in) runs only on a loopback address: all interfaces (an empty
    address, 0.0.0.0, ::), a hostname or another address get the refusal and no page, no filter, no number."""
    from streamlit import config

    monkeypatch.setenv("VBHC_AUTH", "local")
    previous = config.get_option("server.address")
    config.set_option("server.address", address or None)
    try:
        at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
        at.query_params["lang"] = "en"
        run_on_page(at, "views/methods.py")
    finally:
        config.set_option("server.address", previous)
    assert at.error and not at.selectbox and not at.dataframe and not shown_tables(at)
    assert "localhost" in at.error[0].value


def test_manager_overview_says_why_a_key_indicator_has_no_value(signed_in_db):
    """A key indicator whose benchmark is withheld from a manager (a PROM too few other hospitals record) shows its
    crude value and why there is no benchmark, never an empty "– adjusted for case mix (benchmark –)"."""
    from vbhc.i18n import MISSING

    at = _app("manager", "views/overview.py")
    shown = " ".join(" ".join(map(str, frame.value.to_numpy().ravel())) for frame in [*at.dataframe, *shown_tables(at)])
    for key in ("overview.key_value", "overview.key_value_adjusted"):
        empty = t(key, "en", indicator="", value=MISSING, benchmark=MISSING).removeprefix(": ")
        assert empty not in shown, shown
    assert "no benchmark: it would rest on too few other units" in shown  # the demo's withheld key indicator
