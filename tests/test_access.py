"""Roles: the mapping file is checked strictly, the permission rules hold for every role and condition, and the
guarded entry points refuse (and audit) what a viewer may not see, even when called directly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.registry_files import write_small_registry
from vbhc import access, audit
from vbhc.access import (
    AccessConfigError,
    AccessDenied,
    Permission,
    Role,
    Scope,
    Viewer,
    focus_units,
    guarded_import,
    indicator_rows,
    load_access,
    local_viewer,
    may_export,
    may_focus_unit,
    may_import,
    may_manage_access,
    may_read_audit,
    may_see_patient_rows,
    may_view_condition,
    parse_access,
    patient_rows,
    require,
    viewer_for,
    visible_units,
)
from vbhc.catalog import default_catalog
from vbhc.indicators import indicator_table
from vbhc.ingest import import_files
from vbhc.settings import PROJECT_ROOT
from vbhc.store import row_counts

CONDITIONS = sorted(default_catalog().conditions)
OESO, HIP = "oesophageal_cancer", "hip_osteoarthritis"


def care(*conditions: str, hospitals: tuple[str, ...] = ()) -> Viewer:
    return Viewer("zorg@example.org", "Zorg", (Scope(Role.CARE_TEAM, frozenset(conditions), frozenset(hospitals)),))


def manager(hospitals=(), departments=(), divisions=(), conditions=()) -> Viewer:
    scope = Scope(
        Role.MANAGER, frozenset(conditions), frozenset(hospitals), frozenset(departments), frozenset(divisions)
    )
    return Viewer("m.jansen@example.org", "M. Jansen", (scope,))


QUALITY = Viewer("kwaliteit@example.org", "Kwaliteit", (Scope(Role.QUALITY),))
ADMIN = Viewer("beheer@example.org", "Beheer", (Scope(Role.ADMIN),))
NOBODY = Viewer("onbekend@example.org", "Onbekend")


# --- the mapping file -------------------------------------------------------------------------------------


def test_the_shipped_example_mapping_loads_and_matches_users_and_groups():
    mapping = load_access(PROJECT_ROOT / "config" / "access.example.toml")
    team = viewer_for("chirurg@example.org", "Chirurg", ["zorgteam-colorectaal", "alle-medewerkers"], mapping)
    assert team.roles == {Role.CARE_TEAM}
    assert team.conditions == {"colorectal_cancer"}
    boss = viewer_for("M.Jansen@Example.org", "M. Jansen", [], mapping)  # emails compare case-insensitively
    assert boss.roles == {Role.MANAGER} and boss.hospitals == {"H01"}
    assert viewer_for("a.de.vries@example.org", "", [], mapping).departments == {"H01/SUR", "H01/ORT"}


def test_a_user_without_a_grant_has_no_role_and_sees_nothing():
    mapping = load_access(PROJECT_ROOT / "config" / "access.example.toml")
    viewer = viewer_for("stranger@example.org", "Stranger", ["some-other-group"], mapping)
    assert viewer.roles == frozenset()
    for condition in CONDITIONS:
        assert not may_view_condition(viewer, condition)
        assert not may_see_patient_rows(viewer, condition)
        assert not may_export(viewer, condition)
    assert not (may_import(viewer) or may_read_audit(viewer) or may_manage_access(viewer))


def test_grants_merge_and_keep_their_own_scope():
    mapping = parse_access(
        {
            "grant": [
                {"group": "team-a", "role": "care_team", "conditions": [OESO], "hospitals": ["H01"]},
                {"group": "team-b", "role": "care_team", "conditions": [HIP], "hospitals": ["H02"]},
                {"user": "x@example.org", "role": "manager", "departments": ["H02/SUR"]},
            ]
        }
    )
    viewer = viewer_for("X@example.org", "", ["team-a", "team-b"], mapping)
    assert viewer.roles == {Role.CARE_TEAM, Role.MANAGER}
    assert may_see_patient_rows(viewer, OESO, "H01") and may_see_patient_rows(viewer, HIP, "H02")
    # the scopes are not mixed: team A's condition in team B's hospital stays closed
    assert not may_see_patient_rows(viewer, OESO, "H02")
    assert not may_see_patient_rows(viewer, HIP, "H01")


BAD_MAPPINGS = [
    ({"grant": [{"user": "a@example.org", "role": "superuser"}]}, "grant 1, key 'role', value 'superuser'"),
    ({"grant": [{"user": "a@example.org", "role": "quality", "colour": "red"}]}, "grant 1, key 'colour'"),
    (
        {"grant": [{"group": "g", "role": "care_team", "conditions": ["flu"]}]},
        "grant 1, key 'conditions', value 'flu': unknown condition",
    ),
    ({"grant": [{"group": "g", "role": "care_team", "conditions": "colorectal_cancer"}]}, "must be a non-empty list"),
    ({"grant": [{"group": "g", "role": "care_team"}]}, "must name its condition(s)"),
    ({"grant": [{"user": "a@example.org", "role": "manager"}]}, "must name hospitals, departments or divisions"),
    ({"grant": [{"user": "a@example.org", "role": "manager", "departments": ["SUR"]}]}, "HOSPITAL/DEPARTMENT"),
    ({"grant": [{"user": "a@example.org", "role": "quality", "hospitals": ["H01"]}]}, "not a scope of role quality"),
    ({"grant": [{"user": "a@example.org", "group": "g", "role": "admin"}]}, "exactly one of 'user'"),
    ({"grant": [{"role": "admin"}]}, "exactly one of 'user'"),
    ({"grant": [{"user": "not-an-email", "role": "admin"}]}, "key 'user', value 'not-an-email'"),
    ({"grant": [{"user": 42, "role": "admin"}]}, "key 'user', value 42"),
    ({"grants": []}, "unknown top-level key 'grants'"),
    ({"grant": {"user": "a@example.org"}}, "must be a list of tables"),
    (
        {"grant": [{"user": "a@example.org", "role": "admin"}, {"group": "g", "role": "manager", "hospitals": []}]},
        "grant 2, key 'hospitals'",
    ),
]


@pytest.mark.parametrize(("data", "message"), BAD_MAPPINGS)
def test_mistakes_in_the_mapping_name_file_grant_key_and_value(data, message):
    with pytest.raises(AccessConfigError) as info:
        parse_access(data, "config/access.toml")
    assert "config/access.toml" in str(info.value)
    assert message in str(info.value)


def test_mapping_file_errors(tmp_path, monkeypatch):
    with pytest.raises(AccessConfigError, match="not found"):
        load_access(tmp_path / "missing.toml")
    bad = tmp_path / "access.toml"
    bad.write_text("[[grant]\nrole = ", encoding="utf-8")
    with pytest.raises(AccessConfigError, match="not valid TOML"):
        load_access(bad)
    bad.write_text('[[grant]]\nuser = "a@example.org"\nrole = "admin"\n', encoding="utf-8")
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(bad))
    assert load_access().grants[0].scope.role == Role.ADMIN  # the setting names the default file


# --- permission rules (pure) ------------------------------------------------------------------------------

conditions_st = st.sampled_from(CONDITIONS)
hospitals_st = st.sampled_from(["H01", "H02", "H03"])


@given(own=st.sets(conditions_st, min_size=1, max_size=3), asked=conditions_st, hospital=hospitals_st)
def test_care_team_sees_its_own_conditions_only(own, asked, hospital):
    viewer = care(*own)
    assert may_view_condition(viewer, asked) == (asked in own)
    assert may_see_patient_rows(viewer, asked, hospital) == (asked in own)
    assert may_export(viewer, asked) == (asked in own)
    assert not may_export(viewer, asked, patient_level=True)
    assert not (may_import(viewer) or may_read_audit(viewer) or may_manage_access(viewer))


@given(asked=conditions_st, own=st.sets(hospitals_st, min_size=1), hospital=st.one_of(st.none(), hospitals_st))
def test_care_team_limited_to_hospitals_sees_rows_of_those_only(asked, own, hospital):
    viewer = care(asked, hospitals=tuple(own))
    assert may_see_patient_rows(viewer, asked, hospital) == (hospital in own)


@given(
    asked=conditions_st,
    hospital=st.one_of(st.none(), hospitals_st),
    hospitals=st.sets(hospitals_st),
    departments=st.sets(st.sampled_from(["H01/SUR", "H02/ORT"])),
    conditions=st.sets(conditions_st, max_size=2),
)
def test_a_manager_never_sees_patient_rows_and_never_exports(asked, hospital, hospitals, departments, conditions):
    viewer = manager(hospitals or {"H01"}, departments, conditions=conditions)
    assert not may_see_patient_rows(viewer, asked, hospital)
    assert not may_export(viewer, asked)
    assert may_view_condition(viewer, asked) == (not conditions or asked in conditions)
    assert not (may_import(viewer) or may_read_audit(viewer) or may_manage_access(viewer))


@given(asked=conditions_st, hospital=st.one_of(st.none(), hospitals_st))
def test_quality_sees_everything_and_admin_no_data(asked, hospital):
    assert may_view_condition(QUALITY, asked) and may_see_patient_rows(QUALITY, asked, hospital)
    assert may_export(QUALITY, asked, patient_level=True) and may_import(QUALITY) and may_read_audit(QUALITY)
    assert not may_manage_access(QUALITY)
    assert not may_view_condition(ADMIN, asked) and not may_see_patient_rows(ADMIN, asked, hospital)
    assert not may_export(ADMIN, asked) and not may_read_audit(ADMIN)
    assert may_import(ADMIN) and may_manage_access(ADMIN)


@settings(max_examples=60)
@given(roles=st.sets(st.sampled_from(list(Role))), asked=conditions_st)
def test_more_grants_never_take_a_right_away(roles, asked):
    """The union rule: adding a scope can only add permissions."""
    scopes = {
        Role.CARE_TEAM: Scope(Role.CARE_TEAM, frozenset({OESO})),
        Role.QUALITY: Scope(Role.QUALITY),
        Role.MANAGER: Scope(Role.MANAGER, hospitals=frozenset({"H01"})),
        Role.ADMIN: Scope(Role.ADMIN),
    }
    base = Viewer("u@example.org", scopes=tuple(scopes[r] for r in sorted(roles)))
    for extra in Role:
        more = Viewer("u@example.org", scopes=(*base.scopes, scopes[extra]))
        for check in (
            lambda v: may_view_condition(v, asked),
            lambda v: may_see_patient_rows(v, asked, "H01"),
            lambda v: may_export(v, asked),
            may_import,
            may_read_audit,
            may_manage_access,
        ):
            assert check(more) >= check(base)


def test_local_viewer_has_every_role():
    viewer = local_viewer()
    assert viewer.local and viewer.roles == set(Role)
    assert all(may_see_patient_rows(viewer, c) for c in CONDITIONS)


UNITS = pd.DataFrame(
    {
        "hospital": ["H01", "H01", "H02", "H02"],
        "department": ["SUR", "ORT", "SUR", "ORT"],
        "division": ["Snijdend", "Snijdend", "Snijdend", "Beweging"],
    }
)


def test_visible_units_per_level():
    assert visible_units(QUALITY, UNITS, "department") == ["H01/SUR", "H01/ORT", "H02/SUR", "H02/ORT"]
    assert visible_units(care(OESO), UNITS, "hospital") == ["H01", "H02"]
    assert visible_units(manager(["H01"]), UNITS, "hospital") == ["H01"]
    assert visible_units(manager(["H01"]), UNITS, "department") == ["H01/SUR", "H01/ORT"]
    # a department manager sees the department, not the whole hospital it belongs to
    assert visible_units(manager(departments=["H02/ORT"]), UNITS, "department") == ["H02/ORT"]
    assert visible_units(manager(departments=["H02/ORT"]), UNITS, "hospital") == []
    assert visible_units(manager(divisions=["Beweging"]), UNITS, "department") == ["H02/ORT"]
    assert visible_units(manager(["H02"]), UNITS, "condition_team", OESO) == [f"{OESO}@H02"]
    assert visible_units(manager(["H02"], conditions=[HIP]), UNITS, "hospital", OESO) == []
    assert visible_units(ADMIN, UNITS, "hospital") == []
    with pytest.raises(ValueError, match="needs the condition"):
        visible_units(QUALITY, UNITS, "condition_team")


def test_focus_units_are_those_whose_small_numbers_the_viewer_may_see():
    """The page's unit is shown by care cycle (VLAD/CUSUM), quarter and meeting window: below the cells the tables
    withhold. A care team limited to H01 took H02 in focus and got its care cycles' outcomes by date; it now takes
    its own hospital's units only (it still sees every unit in the comparison tables)."""
    limited = care(OESO, hospitals=("H01",))
    assert focus_units(QUALITY, UNITS, "department", OESO) is None
    assert focus_units(care(OESO), UNITS, "hospital", OESO) is None
    assert focus_units(limited, UNITS, "hospital", OESO) == ["H01"]
    assert focus_units(limited, UNITS, "department", OESO) == ["H01/SUR", "H01/ORT"]
    assert focus_units(limited, UNITS, "condition_team", OESO) == [f"{OESO}@H01"]
    assert focus_units(manager(["H02"]), UNITS, "hospital", OESO) == ["H02"]
    both = Viewer("x@example.org", scopes=(*limited.scopes, *manager(departments=["H02/ORT"]).scopes))
    assert focus_units(both, UNITS, "department", OESO) == ["H01/SUR", "H01/ORT", "H02/ORT"]
    assert not may_focus_unit(limited, UNITS, "hospital", OESO, "H02")
    assert not may_focus_unit(limited, UNITS, "department", OESO, "H02/SUR")
    assert may_focus_unit(limited, UNITS, "department", OESO, "H01/SUR")
    assert may_focus_unit(care(OESO), UNITS, "hospital", OESO, "H02")


def test_cache_key_differs_between_scopes_and_ignores_order():
    a = Viewer("a@example.org", scopes=(Scope(Role.QUALITY), Scope(Role.MANAGER, hospitals=frozenset({"H01"}))))
    b = Viewer("b@example.org", scopes=(Scope(Role.MANAGER, hospitals=frozenset({"H01"})), Scope(Role.QUALITY)))
    assert a.cache_key == b.cache_key
    assert manager(["H01"]).cache_key != manager(["H02"]).cache_key
    # no name in a grant makes two scopes read alike: a typo'd ["H01,H02"] (no such hospital) had the key of
    # ["H01", "H02"], and a shared cache gave it that manager's views (tests/test_app_roles: the pages)
    assert manager(["H01,H02"]).cache_key != manager(["H01", "H02"]).cache_key
    assert manager(["A"], divisions=[":B"]).cache_key != manager(["A:"], divisions=["B"]).cache_key
    two = Viewer("c@example.org", scopes=(Scope(Role.MANAGER, hospitals=frozenset({"H01"})),) * 2)
    assert two.cache_key == manager(["H01"]).cache_key


def test_require_refuses_with_a_message_and_a_denied_event(sqlite_engine):
    with pytest.raises(AccessDenied) as info:
        require(ADMIN, Permission.READ_AUDIT, engine=sqlite_engine, what="audit log")
    assert isinstance(info.value, PermissionError)
    assert "beheer@example.org may not read the audit log" in str(info.value)
    assert "needs quality" in str(info.value)
    events = audit.read(sqlite_engine, action="denied")
    assert list(events["user_id"]) == ["beheer@example.org"]
    assert '"permission": "read_audit"' in events["detail"].iloc[0]
    require(QUALITY, "read_audit", engine=sqlite_engine)  # allowed: silent, nothing recorded
    assert len(audit.read(sqlite_engine)) == 1


# --- guarded entry points on a real (small) registry -----------------------------------------------------


@pytest.fixture
def small_registry(engine, tmp_path):
    import_files(write_small_registry(tmp_path / "files"), engine, imported_by="test")
    return engine


def _signal(result) -> tuple[str, str]:
    from vbhc.indicators import signal_cycles

    for indicator in result.table["indicator"].unique():
        for unit in result.table["unit"].unique():
            if len(signal_cycles(result, indicator, unit, last_days=5000)):
                return indicator, unit
    raise AssertionError("the small registry has no signal")


def test_a_managers_direct_call_for_patient_rows_is_refused_and_audited(small_registry):
    engine = small_registry
    result = indicator_table(OESO, "hospital", engine=engine)
    indicator, unit = _signal(result)
    boss = manager([unit])
    with pytest.raises(AccessDenied, match="managers see aggregated indicators only"):
        patient_rows(boss, result, indicator, unit, last_days=5000, engine=engine)
    denied = audit.read(engine, action="denied")
    assert len(denied) == 1
    event = denied.iloc[0]
    assert (event["user_id"], event["roles"], event["condition"], event["unit"]) == (
        "m.jansen@example.org",
        "manager",
        OESO,
        unit,
    )
    assert "patient_rows" in event["detail"] and "C0" not in event["detail"] and "P0" not in event["detail"]
    assert audit.read(engine, action="view").empty


def test_care_team_gets_rows_of_its_condition_but_not_of_another(small_registry):
    engine = small_registry
    result = indicator_table(OESO, "hospital", engine=engine)
    indicator, unit = _signal(result)
    rows = patient_rows(care(OESO), result, indicator, unit, last_days=5000, engine=engine)
    assert len(rows) > 0
    assert list(rows.columns) == ["cycle_id", "index_date", "observed", "expected"]  # pseudonymous, no patient_id
    with pytest.raises(AccessDenied, match="patient-level rows"):
        patient_rows(care(HIP), result, indicator, unit, last_days=5000, engine=engine)
    with pytest.raises(AccessDenied):  # own condition, but another hospital than the team's own
        other = "H02" if unit == "H01" else "H01"
        patient_rows(care(OESO, hospitals=(other,)), result, indicator, unit, last_days=5000, engine=engine)
    events = audit.read(engine, action=["view", "denied"])
    assert list(events["action"]) == ["view", "denied", "denied"]
    view = events.iloc[0]
    assert view["condition"] == OESO and view["unit"] == unit
    assert f'"shown": {len(rows)}' in view["detail"]
    for cycle_id in rows["cycle_id"]:
        assert cycle_id not in "".join(events["detail"])


def test_indicator_rows_for_each_role(small_registry):
    engine = small_registry
    table = indicator_table(OESO, "department", engine=engine).table
    full = indicator_rows(QUALITY, table, engine=engine)
    assert len(full) == len(table) and not full["anonymised"].any()
    assert len(indicator_rows(care(OESO), table, engine=engine)) == len(table)

    boss = manager(departments=["H01/SUR"])
    shown = indicator_rows(boss, table, engine=engine)
    named = shown[~shown["anonymised"]]
    assert set(named["unit"]) == {"H01/SUR"}
    # one other unit only: it would be singled out (and the benchmark is own + that unit's), so neither is
    # shown; the anonymised other units of a large enough group are tested in tests/test_privacy.py
    assert not shown["anonymised"].any()
    assert named["target"].isna().all() and named["benchmark_withheld"].all()
    hidden = indicator_rows(boss, table, engine=engine, others="hide")
    assert set(hidden["unit"]) == {"H01/SUR"}

    by_division = indicator_rows(manager(divisions=["Snijdende specialismen"]), table, engine=engine, others="hide")
    assert set(by_division["unit"]) == set(table["unit"])

    for refused in (care(HIP), ADMIN, NOBODY, manager(["H01"], conditions=[HIP])):
        with pytest.raises(AccessDenied, match="view this condition"):
            indicator_rows(refused, table, engine=engine)
    views = audit.read(engine, action="view")
    assert (views["condition"] == OESO).all()
    assert len(audit.read(engine, action="denied")) == 4


def test_guarded_import_for_quality_and_admin_only(engine, tmp_path):
    files = write_small_registry(tmp_path / "files")
    before = row_counts(engine)
    for refused in (manager(["H01"]), care(OESO), NOBODY):
        with pytest.raises(AccessDenied, match="import registry files"):
            guarded_import(refused, files, engine)
    assert row_counts(engine) == before
    report = guarded_import(ADMIN, files, engine)
    assert report.ok
    imports = audit.read(engine, action="import")
    assert len(imports) == 5 and set(imports["user_id"]) == {"beheer@example.org"}
    assert set(imports["roles"]) == {"admin"}
    assert len(audit.read(engine, action="denied")) == 3


def test_export_file_checks_and_records_the_sha256(sqlite_engine):
    data = b"indicator,unit\nmortality_30d,H01\n"
    out = access.export_file(
        care(OESO), data, what="indicators", file_name="x.csv", condition=OESO, engine=sqlite_engine
    )
    assert out == data
    with pytest.raises(AccessDenied, match="patient-level exports are for the quality directorate"):
        access.export_file(care(OESO), data, what="signal", condition=OESO, patient_level=True, engine=sqlite_engine)
    with pytest.raises(AccessDenied):
        access.export_file(manager(["H01"]), lambda: data, what="indicators", condition=OESO, engine=sqlite_engine)
    built = access.export_file(QUALITY, lambda: data, what="excel_report", file_name="all.xlsx", engine=sqlite_engine)
    assert built == data
    exports = audit.read(sqlite_engine, action="export")
    assert list(exports["sha256"]) == [audit.sha256_of(data)] * 2
    assert list(exports["user_id"]) == ["zorg@example.org", "kwaliteit@example.org"]


def test_a_download_whose_file_fails_is_audited_as_refused_without_the_error_text(sqlite_engine):
    """A click whose file could not be built (vl-convert, a report's build) left nothing in the audit log: the
    log could not tell it from a viewer who never asked. Recorded as export_refused with the error's class only
    (its text may quote data); the error goes on (Streamlit says the file failed), no export is recorded."""

    def fails() -> bytes:
        raise RuntimeError("patient P-000123 in row 5")

    with pytest.raises(RuntimeError):
        access.export_file(care(OESO), fails, what="chart_png", file_name="x.png", condition=OESO, engine=sqlite_engine)
    events = audit.read(sqlite_engine)
    assert list(events["action"]) == ["export_refused"]
    assert events["user_id"].iloc[0] == "zorg@example.org" and events["condition"].iloc[0] == OESO
    detail = events["detail"].iloc[0]
    assert '"error": "RuntimeError"' in detail and '"file": "x.png"' in detail
    assert "P-000123" not in detail
    # a refusal inside the build is recorded once, as denied (require did), not as a failed export too

    def refused() -> bytes:
        access.require(manager(["H01"]), access.Permission.EXPORT, engine=sqlite_engine, condition=OESO)
        return b""

    with pytest.raises(AccessDenied):
        access.export_file(QUALITY, refused, what="excel_report", file_name="y.xlsx", engine=sqlite_engine)
    assert list(audit.read(sqlite_engine)["action"]).count("export_refused") == 1


def test_export_table_is_role_checked_formula_safe_and_audited(sqlite_engine):
    """The one way a table shown on a page leaves as a file (the grid's own CSV button is switched off)."""
    import csv
    import io

    batches = pd.DataFrame(
        {
            "file_name": ['=HYPERLINK("http://evil.example","units.csv")', "care_cycles.csv"],
            "imported_by": ["@SUM(1+1)*cmd|' /C calc'!A0", "\t-1+1"],
            "rows_read": [10, 20],
        }
    )
    data = access.export_table(
        QUALITY, batches, what="import_batches", file_name="vbhc-import-batches.csv", engine=sqlite_engine
    )
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert rows[1][:2] == ['\'=HYPERLINK("http://evil.example","units.csv")', "'@SUM(1+1)*cmd|' /C calc'!A0"]
    assert rows[2] == ["care_cycles.csv", "'\t-1+1", "20"]
    event = audit.read(sqlite_engine, action="export").iloc[-1]
    assert event["sha256"] == audit.sha256_of(data) and event["user_id"] == QUALITY.user_id
    assert '"file": "vbhc-import-batches.csv"' in event["detail"] and '"what": "import_batches"' in event["detail"]
    for viewer in (ADMIN, manager(["H01"]), care(OESO), NOBODY):  # no condition: the directorate's tables only
        with pytest.raises(AccessDenied):
            access.export_table(viewer, batches, what="import_batches", file_name="b.csv", engine=sqlite_engine)
    assert len(audit.read(sqlite_engine, action="denied")) == 4
    assert len(audit.read(sqlite_engine, action="export")) == 1


def test_read_audit_is_for_quality_and_is_itself_logged(sqlite_engine):
    with pytest.raises(AccessDenied):
        access.read_audit(manager(["H01"]), sqlite_engine)
    df = access.read_audit(QUALITY, sqlite_engine)
    assert list(df["action"]) == ["denied"]
    assert list(audit.read(sqlite_engine)["action"]) == ["denied", "view"]


def test_vbhc_never_imports_streamlit():
    for path in (Path(access.__file__), Path(audit.__file__)):
        assert "streamlit" not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("unit", "own"),
    [
        ("H01", True),
        ("H01/SUR", True),
        ("colorectal_cancer@H01", True),
        ("H02", False),
        ("H02/SUR", False),
        ("colorectal_cancer@H02", False),
        ("", False),  # the whole condition: not one hospital's to set
    ],
)
def test_a_care_team_limited_to_hospitals_edits_its_own_hospitals_improvement_items_only(sqlite_engine, unit, own):
    """may_edit_improvement ignored a care team's hospital limit: a team limited to H01 edited H02's targets,
    explanations, decisions and actions and read their free texts. Now it edits (and reads in full) its own
    hospitals' units' items, reads the whole condition's in full without editing them, other hospitals' status only."""
    limited = care("colorectal_cancer", hospitals=("H01",))
    if own:
        require(limited, Permission.EDIT_IMPROVEMENT, engine=sqlite_engine, condition="colorectal_cancer", unit=unit)
    else:
        with pytest.raises(AccessDenied, match="limited to some hospitals"):
            require(
                limited, Permission.EDIT_IMPROVEMENT, engine=sqlite_engine, condition="colorectal_cancer", unit=unit
            )
        [event] = audit.read(sqlite_engine, action="denied").itertuples()
        assert (event.condition, event.unit) == ("colorectal_cancer", unit)
    assert access.may_read_improvement(limited, "colorectal_cancer", unit) == (own or unit == "")
    assert not access.may_edit_improvement(limited, OESO, unit)  # not its condition at all
    for viewer in (care("colorectal_cancer"), QUALITY):  # unchanged: every item of the condition
        assert access.may_edit_improvement(viewer, "colorectal_cancer", unit)
        assert access.may_read_improvement(viewer, "colorectal_cancer", unit)
    boss = manager({"H01"})  # unchanged: status only, even of the own hospital
    assert not access.may_edit_improvement(boss, "colorectal_cancer", unit)
    assert not access.may_read_improvement(boss, "colorectal_cancer", unit)
