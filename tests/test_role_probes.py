"""Every public function of vbhc that takes a viewer, called directly as every role with arguments outside the
role's scope: it must refuse (AccessDenied, audited as denied where the module audits; ItemNotFound or the
module's "not found" where an id is asked for, so an id cannot be probed) or return nothing outside the scope.

The functions are found by introspection (a parameter annotated Viewer, or named viewer or actor), and PROBES says
how each one is called out of scope. A public function that takes a viewer and is not in PROBES fails
test_every_function_that_takes_a_viewer_is_probed: a new function cannot skip the probe.

Scopes (tests/roles.py's roles on the small registry of tests/registry_files.py: H01 and H02, oesophageal cancer
and hip osteoarthritis):
- care: care team of oesophageal cancer (out of scope: hip osteoarthritis; patient-level exports)
- care_h01: the same limited to H01 (also out: H02's patient rows, free texts and small cells)
- manager: manager of H01 for oesophageal cancer (out: hip, H02 by name or exact count, patient rows, any export,
  any team's free text)
- admin: imports and the roles mapping only (out: every condition's data)
The quality directorate sees everything: it is called where a probe must show its arguments do reach data.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import inspect
import io
import json
import pkgutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

import vbhc
from tests.prem_files import write_prems
from tests.registry_files import write_small_registry
from vbhc import access, audit, models
from vbhc.access import AccessDenied, Permission, Role, Scope, Viewer
from vbhc.improvement import ItemNotFound

OWN = "oesophageal_cancer"
OUT = "hip_osteoarthritis"
OWN_INDICATOR = "anastomotic_leak"
OUT_INDICATOR = "revision_1y"

CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, frozenset({OWN})),))
CARE_H01 = Viewer("care-h01@example.org", "Care H01", (Scope(Role.CARE_TEAM, frozenset({OWN}), frozenset({"H01"})),))
MANAGER = Viewer("manager@example.org", "Manager", (Scope(Role.MANAGER, frozenset({OWN}), frozenset({"H01"})),))
ADMIN = Viewer("admin@example.org", "Admin", (Scope(Role.ADMIN),))
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
ROLES = {"care": CARE, "care_h01": CARE_H01, "manager": MANAGER, "admin": ADMIN}

# free texts planted in the improvement items and meeting notes, per whose they are
HIP_TEXT = "SECRET-HIP"
H02_TEXT = "SECRET-H02"
WHOLE_TEXT = "TEAM-WHOLE"  # the whole oesophageal condition's items: care teams read them, a manager does not
H01_TEXT = "TEAM-H01"  # H01's items: its care teams read them, a manager does not

#: What may never appear in anything a role is given (free texts, condition ids, unit names).
FORBIDDEN = {
    "care": (HIP_TEXT, OUT),
    "care_h01": (HIP_TEXT, OUT, H02_TEXT),
    "manager": (HIP_TEXT, OUT, H02_TEXT, WHOLE_TEXT, H01_TEXT, "H02", "Testkliniek Zuid"),
    "admin": (HIP_TEXT, OUT, H02_TEXT, WHOLE_TEXT, H01_TEXT, OWN, "H01", "H02", "Testziekenhuis", "Testkliniek"),
}


# --------------------------------------------------------------------------------------------- the registry
@dataclass
class World:
    engine: Any
    root: Path
    own: Any  # IndicatorResult of OWN at hospital level
    own_department: Any
    out: Any  # IndicatorResult of OUT
    prem: Any  # prem_clinical at department level
    ids: dict[str, str]
    meetings: dict[str, str]
    workbooks: dict[str, bytes]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Iterator[World]:
    from vbhc import improvement, improvement_sheets, minutes
    from vbhc.improvement import Explanation, Flag, Rule
    from vbhc.indicators import indicator_table
    from vbhc.ingest import import_files
    from vbhc.prems import prem_indicator_table
    from vbhc.store import get_engine, upgrade_schema

    root = tmp_path_factory.mktemp("probes")
    engine = get_engine(f"sqlite:///{root / 'vbhc.db'}")
    upgrade_schema(engine)
    import_files([*write_small_registry(root / "files"), write_prems(root / "prems.csv")], engine, imported_by="t")
    start, due = dt.date(2025, 1, 1), dt.date(2025, 2, 1)  # due in the past: overdue
    ids: dict[str, str] = {}
    for key, condition, indicator, unit, text in (
        ("hip", OUT, OUT_INDICATOR, "H01", HIP_TEXT),
        ("h02", OWN, OWN_INDICATOR, "H02", H02_TEXT),
        ("h01", OWN, OWN_INDICATOR, "H01", H01_TEXT),
        ("whole", OWN, OWN_INDICATOR, "", WHOLE_TEXT),
    ):
        ids[f"target_{key}"] = improvement.set_target(
            engine, QUALITY, condition, indicator, 0.1, unit=unit, valid_from=start
        ).item_id
        ids[f"action_{key}"] = improvement.create_action(
            engine, QUALITY, condition, f"Plan {key}", "nurse", start, due, unit=unit, expected_effect=text
        ).item_id
    for condition, indicator in ((OUT, OUT_INDICATOR), (OWN, OWN_INDICATOR)):
        flags = [Flag(h, indicator, Rule.FUNNEL_998, "worse", 0.2) for h in ("H01", "H02")]
        improvement.record_detection(engine, "import", condition, "hospital", "1-1", flags)
    for signal in improvement.signals(engine, QUALITY):
        key = "hip" if signal.condition == OUT else signal.unit.lower()
        if key == "h01" and signal.condition == OWN:
            text = H01_TEXT
        else:
            text = {"hip": HIP_TEXT, "h02": H02_TEXT}.get(key, HIP_TEXT)
        if signal.condition == OUT and signal.unit == "H02":
            key = "hip_h02"
        improvement.explain_signal(engine, QUALITY, signal.item_id, 1, Explanation.REAL, text)
        ids[f"signal_{key}"] = signal.item_id
    meetings = {}
    for key, condition, unit, item, text in (
        ("hip", OUT, "", ids["action_hip"], HIP_TEXT),
        ("h02", OWN, "H02", ids["action_h02"], H02_TEXT),
        ("whole", OWN, "", ids["action_whole"], WHOLE_TEXT),
    ):
        decided = [minutes.Decided(item, "noted", note=text, section="action")]
        meetings[key] = minutes.record_meeting(
            engine, QUALITY, condition, dt.date(2025, 3, 1), ["quality"], decided, unit=unit
        ).record.meeting_id
    workbooks = {
        "targets": improvement_sheets.export_targets(engine, QUALITY, OUT),
        "actions": improvement_sheets.export_actions(engine, QUALITY, OUT),
    }
    yield World(
        engine,
        root,
        indicator_table(OWN, "hospital", engine=engine),
        indicator_table(OWN, "department", engine=engine),
        indicator_table(OUT, "hospital", engine=engine),
        prem_indicator_table("prem_clinical", "department", engine=engine),
        ids,
        meetings,
        workbooks,
    )
    engine.dispose()


# --------------------------------------------------------------------------------------------- checks
def _text(value: Any, depth: int = 0) -> str:
    """Everything a returned value carries, as text: frames in full, workbooks unpacked, models and dataclasses
    field by field."""
    if depth > 6:
        return repr(value)
    if isinstance(value, pd.DataFrame):
        return value.to_csv(index=True)
    if isinstance(value, pd.Series):
        return value.to_csv()
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    if isinstance(value, bytes | bytearray):
        if bytes(value[:2]) == b"PK":
            with zipfile.ZipFile(io.BytesIO(value)) as z:
                return "\n".join(z.read(n).decode("utf-8", "replace") for n in z.namelist())
        return bytes(value).decode("latin-1")
    if isinstance(value, Path):
        return _text(value.read_bytes(), depth + 1) if value.is_file() else str(value)
    if hasattr(value, "model_dump"):
        return repr(value.model_dump())
    if is_dataclass(value) and not isinstance(value, type):
        return "\n".join(f"{f.name}={_text(getattr(value, f.name), depth + 1)}" for f in fields(value))
    if isinstance(value, dict):
        return "\n".join(f"{_text(k, depth + 1)}: {_text(v, depth + 1)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return "\n".join(_text(v, depth + 1) for v in value)
    return repr(value)


def clean(value: Any, role: str) -> Any:
    """The value carries nothing outside the role's scope (FORBIDDEN) and, for a manager, no exact count or
    interval of an anonymised other unit."""
    text = _text(value)
    leaked = [m for m in FORBIDDEN[role] if m in text]
    assert not leaked, f"{role} was given {leaked}: {text[:2000]}"
    if role == "manager":
        for frame in _frames(value):
            if "anonymised" in frame:
                other = frame[frame["anonymised"].astype(bool)]
                for col in [c for c in access.EXACT_COLUMNS if c in other]:
                    assert other[col].isna().all(), f"manager got the exact {col} of an other unit"
    return value


def _frames(value: Any) -> Iterator[pd.DataFrame]:
    if isinstance(value, pd.DataFrame):
        yield value
    elif is_dataclass(value) and not isinstance(value, type):
        for f in fields(value):
            yield from _frames(getattr(value, f.name))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _frames(v)


def refused(call: Callable[[], Any], engine: Any, viewer: Viewer, *also: type[BaseException]) -> None:
    """The call raises AccessDenied, recorded as a "denied" event of the viewer (or one of `also`: not found)."""
    before = _denied(engine, viewer)
    with pytest.raises((AccessDenied, *also)) as got:
        call()
    if isinstance(got.value, AccessDenied):
        assert _denied(engine, viewer) > before, "refused without a denied audit event"


def _denied(engine: Any, viewer: Viewer) -> int:
    events = audit.read(engine, action="denied")
    return int((events["user_id"] == viewer.user_id).sum()) if len(events) else 0


def refused_or_clean(call: Callable[[], Any], w: World, role: str, *also: type[BaseException]) -> None:
    viewer = ROLES[role]
    before = _denied(w.engine, viewer)
    try:
        got = call()
    except (AccessDenied, *also) as exc:
        if isinstance(exc, AccessDenied):
            assert _denied(w.engine, viewer) > before, "refused without a denied audit event"
        return
    clean(got, role)


def unchanged(w: World, call: Callable[[], Any], *refusals: type[BaseException]) -> None:
    """A write out of scope is refused and stores nothing."""
    before = _counts(w.engine)
    with pytest.raises((AccessDenied, *refusals)):
        call()
    assert _counts(w.engine) == before


def _counts(engine: Any) -> dict[str, int]:
    tables = [
        models.ImprovementTarget,
        models.ImprovementAction,
        models.ImprovementSignal,
        models.MeetingRecord,
        models.MeetingDecision,
    ]
    with engine.connect() as conn:
        return {
            t.__tablename__: conn.execute(select(func.count()).select_from(t.__table__)).scalar_one() for t in tables
        }


def false_for(predicate: Callable[[Viewer], Any], *roles: str) -> Callable[[World, str], None]:
    """A permission predicate: False (or empty) for the roles named, called with out-of-scope arguments."""

    def probe(w: World, role: str) -> None:
        if role in roles:
            assert not predicate(ROLES[role]), f"{role} was allowed"

    return probe


def _units(w: World) -> pd.DataFrame:
    from vbhc.registry import units

    return units(w.engine)


# --------------------------------------------------------------------------------------------- the probes
def _out_condition(role: str) -> str:
    """The condition a role asks about out of scope: another condition, or any for the admin."""
    return OWN if role == "admin" else OUT


def p_require(w: World, role: str) -> None:
    v = ROLES[role]
    refused(
        lambda: access.require(v, Permission.VIEW_CONDITION, engine=w.engine, condition=_out_condition(role)),
        w.engine,
        v,
    )
    refused(
        lambda: access.require(v, Permission.EXPORT, engine=w.engine, condition=OWN, patient_level=True), w.engine, v
    )
    refused(lambda: access.require(v, Permission.READ_AUDIT, engine=w.engine), w.engine, v)
    if role != "admin":
        refused(lambda: access.require(v, Permission.IMPORT, engine=w.engine), w.engine, v)


def p_patient_rows(w: World, role: str) -> None:
    from vbhc.indicators import signal_cycles

    v = ROLES[role]
    asks = [(w.out, "H01"), (w.out, "H02")]
    if role in ("care_h01", "manager", "admin"):
        asks.append((w.own, "H02"))
    if role in ("manager", "admin"):
        asks.append((w.own, "H01"))
    for result, unit in asks:
        indicator = next(
            (i for i in result.table["indicator"].unique() if len(signal_cycles(result, i, unit, last_days=100000))),
            None,
        )
        assert indicator is not None, f"the probe reaches no rows of {unit}"
        refused(
            lambda r=result, i=indicator, u=unit: access.patient_rows(v, r, i, u, last_days=100000, engine=w.engine),
            w.engine,
            v,
        )


def p_indicator_rows(w: World, role: str) -> None:
    from vbhc.settings import suppress_below

    v = ROLES[role]
    refused(lambda: access.indicator_rows(v, w.out.table, engine=w.engine), w.engine, v)
    if role == "admin":
        refused(lambda: access.indicator_rows(v, w.own.table, engine=w.engine), w.engine, v)
        return
    for table in (w.own.table, w.own_department.table):
        got = access.indicator_rows(v, table, engine=w.engine)
        clean(got, role)
        if role == "care_h01":  # H02's cells below the threshold withheld
            h02 = got[got["unit"].astype(str).str.startswith("H02")]
            small = h02[pd.to_numeric(table.loc[h02.index, "n"], errors="coerce").fillna(0) < suppress_below()]
            assert small["suppressed"].all() and small["n"].isna().all()


def p_record_indicator_view(w: World, role: str) -> None:
    got = access.record_indicator_view(
        ROLES[role], w.own.table.assign(anonymised=False), condition=OWN, level="hospital", engine=w.engine
    )
    assert got is None  # writes the caller's own audit event; gives nothing back


def p_record_refused_link(w: World, role: str) -> None:
    v = ROLES[role]
    got = access.record_refused_link(v, "condition", OUT + "x" * 200, engine=w.engine)
    assert got is None  # writes the caller's own refusal; gives nothing back, reads nothing
    events = audit.read(w.engine, user=v.user_id, action="denied")
    detail = json.loads(events["detail"].iloc[-1])
    assert detail == {"what": "link", "filter": "condition", "asked": (OUT + "x" * 200)[: access.LINK_VALUE_CHARS]}


def p_comparison_group(w: World, role: str) -> None:
    from vbhc.registry import condition_units

    v, condition = ROLES[role], (OWN if role == "manager" else _out_condition(role))
    chosen, refused_ = access.comparison_group(
        v, condition, "hospital", ["H01", "H02"], condition_units(condition, engine=w.engine), _units(w)
    )
    if role != "care":  # a care team of OWN asked about OUT: its choice is nobody's data
        assert chosen == () and refused_


def p_group_choice(w: World, role: str) -> None:
    """The chosen group as one value (GroupChoice.of) answers as comparison_group and comparison_group_refusal do:
    refused for every role asked about a condition it may not see or, as a manager, about a group of one other
    hospital; a link's hospitals in another order or repeated change nothing."""
    from vbhc.registry import condition_units

    v, condition = ROLES[role], (OWN if role == "manager" else _out_condition(role))
    teams = condition_units(condition, engine=w.engine)
    choice = access.GroupChoice.of(v, condition, "hospital", ["H02", "H01", "H02"], teams, _units(w))
    assert choice.peers == ("H01", "H02")
    assert choice.resolved() == access.comparison_group(v, condition, "hospital", ["H01", "H02"], teams, _units(w))
    if role != "care":
        assert choice.resolved() == ((), True) and choice.refusal() is not None


def p_comparison_groups_offered(w: World, role: str) -> None:
    """Whether the sidebar offers a group: a care team of the condition (all units) does; a care team limited to
    H01 never (its pages withhold other hospitals' cells); a manager only with twice MIN_OTHER_UNITS other
    hospitals (this registry has fewer); no role for a condition it may not see but the care team of OWN."""
    from vbhc.registry import condition_units

    v = ROLES[role]
    teams = condition_units(OWN, engine=w.engine)
    others = teams.loc[teams["hospital"].astype(str) != "H01", "hospital"].nunique()
    expected = {"care": True, "care_h01": False, "manager": others >= 2 * access.MIN_OTHER_UNITS, "admin": False}
    assert access.comparison_groups_offered(v, OWN, "hospital", teams, _units(w)) == expected[role]


def p_offered_groups(w: World, role: str) -> None:
    """The published groups a viewer may pick: a care team of the condition (all units) every one; a care team
    limited to H01 none (its pages withhold other hospitals' cells); a manager none on this registry (too few
    other hospitals for a group of five and five outside it); no role any for a condition it may not see."""
    from vbhc.registry import condition_units

    v = ROLES[role]
    teams = condition_units(OWN, engine=w.engine)
    published = (access.PublishedGroup("two", frozenset({"H01", "H02"})), access.PublishedGroup("all", frozenset()))
    got = access.offered_groups(v, OWN, "hospital", teams, _units(w), published)
    others = teams.loc[teams["hospital"].astype(str) != "H01", "hospital"].nunique()
    if role == "care":
        assert got == published
    elif role == "manager" and others >= 2 * access.MIN_OTHER_UNITS:
        assert published[0] not in got  # one other hospital: an atom of one
    else:
        assert got == ()


def p_provenance_for(w: World, role: str) -> None:
    """The import batches a file lists: none of a condition the role may not read, none at all for a manager or an
    admin (no rows of any condition), and for a care team its condition's batches (here every batch holds both
    hospitals); quality every batch."""
    from vbhc.registry import batch_reach, import_batches

    v = ROLES[role]
    batches, reach = import_batches(w.engine), batch_reach(w.engine)
    assert clean(access.provenance_for(v, [OUT], batches, reach), role).empty
    own = clean(access.provenance_for(v, [OWN], batches, reach), role)
    assert own.empty == (role in ("manager", "admin"))
    assert len(access.provenance_for(QUALITY, [OUT], batches, reach)) == len(batches)


def p_published_groups_problem(w: World, role: str) -> None:
    """A broken published groups' file: the mistake (path, a group's members) to quality and the administrator
    (who keep the file) only; a care team and a manager are told no group can be chosen."""
    error = "/srv/vbhc/groups.toml: group 1, key 'hospitals', value ['H02', '']: must be a non-empty list"
    got = access.published_groups_problem(ROLES[role], error, "en")
    assert (got == error) == (role == "admin")
    if role != "admin":
        clean(got, role)
        assert "groups.toml" not in str(got)
    assert access.published_groups_problem(QUALITY, error, "en") == error


def p_config_problem(w: World, role: str) -> None:
    """A configuration file's mistake (path, a person's e-mail address): to the file's keepers (quality, the
    administrator) only; with no viewer (the roles mapping itself is wrong) to nobody."""
    error = "/srv/vbhc/access.toml: grant 2, key 'user', value 'jan.de.vries': must be an email address"
    got = access.config_problem(error, "en", "auth.mapping_unreadable", ROLES[role])
    assert (got == error) == (role == "admin")
    if role != "admin":
        clean(got, role)
        assert "access.toml" not in got and "jan.de.vries" not in got
    assert access.config_problem(error, "en", "auth.mapping_unreadable", QUALITY) == error
    assert "jan.de.vries" not in access.config_problem(error, "en", "auth.mapping_unreadable")


def p_group_indicators_withheld(w: World, role: str) -> None:
    """The indicators no group view may show a group's benchmark of: none for a viewer who sees every unit (the
    care team of the condition) or who is offered no group (every other role on this registry: too few hospitals
    for a manager, none for a care team limited to H01 or a role without the condition)."""
    from vbhc.registry import condition_units

    v = ROLES[role]
    teams = condition_units(OWN, engine=w.engine)
    published = (access.PublishedGroup("two", frozenset({"H01", "H02"})),)
    got = access.group_indicators_withheld(v, OWN, "hospital", teams, _units(w), [w.own.table], published)
    others = teams.loc[teams["hospital"].astype(str) != "H01", "hospital"].nunique()
    if role != "manager" or others < 2 * access.MIN_OTHER_UNITS:
        assert got == frozenset()


def p_registry_indicators_withheld(w: World, role: str) -> None:
    """The indicators whose benchmark a manager's views withhold in every period: on this registry (H01 and one
    other hospital) every indicator for the manager; none for a role that sees every unit or may not see the
    condition (nothing to withhold from it: it gets no rows)."""
    v = ROLES[role]
    got = access.registry_indicators_withheld(v, OWN, "hospital", [w.own.table], engine=w.engine)
    if role == "manager":
        table = w.own.table
        counted = table[(table["unit"].astype(str) == "H02") & (pd.to_numeric(table["n"], errors="coerce") > 0)]
        assert got == frozenset(counted["indicator"].astype(str)) and got  # one other hospital counted: all of them
        rows = access.indicator_rows(v, w.own.table, engine=w.engine, record_view=False, thin=got)
        clean(rows, role)
        assert rows["target"].isna().all() and rows["expected"].isna().all()
    else:
        assert got == frozenset()
    assert access.registry_indicators_withheld(v, OUT, "hospital", [w.out.table], engine=w.engine) == frozenset()


def p_comparison_group_refusal(w: World, role: str) -> None:
    """Why a group is refused: a care team limited to H01 (GROUP_WITHHELD), a manager with too few others in the
    group; a care team of the condition keeps its group; roles asked about a condition they may not see are
    refused or get nothing (a care team of OWN asked about OUT: its choice is nobody's data)."""
    from vbhc.registry import condition_units

    v, condition = ROLES[role], (OWN if role in ("manager", "care_h01", "care") else _out_condition(role))
    reason = access.comparison_group_refusal(
        v, condition, "hospital", ["H01", "H02"], condition_units(condition, engine=w.engine), _units(w)
    )
    expected = {"care": None, "care_h01": access.GROUP_WITHHELD, "manager": access.GROUP_TOO_SMALL}
    if role in expected:
        assert reason == expected[role]
    else:
        assert reason is not None


def p_grid_masked(w: World, role: str) -> None:
    """Only indicator_rows' answer for this very viewer, given the grid's masks, counts as masked over the grid:
    a raw table, or another viewer's, never does."""
    v = ROLES[role]
    assert not access.grid_masked(v, w.own.table)
    marked = w.own.table.copy()
    marked.attrs[access.GRID_MASKED] = QUALITY.cache_key
    assert not access.grid_masked(v, marked)


def p_guarded_import(w: World, role: str) -> None:
    if role == "admin":
        return  # admin imports (its scope)
    v = ROLES[role]
    refused(lambda: access.guarded_import(v, [w.root / "files" / "units.csv"], engine=w.engine), w.engine, v)


def p_export_file(w: World, role: str) -> None:
    v = ROLES[role]
    refused(
        lambda: access.export_file(v, b"x", what="chart_data", condition=_out_condition(role), engine=w.engine),
        w.engine,
        v,
    )
    refused(
        lambda: access.export_file(v, b"x", what="chart_data", condition=OWN, patient_level=True, engine=w.engine),
        w.engine,
        v,
    )
    if role in ("manager", "admin"):
        refused(lambda: access.export_file(v, b"x", what="chart_data", condition=OWN, engine=w.engine), w.engine, v)


def p_export_table(w: World, role: str) -> None:
    v = ROLES[role]
    frame = w.out.table
    refused(
        lambda: access.export_table(v, frame, what="chart_data", file_name="x.csv", condition=OUT, engine=w.engine),
        w.engine,
        v,
    )
    if role in ("manager", "admin"):
        refused(
            lambda: access.export_table(
                v, w.own.table, what="chart_data", file_name="x.csv", condition=OWN, engine=w.engine
            ),
            w.engine,
            v,
        )


def p_require_file_export(w: World, role: str) -> None:
    v = ROLES[role]
    call = access.require_file_export
    refused(lambda: call(v, _out_condition(role), what="excel_report", engine=w.engine), w.engine, v)
    refused(lambda: call(v, None, what="excel_report", engine=w.engine), w.engine, v)
    if role in ("manager", "admin"):
        refused(lambda: call(v, OWN, what="excel_report", engine=w.engine), w.engine, v)
    if role == "care_h01":  # other hospitals' small cells: never below the registry's threshold
        refused(lambda: call(v, OWN, what="excel_report", threshold=0, engine=w.engine), w.engine, v)


def p_read_audit(w: World, role: str) -> None:
    v = ROLES[role]
    refused(lambda: access.read_audit(v, engine=w.engine), w.engine, v)


def p_visible_units(w: World, role: str) -> None:
    v, units = ROLES[role], _units(w)
    for level in ("hospital", "department", "condition_team"):
        if role == "manager":
            assert all("H02" not in u for u in access.visible_units(v, units, level, OWN))
        assert access.visible_units(v, units, level, _out_condition(role)) == []
    if role in ("manager", "admin"):
        assert all("H02" not in u for u in access.visible_units(v, units, "department"))


def p_focus_units(w: World, role: str) -> None:
    v, units = ROLES[role], _units(w)
    assert access.focus_units(v, units, "hospital", _out_condition(role)) == []
    if role in ("care_h01", "manager"):
        assert {u.split("/")[0] for u in access.focus_units(v, units, "department", OWN)} == {"H01"}


def p_may_focus_unit(w: World, role: str) -> None:
    v, units = ROLES[role], _units(w)
    assert not access.may_focus_unit(v, units, "hospital", _out_condition(role), "H01")
    if role in ("care_h01", "manager"):
        assert not access.may_focus_unit(v, units, "hospital", OWN, "H02")


def p_period_masks(w: World, role: str) -> None:
    v = ROLES[role]
    for fn in (access.period_masks, access.period_grid_masks):
        if role == "care_h01":  # the one viewer whose pages withhold other hospitals' cells
            assert fn(v, OWN, {"": w.own.table}) is not None
        else:
            assert fn(v, _out_condition(role), {"": w.out.table}) is None


def p_limited_care_hospitals(w: World, role: str) -> None:
    got = access.limited_care_hospitals(ROLES[role], OWN)
    assert got == (frozenset({"H01"}) if role == "care_h01" else None)


def p_other_units_shown(w: World, role: str) -> None:
    """Other units are hidden in a comparison group's view for a viewer who does not see every unit (a manager,
    an admin), anonymised in the registry's view."""
    group = ("H01", "H02", "H03", "H04", "H05", "H06")
    hidden = role in ("manager", "admin")
    assert access.other_units_shown(ROLES[role], OWN, group) == ("hide" if hidden else "anonymise")
    assert access.other_units_shown(ROLES[role], OUT, group) == "hide"  # no role here sees OUT's units
    assert access.other_units_shown(ROLES[role], OWN, ()) == "anonymise"


def p_withholds_across_periods(w: World, role: str) -> None:
    assert access.withholds_across_periods(ROLES[role], OWN) == (role == "care_h01")
    assert not access.withholds_across_periods(ROLES[role], OUT)


# improvement items ------------------------------------------------------------------------------------------
def _not_found(w: World, role: str) -> list[str]:
    """Item ids the role may not read at all."""
    got = [w.ids["target_hip"], w.ids["action_hip"], w.ids["signal_hip"]]
    if role == "manager":
        got += [w.ids["target_h02"], w.ids["action_h02"], w.ids["signal_h02"]]
    if role == "admin":
        got += [w.ids[k] for k in ("target_whole", "action_whole", "target_h01", "signal_h01")]
    return got


def _readable_ids(w: World, role: str) -> list[str]:
    """Item ids the role reads (status only where the free text is not theirs)."""
    if role == "admin":
        return []
    got = [w.ids[k] for k in ("target_h01", "action_h01", "signal_h01", "target_whole", "action_whole")]
    if role != "manager":
        got += [w.ids[k] for k in ("target_h02", "action_h02", "signal_h02")]
    return got


def _by_id(name: str) -> Callable[[World, str], None]:
    """improvement.history / current_version: an item the role may not see reads as an id that does not exist
    (ItemNotFound, never AccessDenied naming its condition); a readable one is clean."""

    def probe(w: World, role: str) -> None:
        from vbhc import improvement

        read, v = getattr(improvement, name), ROLES[role]
        for item in _not_found(w, role):
            with pytest.raises(ItemNotFound):
                read(w.engine, v, item)
        for item in _readable_ids(w, role):
            clean(read(w.engine, v, item), role)

    return probe


def _reads(name: str, **kwargs: Any) -> Callable[[World, str], None]:
    """improvement.targets / signals / actions / overdue / new_signals_since and the like: refused for a condition
    out of scope, clean for the own condition and for every condition (None)."""

    def probe(w: World, role: str) -> None:
        module, fn = name.rsplit(".", 1)
        call = getattr(importlib.import_module(module), fn)
        v = ROLES[role]
        extra = {k: (a(w) if callable(a) else a) for k, a in kwargs.items()}
        refused(lambda: call(w.engine, v, _out_condition(role), **extra), w.engine, v)
        if role != "admin":
            clean(call(w.engine, v, OWN, **extra), role)
        if "since" not in extra and inspect.signature(call).parameters["condition"].default is None:
            refused_or_clean(lambda: call(w.engine, v, None, **extra), w, role)

    return probe


def _kw_reads(name: str, *, unit_of: Callable[[str], str], **kwargs: Any) -> Callable[[World, str], None]:
    """annotations.chart_*: the condition, an indicator and a unit."""

    def probe(w: World, role: str) -> None:
        module, fn = name.rsplit(".", 1)
        call = getattr(importlib.import_module(module), fn)
        v = ROLES[role]
        refused(lambda: call(w.engine, v, OUT, OUT_INDICATOR, "H01", **kwargs), w.engine, v)
        if role == "admin":
            refused(lambda: call(w.engine, v, OWN, OWN_INDICATOR, "H01", **kwargs), w.engine, v)
            return
        for unit in ("H01", "H02", unit_of(role)):
            clean(call(w.engine, v, OWN, OWN_INDICATOR, unit, **kwargs), role)

    return probe


def p_set_target(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    unchanged(w, lambda: improvement.set_target(w.engine, v, OUT, OUT_INDICATOR, 0.2))
    if role != "care":
        unchanged(w, lambda: improvement.set_target(w.engine, v, OWN, OWN_INDICATOR, 0.2, unit="H02"))
        unchanged(w, lambda: improvement.set_target(w.engine, v, OWN, OWN_INDICATOR, 0.2))


def _edits(w: World, role: str) -> list[str]:
    """Items the role may not edit."""
    keys = ["hip"] + ([] if role == "care" else ["h02", "whole"]) + (["h01"] if role in ("manager", "admin") else [])
    return keys


def p_update_target(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    for key in _edits(w, role):
        unchanged(
            w,
            lambda key=key: improvement.update_target(w.engine, v, w.ids[f"target_{key}"], 1, value=0.3),
            ItemNotFound,
        )


def p_retire_target(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    for key in _edits(w, role):
        unchanged(w, lambda key=key: improvement.retire_target(w.engine, v, w.ids[f"target_{key}"], 1), ItemNotFound)


def p_explain_signal(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    for key in [k for k in _edits(w, role) if f"signal_{k}" in w.ids]:
        unchanged(
            w,
            lambda key=key: improvement.explain_signal(w.engine, v, w.ids[f"signal_{key}"], 2, "data_error", "x"),
            ItemNotFound,
            improvement.ImprovementError,
        )


def p_decide_signal(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    for key in [k for k in _edits(w, role) if f"signal_{k}" in w.ids]:
        unchanged(
            w,
            lambda key=key: improvement.decide_signal(w.engine, v, w.ids[f"signal_{key}"], 2, "no_action"),
            ItemNotFound,
        )


def p_create_action(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    start, due = dt.date(2026, 1, 1), dt.date(2026, 6, 1)
    unchanged(w, lambda: improvement.create_action(w.engine, v, OUT, "x", "nurse", start, due))
    if role != "care":
        unchanged(w, lambda: improvement.create_action(w.engine, v, OWN, "x", "nurse", start, due, unit="H02"))
        unchanged(w, lambda: improvement.create_action(w.engine, v, OWN, "x", "nurse", start, due))


def p_update_action(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    for key in _edits(w, role):
        unchanged(
            w,
            lambda key=key: improvement.update_action(w.engine, v, w.ids[f"action_{key}"], 1, status="done"),
            ItemNotFound,
        )


def p_check_values(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    values = {"condition": OUT, "indicator": OUT_INDICATOR, "value": 0.2, "kind": "team_goal", "unit": ""}
    unchanged(w, lambda: improvement.check_values(w.engine, v, improvement.ItemKind.TARGET, values))


def p_write_versions(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    current = improvement.current_version(w.engine, QUALITY, w.ids["target_hip"])
    values = {k: getattr(current, k) for k in ("condition", "indicator", "kind", "unit", "value", "valid_from")}
    unchanged(
        w,
        lambda: improvement.write_versions(
            w.engine, v, improvement.ItemKind.TARGET, [improvement.Write(None, 0, values)]
        ),
    )
    unchanged(
        w,
        lambda: improvement.write_versions(
            w.engine, v, improvement.ItemKind.TARGET, [improvement.Write(current.item_id, 1, values | {"value": 0.9})]
        ),
    )


def p_record_detection(w: World, role: str) -> None:
    from vbhc import improvement
    from vbhc.improvement import Flag, Rule

    v = ROLES[role]
    flags = [Flag("H01", OUT_INDICATOR, Rule.FUNNEL_998, "worse", 0.3)]
    unchanged(w, lambda: improvement.record_detection(w.engine, v, OUT, "hospital", "9-9", flags))
    if role != "care":
        own = [Flag("H02", OWN_INDICATOR, Rule.FUNNEL_998, "worse", 0.3)]
        unchanged(w, lambda: improvement.record_detection(w.engine, v, OWN, "hospital", "9-9", own))


def p_detect_signals(w: World, role: str) -> None:
    from vbhc import improvement

    v = ROLES[role]
    unchanged(w, lambda: improvement.detect_signals(w.engine, v, conditions=[OUT]))
    if role != "care":
        unchanged(w, lambda: improvement.detect_signals(w.engine, v, conditions=[OWN]))


# spreadsheets, meetings, minutes ----------------------------------------------------------------------------
def _sheet_export(fn: str) -> Callable[[World, str], None]:
    def probe(w: World, role: str) -> None:
        from vbhc import improvement_sheets

        call = getattr(improvement_sheets, fn)
        v = ROLES[role]
        refused(lambda: call(w.engine, v, _out_condition(role)), w.engine, v)
        refused_or_clean(lambda: call(w.engine, v, None), w, role)
        if role == "care_h01":
            clean(call(w.engine, v, OWN), role)
        if role == "manager":
            refused(lambda: call(w.engine, v, OWN), w.engine, v)

    return probe


def _sheet_import(fn: str, kind: str) -> Callable[[World, str], None]:
    def probe(w: World, role: str) -> None:
        from vbhc import agenda, improvement_sheets

        v = ROLES[role]
        data = w.workbooks[kind]
        if fn == "import_workbook":
            call = lambda: agenda.import_workbook(w.engine, v, data, f"{kind}.xlsx")  # noqa: E731
        else:
            call = lambda: getattr(improvement_sheets, fn)(w.engine, v, data, file_name=f"{kind}.xlsx")  # noqa: E731
        before = _counts(w.engine)
        try:
            got = call()
        except (AccessDenied, improvement_sheets.SheetRefused) as exc:
            clean(str(exc), role)
        else:
            raise AssertionError(f"{role} imported another condition's {kind}: {got}")
        assert _counts(w.engine) == before

    return probe


def p_record_meeting(w: World, role: str) -> None:
    from vbhc import minutes

    v = ROLES[role]
    day = dt.date(2025, 4, 1)
    unchanged(w, lambda: minutes.record_meeting(w.engine, v, OUT, day, ["nurse"], []), minutes.MinutesError)
    if role != "care":
        unchanged(
            w, lambda: minutes.record_meeting(w.engine, v, OWN, day, ["nurse"], [], unit="H02"), minutes.MinutesError
        )


def p_meetings(w: World, role: str) -> None:
    from vbhc import minutes

    v = ROLES[role]
    refused(lambda: minutes.meetings(w.engine, v, _out_condition(role)), w.engine, v)
    if role != "admin":
        for unit in (None, "H02", ""):
            clean(minutes.meetings(w.engine, v, OWN, unit=unit), role)


def p_last_meeting_date(w: World, role: str) -> None:
    from vbhc import minutes

    v = ROLES[role]
    refused(lambda: minutes.last_meeting_date(w.engine, v, _out_condition(role)), w.engine, v)
    if role == "manager":  # only the whole condition's meeting and H01's
        assert minutes.last_meeting_date(w.engine, v, OWN, unit="H02") in (None, dt.date(2025, 3, 1))


def _one_meeting(fn: str) -> Callable[[World, str], None]:
    def probe(w: World, role: str) -> None:
        from vbhc import minutes
        from vbhc.reports import minutes as report_minutes

        v = ROLES[role]
        calls = {
            "meeting": lambda m: minutes.meeting(w.engine, v, m),
            "minutes_content": lambda m: report_minutes.minutes_content(w.engine, v, m, "en"),
            "export_minutes": lambda m: report_minutes.export_minutes(w.engine, v, m, "docx", "en"),
        }
        call = calls[fn]
        hidden = ["hip", *{"manager": ["h02"], "admin": ["h02", "whole"]}.get(role, [])]
        for key in hidden:
            refused(lambda key=key: call(w.meetings[key]), w.engine, v, minutes.MinutesError)
        for key in [k for k in w.meetings if k not in hidden]:
            refused_or_clean(lambda key=key: call(w.meetings[key]), w, role, minutes.MinutesError)

    return probe


def p_meeting_agenda(w: World, role: str) -> None:
    from vbhc import agenda

    v = ROLES[role]
    refused(lambda: agenda.meeting_agenda(w.engine, v, _out_condition(role)), w.engine, v)
    if role != "admin":
        for unit in (None, "H01", "H02"):
            got = agenda.meeting_agenda(w.engine, v, OWN, dt.date(2024, 1, 1), unit=unit)
            clean(replace(got, unit=None), role)  # the unit asked about is echoed, not given


def p_read_follow_up(w: World, role: str) -> None:
    from vbhc.reports.followup import read_follow_up

    v = ROLES[role]
    refused(lambda: read_follow_up(w.engine, v, [OWN, _out_condition(role)]), w.engine, v)
    if role != "admin":
        clean(read_follow_up(w.engine, v, [OWN]), role)


def p_make_report(w: World, role: str) -> None:
    from vbhc.reports import ReportError, make_report

    v = ROLES[role]
    folder = w.root / f"report_{role}"
    folder.mkdir(exist_ok=True)
    asks: list[dict[str, Any]] = [{"conditions": [_out_condition(role)]}, {"conditions": None}]
    if role in ("manager", "admin"):
        asks.append({"conditions": [OWN]})
    if role == "care_h01":  # a lower threshold than the registry's would give H02's small cells
        asks.append({"conditions": [OWN], "suppress_below": 0})
    for i, ask in enumerate(asks):
        target = folder / f"r{i}.xlsx"
        refused(
            lambda ask=ask, target=target: make_report(target, fmt="xlsx", engine=w.engine, actor=v, **ask),
            w.engine,
            v,
            ReportError,
        )
        assert not target.exists(), f"{role} got a report file for {ask}"


# board, external figures, models, PREMs ------------------------------------------------------------------------
def p_board_hospitals(w: World, role: str) -> None:
    from vbhc.board import board_hospitals

    got = board_hospitals(ROLES[role], _units(w))
    assert "H02" not in got  # the own hospital (H01) and a manager's own: never another's by default


def p_board_review(w: World, role: str) -> None:
    from vbhc.board import board_review

    v = ROLES[role]
    if role == "admin":
        refused(lambda: board_review(w.engine, v), w.engine, v)
        return
    for hospitals in (None, ["H01", "H02"]):
        got = board_review(w.engine, v, hospitals=hospitals)
        assert {r.condition for r in got} <= {OWN}
        if role == "manager":
            assert {r.hospital for r in got} <= {"H01"}


def p_external_import(fn: str) -> Callable[[World, str], None]:
    def probe(w: World, role: str) -> None:
        module = importlib.import_module(fn.rsplit(".", 1)[0])
        call = getattr(module, fn.rsplit(".", 1)[1])
        if role == "admin":
            return  # admin imports (its scope)
        v = ROLES[role]
        refused(lambda: call(w.engine, v, b"condition,unit\n", file_name="x.csv"), w.engine, v)

    return probe


def p_figures(w: World, role: str) -> None:
    from vbhc.external import figures

    v = ROLES[role]
    refused(lambda: figures(w.engine, v, _out_condition(role)), w.engine, v)
    if role != "admin":
        clean(figures(w.engine, v, OWN), role)


def p_publications(w: World, role: str) -> None:
    from vbhc.external import publications

    v = ROLES[role]
    if role != "admin":
        refused(lambda: publications(w.engine, v), w.engine, v)


def p_export_summary(w: World, role: str) -> None:
    from vbhc.external import export_summary
    from vbhc.reports.privacy import SuppressionRule

    v = ROLES[role]
    kw = {"source": "x", "published": dt.date(2025, 1, 1), "period": "2024"}
    refused(lambda: export_summary(w.engine, v, w.out, **kw), w.engine, v)
    if role in ("manager", "admin"):
        refused(lambda: export_summary(w.engine, v, w.own, **kw), w.engine, v)
    if role == "care_h01":  # H02's small cells, with a threshold of the caller's choosing
        refused_or_clean(
            lambda: _h02_small(export_summary(w.engine, v, w.own, hospitals=["H02"], rule=SuppressionRule(0), **kw)),
            w,
            role,
        )


def _h02_small(content: bytes) -> bytes:
    from vbhc.settings import suppress_below

    frame = pd.read_csv(io.BytesIO(content), comment="#")
    n = pd.to_numeric(frame.get("n", pd.Series(dtype=float)), errors="coerce")
    assert not ((n > 0) & (n < suppress_below())).any(), "H02's small cells were exported"
    return b""


def _external_result(fn: str) -> Callable[[World, str], None]:
    def probe(w: World, role: str) -> None:
        from vbhc import external

        call = getattr(external, fn)
        v = ROLES[role]
        refused(lambda: call(w.engine, v, w.out), w.engine, v)
        if role == "admin":
            refused(lambda: call(w.engine, v, w.own), w.engine, v)
        else:
            clean(call(w.engine, v, w.own, hospitals=["H01"]), role)

    return probe


def p_model_history(w: World, role: str) -> None:
    from vbhc.external_models import model_history

    v = ROLES[role]
    refused(lambda: model_history(w.engine, v, _out_condition(role)), w.engine, v)
    if role != "admin":
        refused(lambda: model_history(w.engine, v, None), w.engine, v)


def p_stored_model(w: World, role: str) -> None:
    from vbhc.external_models import stored_model

    v = ROLES[role]
    refused(lambda: stored_model(w.engine, v, 1), w.engine, v, KeyError)


def p_stored_models(w: World, role: str) -> None:
    from vbhc.external_models import stored_models

    v = ROLES[role]
    refused(lambda: stored_models(w.engine, v, _out_condition(role)), w.engine, v)


def p_team_units(w: World, role: str) -> None:
    from vbhc.prems import team_units

    got = team_units(ROLES[role], w.engine)
    if role == "care_h01":
        assert {h for h, _ in got} <= {"H01"}
    if role in ("manager", "admin"):
        assert got == frozenset()


def p_may_view_prems(w: World, role: str) -> None:
    from vbhc.prems import may_view_prems

    assert may_view_prems(ROLES[role], w.engine) == (role != "admin")


def p_sees_all_prem_units(w: World, role: str) -> None:
    from vbhc.prems import sees_all_prem_units

    assert not sees_all_prem_units(ROLES[role])


def p_prem_rows(w: World, role: str) -> None:
    from vbhc.prems import prem_rows

    v = ROLES[role]
    assert len(w.prem.table), "the probe reaches no PREM rows"
    if role == "admin":
        refused(lambda: prem_rows(v, w.prem, engine=w.engine), w.engine, v)
        return
    got = prem_rows(v, w.prem, engine=w.engine)
    if role == "manager":
        clean(got, role)
        assert set(got.loc[~got["anonymised"], "unit"]) <= {"H01/SUR", "H01/ORT"}
    if role == "care_h01":
        assert set(got.loc[~got["anonymised"], "unit"]) <= {"H01/SUR"}
        assert not got["anonymised"].any() or got.loc[got["anonymised"], "n"].isna().all()


def p_record_prem_view(w: World, role: str) -> None:
    from vbhc.prems import record_prem_view

    assert record_prem_view(ROLES[role], w.prem.table.assign(anonymised=False), w.prem, engine=w.engine) is None


def p_respondent_answers(w: World, role: str) -> None:
    from vbhc.prems import respondent_answers

    v = ROLES[role]
    units = {
        "care": ["H01/ORT", "H02/ORT"],
        "care_h01": ["H02/SUR", "H01/ORT"],
        "manager": ["H01/SUR"],
        "admin": ["H01/SUR"],
    }
    for unit in units[role]:
        refused(lambda unit=unit: respondent_answers(v, w.prem, unit, engine=w.engine), w.engine, v)


def p_actor_fields(w: World, role: str) -> None:
    user, _roles = audit.actor_fields(ROLES[role])
    assert user == ROLES[role].user_id  # the caller's own id and roles: nothing of anyone else


def p_audit_record(w: World, role: str) -> None:
    # writes the caller's own event; gives back whether it was written (no data)
    assert audit.record(w.engine, ROLES[role], "view", detail={"what": "chart_data"}) in (True, False)


def p_write_history(w: World, role: str) -> None:
    from vbhc.demo_history import write_history

    v = ROLES[role]
    before = _counts(w.engine)
    outlier = {"condition": OUT, "hospital": "H01", "indicator": OUT_INDICATOR, "direction": "worse"}
    truth = {"own_hospital": "H01", "index_period": ["2024-01-01"], "outliers": [outlier]}
    with contextlib.suppress(AccessDenied):  # every write goes through vbhc.improvement's role rules
        write_history(w.engine, truth, {(OUT, OUT_INDICATOR): 0.1}, viewer=v)
    assert _counts(w.engine) == before


def p_import_files(w: World, role: str) -> None:
    from vbhc.ingest import import_files

    if role == "admin":
        return  # admin imports (its scope)
    v = ROLES[role]
    refused(lambda: import_files([w.root / "files" / "units.csv"], w.engine, actor=v), w.engine, v)


#: function -> how it is called out of scope (each probe runs for every role in ROLES).
PROBES: dict[str, Callable[[World, str], None]] = {
    "vbhc.access.may_view_condition": false_for(lambda v: access.may_view_condition(v, OUT), *ROLES),
    "vbhc.access.may_see_patient_rows": lambda w, role: (
        false_for(lambda v: access.may_see_patient_rows(v, OUT, "H01"), *ROLES)(w, role),
        false_for(lambda v: access.may_see_patient_rows(v, OWN, "H02"), "care_h01", "manager", "admin")(w, role),
        false_for(lambda v: access.may_see_patient_rows(v, OWN, None), "care_h01", "manager", "admin")(w, role),
    ),
    "vbhc.access.may_export": lambda w, role: (
        false_for(lambda v: access.may_export(v, OUT), *ROLES)(w, role),
        false_for(lambda v: access.may_export(v, OWN, patient_level=True), *ROLES)(w, role),
        false_for(lambda v: access.may_export(v, OWN), "manager", "admin")(w, role),
    ),
    "vbhc.access.may_import": false_for(access.may_import, "care", "care_h01", "manager"),
    "vbhc.access.may_read_audit": false_for(access.may_read_audit, *ROLES),
    "vbhc.access.may_manage_access": false_for(access.may_manage_access, "care", "care_h01", "manager"),
    "vbhc.access.may_edit_improvement": lambda w, role: (
        false_for(lambda v: access.may_edit_improvement(v, OUT, ""), *ROLES)(w, role),
        false_for(lambda v: access.may_edit_improvement(v, OWN, "H02/SUR"), "care_h01", "manager", "admin")(w, role),
        false_for(lambda v: access.may_edit_improvement(v, OWN, ""), "care_h01", "manager", "admin")(w, role),
    ),
    "vbhc.access.may_read_improvement": lambda w, role: (
        false_for(lambda v: access.may_read_improvement(v, OUT, ""), *ROLES)(w, role),
        false_for(lambda v: access.may_read_improvement(v, OWN, "H02"), "care_h01", "manager", "admin")(w, role),
        false_for(lambda v: access.may_read_improvement(v, OWN, "H01"), "manager", "admin")(w, role),
    ),
    "vbhc.access.may_set_norms": false_for(access.may_set_norms, *ROLES),
    "vbhc.access.sees_all_units": lambda w, role: (
        false_for(lambda v: access.sees_all_units(v, OUT), *ROLES)(w, role),
        false_for(lambda v: access.sees_all_units(v, OWN), "manager", "admin")(w, role),
    ),
    "vbhc.access.may_see_unit": lambda w, role: (
        false_for(lambda v: access.may_see_unit(v, OUT, "H01"), *ROLES)(w, role),
        false_for(lambda v: access.may_see_unit(v, OWN, "H02", "SUR"), "manager", "admin")(w, role),
    ),
    "vbhc.access.visible_units": p_visible_units,
    "vbhc.access.focus_units": p_focus_units,
    "vbhc.access.may_focus_unit": p_may_focus_unit,
    "vbhc.access.require": p_require,
    "vbhc.access.patient_rows": p_patient_rows,
    "vbhc.access.indicator_rows": p_indicator_rows,
    "vbhc.access.withholds_across_periods": p_withholds_across_periods,
    "vbhc.access.other_units_shown": p_other_units_shown,
    "vbhc.access.period_masks": p_period_masks,
    "vbhc.access.period_grid_masks": p_period_masks,
    "vbhc.access.record_indicator_view": p_record_indicator_view,
    "vbhc.access.record_refused_link": p_record_refused_link,
    "vbhc.access.limited_care_hospitals": p_limited_care_hospitals,
    "vbhc.access.comparison_group": p_comparison_group,
    "vbhc.access.GroupChoice.of": p_group_choice,
    "vbhc.access.comparison_groups_offered": p_comparison_groups_offered,
    "vbhc.access.comparison_group_refusal": p_comparison_group_refusal,
    "vbhc.access.registry_indicators_withheld": p_registry_indicators_withheld,
    "vbhc.access.offered_groups": p_offered_groups,
    "vbhc.access.group_indicators_withheld": p_group_indicators_withheld,
    "vbhc.access.provenance_for": p_provenance_for,
    "vbhc.access.published_groups_problem": p_published_groups_problem,
    "vbhc.access.config_problem": p_config_problem,
    "vbhc.access.grid_masked": p_grid_masked,
    "vbhc.access.guarded_import": p_guarded_import,
    "vbhc.access.export_file": p_export_file,
    "vbhc.access.export_table": p_export_table,
    "vbhc.access.require_file_export": p_require_file_export,
    "vbhc.access.read_audit": p_read_audit,
    "vbhc.agenda.meeting_agenda": p_meeting_agenda,
    "vbhc.agenda.import_workbook": _sheet_import("import_workbook", "targets"),
    "vbhc.annotations.chart_targets": _kw_reads("vbhc.annotations.chart_targets", unit_of=lambda r: "H02/SUR"),
    "vbhc.annotations.chart_actions": _kw_reads("vbhc.annotations.chart_actions", unit_of=lambda r: "H02/SUR"),
    "vbhc.annotations.chart_notes": _kw_reads("vbhc.annotations.chart_notes", unit_of=lambda r: "H02/SUR"),
    "vbhc.audit.actor_fields": p_actor_fields,
    "vbhc.audit.record": p_audit_record,
    "vbhc.board.board_hospitals": p_board_hospitals,
    "vbhc.board.board_review": p_board_review,
    "vbhc.demo_history.write_history": p_write_history,
    "vbhc.external.import_figures": p_external_import("vbhc.external.import_figures"),
    "vbhc.external.figures": p_figures,
    "vbhc.external.publications": p_publications,
    "vbhc.external.export_summary": p_export_summary,
    "vbhc.external.external_benchmark": _external_result("external_benchmark"),
    "vbhc.external.benchmarked": _external_result("benchmarked"),
    "vbhc.external_models.import_model": p_external_import("vbhc.external_models.import_model"),
    "vbhc.external_models.model_history": p_model_history,
    "vbhc.external_models.stored_model": p_stored_model,
    "vbhc.external_models.stored_models": p_stored_models,
    "vbhc.improvement.history": _by_id("history"),
    "vbhc.improvement.set_target": p_set_target,
    "vbhc.improvement.update_target": p_update_target,
    "vbhc.improvement.retire_target": p_retire_target,
    "vbhc.improvement.targets": _reads("vbhc.improvement.targets", active_only=False),
    "vbhc.improvement.explain_signal": p_explain_signal,
    "vbhc.improvement.decide_signal": p_decide_signal,
    "vbhc.improvement.signals": _reads("vbhc.improvement.signals"),
    "vbhc.improvement.new_signals_since": _reads("vbhc.improvement.new_signals_since", since=dt.date(2000, 1, 1)),
    "vbhc.improvement.create_action": p_create_action,
    "vbhc.improvement.update_action": p_update_action,
    "vbhc.improvement.actions": _reads("vbhc.improvement.actions"),
    "vbhc.improvement.check_values": p_check_values,
    "vbhc.improvement.current_version": _by_id("current_version"),
    "vbhc.improvement.write_versions": p_write_versions,
    "vbhc.improvement.overdue": _reads("vbhc.improvement.overdue", today=dt.date(2026, 1, 1)),
    "vbhc.improvement.record_detection": p_record_detection,
    "vbhc.improvement.detect_signals": p_detect_signals,
    "vbhc.improvement_sheets.export_targets": _sheet_export("export_targets"),
    "vbhc.improvement_sheets.export_actions": _sheet_export("export_actions"),
    "vbhc.improvement_sheets.import_targets": _sheet_import("import_targets", "targets"),
    "vbhc.improvement_sheets.import_actions": _sheet_import("import_actions", "actions"),
    "vbhc.ingest.run.import_files": p_import_files,
    "vbhc.minutes.record_meeting": p_record_meeting,
    "vbhc.minutes.meetings": p_meetings,
    "vbhc.minutes.meeting": _one_meeting("meeting"),
    "vbhc.minutes.last_meeting_date": p_last_meeting_date,
    "vbhc.prems.team_units": p_team_units,
    "vbhc.prems.may_view_prems": p_may_view_prems,
    "vbhc.prems.sees_all_prem_units": p_sees_all_prem_units,
    "vbhc.prems.prem_rows": p_prem_rows,
    "vbhc.prems.record_prem_view": p_record_prem_view,
    "vbhc.prems.respondent_answers": p_respondent_answers,
    "vbhc.reports.followup.read_follow_up": p_read_follow_up,
    "vbhc.reports.minutes.minutes_content": _one_meeting("minutes_content"),
    "vbhc.reports.minutes.export_minutes": _one_meeting("export_minutes"),
    "vbhc.reports.run.make_report": p_make_report,
}


# --------------------------------------------------------------------------------------------- introspection
def _takes_viewer(fn: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name in ("viewer", "actor") or "Viewer" in str(p.annotation) for p in parameters)


def functions_taking_a_viewer() -> set[str]:
    """Every public function (and public method) defined in a vbhc module that takes a viewer or actor."""
    found: set[str] = set()
    for info in pkgutil.walk_packages(vbhc.__path__, "vbhc."):
        if info.name.startswith("vbhc.migrations"):
            continue  # alembic's scripts, run by alembic only
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj) and _takes_viewer(obj):
                found.add(f"{module.__name__}.{name}")
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    fn = getattr(member, "__func__", member)
                    if not attr.startswith("_") and inspect.isfunction(fn) and _takes_viewer(fn):
                        found.add(f"{module.__name__}.{name}.{attr}")
    return found


def test_every_function_that_takes_a_viewer_is_probed():
    found = functions_taking_a_viewer()
    missing = sorted(found - set(PROBES))
    assert not missing, f"public functions taking a viewer without a probe in PROBES: {missing}"
    gone = sorted(set(PROBES) - found)
    assert not gone, f"PROBES names functions that no longer take a viewer: {gone}"


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("name", sorted(PROBES))
def test_out_of_scope_call_is_refused_or_gives_nothing(world, name, role):
    PROBES[name](world, role)
