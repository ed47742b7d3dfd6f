"""Roles and what each may see, enforced here in vbhc (not only by hiding widgets).

Sign-in (Streamlit OIDC or the localhost demo) only says who someone is; this module says what they may see.
A mapping file (VBHC_ACCESS_FILE, default config/access.toml; see config/access.example.toml) grants roles to
users (email) and OIDC groups, each grant with its scope. A user without any matching grant has no role and sees
nothing.

Role rules (who sees what):
- care_team: aggregated indicators of its own conditions for every unit (the peers are the benchmark);
  pseudonymised patient-level rows of its own conditions (only its own hospitals when the grant names them);
  exports of its own conditions, aggregated only. No import, audit log or mapping. Improvement items
  (targets, signals, actions, meeting records) of its own conditions: edits and reads them in full; a care team
  limited to some hospitals edits and reads in full only its hospitals' units' items, reads the whole
  condition's in full without editing them, and other hospitals' status only (may_edit_improvement).
- quality (directorate): every condition and unit, patient-level rows of every condition, every export
  (also patient-level), import, and reading the audit log.
- manager: aggregated indicators of own hospitals/departments/divisions only (optionally limited to some
  conditions); other units' rows are anonymised or hidden; never patient-level rows; no export. Other units
  are never isolated or linked: they carry no name, a number per indicator by value (not carried across
  indicators), their n in bands, values rounded (the expected rank to a whole number), no
  observed/expected/limits/intervals (each would give n back), small ones withheld; a comparison group needs at
  least MIN_OTHER_UNITS other units from as many hospitals, counted per indicator in every period, else that
  indicator's other units, benchmark and own figures computed from every unit (which would give a lone other unit
  back) are not shown; a manager's group is one of the published groups (offered_groups: no sum or difference of
  the views offered singles out fewer than MIN_OTHER_UNITS units from as many hospitals).
- admin: imports and the roles mapping; no indicators, no patient-level rows, no audit log.
- Small numbers on pages: a viewer sees exact small cells only of units whose patient-level rows they may see
  (quality; a care team without a hospital limit). A care team limited to some hospitals gets other hospitals'
  cells below the threshold withheld with secondary cells (vbhc.reports.privacy.suppression_mask, the same
  cells as its files withhold, minus its own), so a withheld cell cannot be worked out from the benchmark,
  and takes only its own hospitals' units as the page's unit (focus_units: a unit in focus is shown by care
  cycle, quarter and window, below the cells).

- A viewer with several grants gets the union of what each grant allows (each grant keeps its own scope).
- The benchmark (target, control limits) is computed on every unit in vbhc.indicators; a manager's table keeps the
  target on each own row, and other units' rows are either dropped or shown as "other unit" without hospital name.
- admin manages imports and the mapping, not patient data (least privilege); the audit log is read by the quality
  directorate, not by whoever administers the system (NEN 7510: logs are reviewed independently of admins).
- Every refusal raises AccessDenied (a PermissionError whose message names what was refused and why, never
  patient data) and records a "denied" audit event.

The guarded entry points (`patient_rows`, `indicator_rows`, `guarded_import`, `export_file`, `read_audit`) are
what pages and reports call instead of the raw functions, so a page never receives rows it must not show.
"""

from __future__ import annotations

import json
import logging
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from vbhc import audit
from vbhc.disclosure import MIN_OTHER_UNITS
from vbhc.registry import hospital_of, unit_parts
from vbhc.safety import safe_csv

if TYPE_CHECKING:
    from vbhc.catalog import Catalog
    from vbhc.indicators import IndicatorResult
    from vbhc.ingest import ImportReport

log = logging.getLogger(__name__)

#: What an anonymised unit is called in a manager's indicator table.
OTHER_UNIT = "other unit"
#: Column of a manager's own rows whose benchmark and model figures are withheld (computed from too few others).
BENCHMARK_WITHHELD = "benchmark_withheld"
#: Columns an anonymised other unit never carries: each gives its exact n (or events) back.
EXACT_COLUMNS = (
    "n",
    "n_adjusted",
    "observed",
    "expected",
    "oe_lower",
    "oe_upper",
    "crude_lower",
    "crude_upper",
    "adjusted_lower",
    "adjusted_upper",
    "precision",
    "detectable_difference",
    "crude_value",
    # vbhc.shrinkage's per-unit intervals: their width is the unit's precision, which gives n back
    "shrunken_lower",
    "shrunken_upper",
    "expected_rank_lower",
    "expected_rank_upper",
)
#: Columns of an anonymised other unit shown rounded (3 significant digits; 2 for a plain rate such as the
#: response rate, a fraction that would otherwise be solved back into n) and withheld below the threshold.
#: The crude value is not shown at all: it is events / n, a fraction that gives n back.
ROUNDED_COLUMNS = ("adjusted_value", "oe", "shrunken_value")
#: Columns of an anonymised other unit shown as a whole number, withheld below the threshold: the expected rank
#: (vbhc.shrinkage), without its interval. Whole, it says little more than the order of the rounded shrunken
#: values shown beside it, while its decimals (how far it sits from a whole place) would hint at the precision.
WHOLE_COLUMNS = ("expected_rank",)
_LIMIT_PREFIXES = ("lower_", "upper_")
_BENCHMARK_PREFIXES = ("lower_", "upper_", "position_", "assessment_")


class Role(StrEnum):
    CARE_TEAM = "care_team"
    QUALITY = "quality"
    MANAGER = "manager"
    ADMIN = "admin"


class Permission(StrEnum):
    VIEW_CONDITION = "view_condition"
    PATIENT_ROWS = "patient_rows"
    EXPORT = "export"
    IMPORT = "import"
    READ_AUDIT = "read_audit"
    MANAGE_ACCESS = "manage_access"
    EDIT_IMPROVEMENT = "edit_improvement"
    SET_NORMS = "set_norms"


class AccessDenied(PermissionError):
    """The viewer may not do this; the message says what and why (never patient data)."""

    def __init__(self, user_id: str, permission: str, reason: str, context: Mapping[str, object] | None = None):
        self.user_id, self.permission, self.reason = user_id, str(permission), reason
        self.context = dict(context or {})
        where = ", ".join(f"{k} {v}" for k, v in self.context.items() if v is not None)
        what = _WHAT.get(self.permission, self.permission)
        super().__init__(
            f"{user_id or 'unknown user'} may not {what}" + (f" ({where})" if where else "") + f": {reason}"
        )


_WHAT = {
    Permission.VIEW_CONDITION: "view this condition",
    Permission.PATIENT_ROWS: "see patient-level rows",
    Permission.EXPORT: "export",
    Permission.IMPORT: "import registry files",
    Permission.READ_AUDIT: "read the audit log",
    Permission.MANAGE_ACCESS: "manage the roles mapping",
    Permission.EDIT_IMPROVEMENT: "edit targets, signal explanations or improvement actions",
    Permission.SET_NORMS: "set external norms",
}


class AccessConfigError(ValueError):
    """The roles mapping file is wrong; the message names file, grant number, key and value."""


# --- who -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """One grant's role and reach. An empty set means "no restriction" (the loader demands a scope where needed)."""

    role: Role
    conditions: frozenset[str] = frozenset()
    hospitals: frozenset[str] = frozenset()
    departments: frozenset[str] = frozenset()  # "HOSPITAL/DEPARTMENT", as vbhc.registry.unit_labels writes them
    divisions: frozenset[str] = frozenset()

    def covers_condition(self, condition: str) -> bool:
        return not self.conditions or condition in self.conditions

    @property
    def unit_restricted(self) -> bool:
        return bool(self.hospitals or self.departments or self.divisions)

    def covers_unit(self, hospital: str, department: str | None = None, division: str | None = None) -> bool:
        """A department (hospital + department) or, with department None, a whole hospital."""
        if not self.unit_restricted or hospital in self.hospitals:
            return True
        if department is None:
            return False  # a hospital-wide unit is more than the departments or divisions granted
        return f"{hospital}/{department}" in self.departments or (division is not None and division in self.divisions)


@dataclass(frozen=True)
class Viewer:
    """Who is looking, with every scope their grants give. Frozen: safe as part of a cache key."""

    user_id: str  # email for OIDC users, "local" for the localhost demo
    name: str = ""
    scopes: tuple[Scope, ...] = ()
    local: bool = False

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(s.role for s in self.scopes)

    def has(self, role: Role) -> bool:
        return any(s.role == role for s in self.scopes)

    def scopes_for(self, role: Role) -> tuple[Scope, ...]:
        return tuple(s for s in self.scopes if s.role == role)

    @property
    def conditions(self) -> frozenset[str]:
        """Conditions of the viewer's care teams (empty for a viewer without the care_team role)."""
        return frozenset().union(*(s.conditions for s in self.scopes_for(Role.CARE_TEAM)))

    @property
    def hospitals(self) -> frozenset[str]:
        """Hospitals a manager grant covers."""
        return frozenset().union(*(s.hospitals for s in self.scopes_for(Role.MANAGER)))

    @property
    def departments(self) -> frozenset[str]:
        """Departments ("HOSPITAL/DEPARTMENT") a manager grant covers."""
        return frozenset().union(*(s.departments for s in self.scopes_for(Role.MANAGER)))

    @property
    def cache_key(self) -> str:
        """A short stable text for the keys of shared caches of anything that depends on what the viewer may see:
        equal for the same scopes in any order, different for any other scopes. JSON, so no name in a grant can
        make two scopes read alike: joined with "," and ":" a typo'd grant of hospitals ["H01,H02"] (no such
        hospital: a manager who sees only anonymised units) had the key of ["H01", "H02"] and was shown that
        manager's cached views, both hospitals by name."""
        parts = {
            (str(s.role), *(tuple(sorted(v)) for v in (s.conditions, s.hospitals, s.departments, s.divisions)))
            for s in self.scopes
        }
        return json.dumps(sorted(parts), ensure_ascii=False, separators=(",", ":"))


def local_viewer(name: str = "Local user") -> Viewer:
    """The single-user demo on localhost: every role, no restriction."""
    return Viewer("local", name, tuple(Scope(r) for r in Role), local=True)


# --- the mapping file ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    number: int  # 1-based position in the file, for messages
    user: str | None
    group: str | None
    scope: Scope

    def matches(self, email: str, groups: Iterable[str]) -> bool:
        if self.user is not None and email and self.user == email.strip().casefold():
            return True
        return self.group is not None and self.group in set(groups)


@dataclass(frozen=True)
class AccessMapping:
    file: Path | None
    grants: tuple[Grant, ...] = field(default_factory=tuple)


_GRANT_KEYS = {"user", "group", "role", "conditions", "hospitals", "departments", "divisions", "note"}
_SCOPE_KEYS = ("conditions", "hospitals", "departments", "divisions")
_ALLOWED_SCOPE = {
    Role.CARE_TEAM: {"conditions", "hospitals"},
    Role.QUALITY: set(),
    Role.MANAGER: {"conditions", "hospitals", "departments", "divisions"},
    Role.ADMIN: set(),
}


def load_access(path: Path | str | None = None, catalog: Catalog | None = None) -> AccessMapping:
    """Read and check the mapping file (default: settings.access_file()); AccessConfigError on any mistake."""
    from vbhc.settings import access_file

    path = Path(path) if path is not None else access_file()
    if not path.is_file():
        raise AccessConfigError(
            f"{path}: roles mapping file not found; copy config/access.example.toml there or set VBHC_ACCESS_FILE"
        )
    data = _read_toml(path)
    return parse_access(data, path, catalog)


def _read_toml(path: Path) -> dict[str, Any]:
    """A configuration file's TOML; AccessConfigError naming the file when it cannot be read or parsed. A file
    the server may not read (permissions) or that vanished after the check raised OSError, which no page or
    command catches as a mistake in the file."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AccessConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise AccessConfigError(f"{path}: cannot be read: {exc.strerror or type(exc).__name__}") from None


def parse_access(
    data: Mapping[str, Any], file: Path | str = "<mapping>", catalog: Catalog | None = None
) -> AccessMapping:
    """Check an already parsed mapping (tests, other sources) and build the grants."""
    if catalog is None:
        from vbhc.catalog import default_catalog

        catalog = default_catalog()
    file = Path(file)
    unknown = sorted(set(data) - {"grant"})
    if unknown:
        raise AccessConfigError(f"{file}: unknown top-level key {unknown[0]!r}; only [[grant]] tables are allowed")
    raw_grants = data.get("grant", [])
    if not isinstance(raw_grants, list) or not all(isinstance(g, dict) for g in raw_grants):
        raise AccessConfigError(f"{file}: 'grant' must be a list of tables, written [[grant]]")
    grants = tuple(_parse_grant(file, i, g, catalog) for i, g in enumerate(raw_grants, start=1))
    return AccessMapping(file, grants)


def _parse_grant(file: Path, number: int, raw: Mapping[str, Any], catalog: Catalog) -> Grant:
    def fail(key: str, value: object, message: str) -> AccessConfigError:
        return AccessConfigError(f"{file}: grant {number}, key {key!r}, value {value!r}: {message}")

    for key in raw:
        if key not in _GRANT_KEYS:
            raise fail(key, raw[key], f"unknown key (allowed: {', '.join(sorted(_GRANT_KEYS))})")
    user, group = raw.get("user"), raw.get("group")
    for key, value in (("user", user), ("group", group)):
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(key, value, "must be a non-empty text")
    if (user is None) == (group is None):
        raise fail("user/group", None, "give exactly one of 'user' (an email) or 'group' (an OIDC group)")
    if user is not None and "@" not in user:
        raise fail("user", user, "must be an email address (as the identity provider reports it)")
    role_text = raw.get("role")
    try:
        role = Role(role_text)
    except ValueError:
        raise fail("role", role_text, f"unknown role (allowed: {', '.join(r.value for r in Role)})") from None
    if "note" in raw and not isinstance(raw["note"], str):
        raise fail("note", raw["note"], "must be a text")
    sets: dict[str, frozenset[str]] = {}
    for key in _SCOPE_KEYS:
        value = raw.get(key)
        if value is None:
            sets[key] = frozenset()
            continue
        if key not in _ALLOWED_SCOPE[role]:
            raise fail(key, value, f"not a scope of role {role.value} (allowed: {_allowed_text(role)})")
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail(key, value, "must be a non-empty list of texts")
        sets[key] = frozenset(v.strip() for v in value)
    for cond in sorted(sets["conditions"]):
        if cond not in catalog.conditions:
            raise fail("conditions", cond, f"unknown condition (known: {', '.join(sorted(catalog.conditions))})")
    for dep in sorted(sets["departments"]):
        hospital, department = unit_parts(dep)
        if "@" in dep or not hospital or not department or "/" in department:
            raise fail("departments", dep, "write a department as HOSPITAL/DEPARTMENT, e.g. 'H01/SUR'")
    if role == Role.CARE_TEAM and not sets["conditions"]:
        raise fail("conditions", None, "a care_team grant must name its condition(s)")
    if role == Role.MANAGER and not (sets["hospitals"] or sets["departments"] or sets["divisions"]):
        raise fail("hospitals", None, "a manager grant must name hospitals, departments or divisions")
    scope = Scope(role, sets["conditions"], sets["hospitals"], sets["departments"], sets["divisions"])
    return Grant(number, user.strip().casefold() if user else None, group.strip() if group else None, scope)


def _allowed_text(role: Role) -> str:
    return ", ".join(sorted(_ALLOWED_SCOPE[role])) or "none"


def viewer_for(email: str, name: str = "", groups: Iterable[str] = (), mapping: AccessMapping | None = None) -> Viewer:
    """The Viewer for a signed-in user: every grant matching the email or one of the groups. No grant, no role."""
    mapping = mapping if mapping is not None else load_access()
    groups = [str(g) for g in groups]
    seen: list[Scope] = []
    for grant in mapping.grants:
        if grant.matches(email, groups) and grant.scope not in seen:
            seen.append(grant.scope)
    return Viewer((email or "").strip(), name, tuple(seen))


# --- permissions (pure) ----------------------------------------------------------------------------------


def may_view_condition(viewer: Viewer, condition: str) -> bool:
    """Aggregated indicators of `condition` (for a manager: of their own units only, see visible_units)."""
    return any(
        s.role == Role.QUALITY or (s.role in (Role.CARE_TEAM, Role.MANAGER) and s.covers_condition(condition))
        for s in viewer.scopes
    )


def may_see_patient_rows(viewer: Viewer, condition: str, hospital: str | None = None) -> bool:
    """Pseudonymised care cycles behind a signal: quality, and care teams for their own condition (and hospitals).

    With `hospital` None a care team limited to some hospitals is refused: it must say which unit it asks about.
    """
    for s in viewer.scopes:
        if s.role == Role.QUALITY:
            return True
        if (
            s.role == Role.CARE_TEAM
            and s.covers_condition(condition)
            and (not s.hospitals or (hospital is not None and hospital in s.hospitals))
        ):
            return True
    return False


def may_export(viewer: Viewer, condition: str | None = None, patient_level: bool = False) -> bool:
    """Quality exports anything; a care team exports aggregated results of its own conditions (for its meeting)."""
    if viewer.has(Role.QUALITY):
        return True
    if patient_level or condition is None:
        return False
    return any(s.covers_condition(condition) for s in viewer.scopes_for(Role.CARE_TEAM))


def provenance_for(
    viewer: Viewer, conditions: Sequence[str], batches: pd.DataFrame, reach: pd.DataFrame
) -> pd.DataFrame:
    """The import batches a file made for `viewer` of `conditions` lists on its cover (file, SHA-256, rows, who
    imported it, when): the quality directorate every batch (it reads every row and the audit log); anyone else
    only the batches whose stored rows are of those conditions in hospitals whose rows the viewer reads
    (may_see_patient_rows), and the units tables' batches of those hospitals. A care team limited to H01 was
    given every other hospital's file names, importers (people) and row counts, and every other condition's.
    `reach` is vbhc.registry.batch_reach; a batch no stored row points at any more is listed to quality only."""
    if viewer.has(Role.QUALITY) or batches.empty:
        return batches
    wanted = [str(c) for c in conditions]
    kept: set[int] = set()
    for batch_id, condition, hospital in reach[["batch_id", "condition", "hospital"]].itertuples(index=False):
        if condition is None or pd.isna(condition):
            visible = any(may_see_patient_rows(viewer, c, str(hospital)) for c in wanted)
        else:
            visible = str(condition) in wanted and may_see_patient_rows(viewer, str(condition), str(hospital))
        if visible:
            kept.add(int(batch_id))
    return batches[batches["id"].astype(int).isin(kept)].reset_index(drop=True)


def may_import(viewer: Viewer) -> bool:
    return viewer.has(Role.QUALITY) or viewer.has(Role.ADMIN)


def may_read_audit(viewer: Viewer) -> bool:
    return viewer.has(Role.QUALITY)


def may_manage_access(viewer: Viewer) -> bool:
    return viewer.has(Role.ADMIN)


def may_edit_improvement(viewer: Viewer, condition: str, unit: str | None) -> bool:
    """Whether the viewer edits an improvement item (team goal, signal explanation or decision, improvement action,
    meeting record; vbhc.improvement, vbhc.minutes) of `condition` and `unit` (a unit label at any level; "" or
    None: the whole condition). The one rule every caller applies, so the functions, the meeting page and the
    workbook import agree: the quality directorate and a care team of the condition without a hospital limit edit
    every item; a care team limited to some hospitals edits the items of its hospitals' units only, not another
    hospital's, nor the whole condition's (a target for every hospital is not one hospital's to set). Managers
    never edit."""
    if viewer.has(Role.QUALITY):
        return True
    return any(
        s.covers_condition(condition) and (not s.hospitals or (bool(unit) and hospital_of(str(unit)) in s.hospitals))
        for s in viewer.scopes_for(Role.CARE_TEAM)
    )


def may_read_improvement(viewer: Viewer, condition: str, unit: str | None) -> bool:
    """Whether the viewer reads an improvement item of `condition` and `unit` in full (the teams' free texts:
    explanations, expected effects, meeting notes) rather than its status only: whoever may edit it, and any care
    team of the condition for the whole condition's items. A care team limited to some hospitals reads another
    hospital's items as a manager reads items: status only."""
    if may_edit_improvement(viewer, condition, unit):
        return True
    return not unit and any(s.covers_condition(condition) for s in viewer.scopes_for(Role.CARE_TEAM))


def may_set_norms(viewer: Viewer) -> bool:
    """External norms (a national registry's norm, with its source) are set by the quality directorate only."""
    return viewer.has(Role.QUALITY)


def sees_all_units(viewer: Viewer, condition: str) -> bool:
    """Quality, and care teams of the condition, see every unit's aggregated row (the peers are the benchmark)."""
    return any(
        s.role == Role.QUALITY or (s.role == Role.CARE_TEAM and s.covers_condition(condition)) for s in viewer.scopes
    )


def may_see_unit(
    viewer: Viewer, condition: str, hospital: str, department: str | None = None, division: str | None = None
) -> bool:
    """One unit's aggregated row: everyone who sees all units, or a manager whose scope covers the unit."""
    if sees_all_units(viewer, condition):
        return True
    return any(
        s.covers_condition(condition) and s.covers_unit(hospital, department, division)
        for s in viewer.scopes_for(Role.MANAGER)
    )


def visible_units(viewer: Viewer, units_df: pd.DataFrame, level: str, condition: str | None = None) -> list[str]:
    """Labels (as vbhc.registry.unit_labels writes them) of the units at `level` whose rows the viewer may see.

    `units_df` is vbhc.registry.units() (hospital, department, division). Levels: "hospital" (a manager needs the
    hospital itself in scope, departments are not enough), "department", and "condition_team" (needs
    `condition`; a manager needs the hospital in scope). With `condition` None the manager's condition limits
    are ignored (the caller checks may_view_condition).
    """
    if level == "condition_team" and condition is None:
        raise ValueError("visible_units at level 'condition_team' needs the condition")
    cond = condition or ""
    checker: Callable[[str, str | None, str | None], bool]
    if condition is None:
        all_units = viewer.has(Role.QUALITY) or viewer.has(Role.CARE_TEAM)

        def checker(h: str, d: str | None, v: str | None) -> bool:
            return all_units or any(s.covers_unit(h, d, v) for s in viewer.scopes_for(Role.MANAGER))
    else:

        def checker(h: str, d: str | None, v: str | None) -> bool:
            return may_see_unit(viewer, cond, h, d, v)

    labels: list[str] = []
    if level == "hospital" or level == "condition_team":
        for h in sorted(set(units_df["hospital"].astype(str))):
            if checker(h, None, None):
                labels.append(h if level == "hospital" else f"{cond}@{h}")
    elif level == "department":
        division = units_df["division"] if "division" in units_df else pd.Series("", index=units_df.index)
        for h, d, v in zip(units_df["hospital"].astype(str), units_df["department"].astype(str), division, strict=True):
            if checker(h, d, None if pd.isna(v) else str(v)):
                labels.append(f"{h}/{d}")
    else:
        raise ValueError(f"unknown unit level {level!r}")
    return labels


def focus_units(viewer: Viewer, units_df: pd.DataFrame, level: str, condition: str) -> list[str] | None:
    """Labels of the units at `level` the viewer may take as the page's unit: a unit in focus is shown below its
    unit × indicator cells (one point per care cycle in VLAD/CUSUM, per quarter in its trend and SPC chart, per
    window since the last meeting and around an action), figures the tables' small-number rule does not reach.

    So the units whose small cells the viewer may see: every visible unit for quality and a care team without a
    hospital limit, a manager's own units, and for a care team limited to some hospitals those hospitals' units
    (it picked another hospital's unit and got its care cycles' outcomes by date in the VLAD chart and its
    quarters of three care cycles in the trend); it still sees every unit in the comparison tables and charts.
    None: every unit (quality, a care team of the condition without a hospital limit).
    """
    if not sees_all_units(viewer, condition):
        return visible_units(viewer, units_df, level, condition)
    limited = _limited_care_hospitals(viewer, condition)
    if limited is None:
        return None
    labels = visible_units(viewer, units_df, level, condition)
    managers = viewer.scopes_for(Role.MANAGER)
    managed = (
        set(visible_units(Viewer(viewer.user_id, viewer.name, managers), units_df, level, condition))
        if managers
        else set()
    )
    return [u for u in labels if hospital_of(u) in limited or u in managed]


def may_focus_unit(viewer: Viewer, units_df: pd.DataFrame, level: str, condition: str, unit: str) -> bool:
    """Whether `unit` (a label at `level`) is one of focus_units: its figures below the cells may be shown."""
    focus = focus_units(viewer, units_df, level, condition)
    return focus is None or unit in set(focus)


_CHECKS: dict[Permission, Callable[..., bool]] = {
    Permission.VIEW_CONDITION: lambda v, condition=None, **_: (
        condition is not None and may_view_condition(v, condition)
    ),
    Permission.PATIENT_ROWS: lambda v, condition=None, hospital=None, **_: (
        condition is not None and may_see_patient_rows(v, condition, hospital)
    ),
    Permission.EXPORT: lambda v, condition=None, patient_level=False, **_: may_export(v, condition, patient_level),
    Permission.IMPORT: lambda v, **_: may_import(v),
    Permission.READ_AUDIT: lambda v, **_: may_read_audit(v),
    Permission.MANAGE_ACCESS: lambda v, **_: may_manage_access(v),
    Permission.EDIT_IMPROVEMENT: lambda v, condition=None, unit=None, **_: (
        condition is not None and may_edit_improvement(v, condition, unit)
    ),
    Permission.SET_NORMS: lambda v, **_: may_set_norms(v),
}


def _reason(viewer: Viewer, permission: Permission, context: Mapping[str, object]) -> str:
    roles = ", ".join(sorted(r.value for r in viewer.roles)) or "none"
    if not viewer.roles:
        return "no role is granted to this user in the roles mapping"
    if permission == Permission.PATIENT_ROWS:
        if viewer.has(Role.MANAGER) and not viewer.has(Role.CARE_TEAM):
            return f"roles {roles}: managers see aggregated indicators only, never patient-level rows"
        return f"roles {roles}: patient-level rows are for the quality directorate and the condition's own care team"
    if permission == Permission.VIEW_CONDITION:
        return f"roles {roles}: the condition is outside the viewer's care teams and managed units"
    if permission == Permission.EXPORT and context.get("patient_level"):
        return f"roles {roles}: patient-level exports are for the quality directorate only"
    condition = context.get("condition")
    if (
        permission == Permission.EDIT_IMPROVEMENT
        and isinstance(condition, str)
        and any(s.covers_condition(condition) for s in viewer.scopes_for(Role.CARE_TEAM))
    ):  # a care team limited to some hospitals, asked about another hospital's unit or the whole condition
        return (
            f"roles {roles}: a care team limited to some hospitals edits its own hospitals' units' items only "
            "(the whole condition's: quality or a care team without a hospital limit)"
        )
    needed = {
        Permission.EXPORT: "quality (or care_team for its own conditions, aggregated only)",
        Permission.IMPORT: "quality or admin",
        Permission.READ_AUDIT: "quality",
        Permission.MANAGE_ACCESS: "admin",
        Permission.EDIT_IMPROVEMENT: "quality or the condition's own care_team (managers read status only)",
        Permission.SET_NORMS: "quality",
    }[permission]
    return f"roles {roles}: needs {needed}"


def require(viewer: Viewer, permission: Permission | str, *, engine: Engine | None = None, **context: Any) -> None:
    """Pass silently when allowed; else record a "denied" audit event and raise AccessDenied.

    `context` names what was asked for (condition, hospital, unit, indicator, patient_level, what): ids only.
    """
    permission = Permission(permission)
    if _CHECKS[permission](viewer, **context):
        return
    error = AccessDenied(viewer.user_id, permission, _reason(viewer, permission, context), _shown_context(context))
    _record_denied(viewer, permission, context, engine)
    raise error


#: Characters of a refused link's value kept in the audit log (a URL can carry anything).
LINK_VALUE_CHARS = 100


def record_refused_link(viewer: Viewer, parameter: str, asked: str, *, engine: Engine | None = None) -> None:
    """Audit a link (a URL's query string) that asked for a filter value the viewer is not offered: another
    condition, another hospital's unit, a level, period or comparison group outside the viewer's choices. The page
    falls back to what the viewer may see; the attempt is logged as "denied" with the parameter and the value asked
    (cut to LINK_VALUE_CHARS), so a tampered or shared link to another scope shows up in the log like any refusal."""
    from vbhc.store import get_engine

    detail = {"what": "link", "filter": str(parameter)[:40], "asked": str(asked)[:LINK_VALUE_CHARS]}
    try:
        audit.record(engine or get_engine(), viewer, "denied", detail=detail)
    except SQLAlchemyError as exc:  # the fallback stands even when the log cannot be written
        log.error("could not write the audit event for a refused link (%s)", type(exc).__name__)


def _shown_context(context: Mapping[str, object]) -> dict[str, object]:
    shown = ("condition", "unit", "indicator", "what", "file", "item")
    return {k: v for k, v in context.items() if k in shown and v is not None}


def _record_denied(
    viewer: Viewer, permission: Permission, context: Mapping[str, object], engine: Engine | None
) -> None:
    from vbhc.store import get_engine

    detail = {"permission": permission.value} | {
        k: v
        for k, v in context.items()
        if k
        in ("indicator", "what", "hospital", "patient_level", "level", "file", "file_count", "item", "suppress_below")
    }
    try:
        audit.record(
            engine or get_engine(),
            viewer,
            "denied",
            condition=_text_or_none(context.get("condition")),
            unit=_text_or_none(context.get("unit")),
            detail=detail,
        )
    except SQLAlchemyError as exc:  # the refusal stands even when the log cannot be written
        log.error("could not write the audit event for a refusal (%s)", type(exc).__name__)


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)


# --- guarded entry points --------------------------------------------------------------------------------

#: Seconds within which an identical "view" event is not written again (Streamlit reruns pages often).
VIEW_DEDUPE_SECONDS = 300.0


def _unit_hospital(result: IndicatorResult, unit: str) -> str | None:
    table = result.table
    if "hospital" in table and "unit" in table:
        match = table.loc[table["unit"] == unit, "hospital"]
        if len(match) and pd.notna(match.iloc[0]):
            return str(match.iloc[0])
    if result.level == "hospital":
        return unit
    if result.level == "department" and "/" in unit:
        return hospital_of(unit)
    if result.level == "condition_team" and "@" in unit:
        return hospital_of(unit)
    return None


def patient_rows(
    viewer: Viewer,
    result: IndicatorResult,
    indicator: str,
    unit: str,
    *,
    last_days: int = 92,
    engine: Engine | None = None,
) -> pd.DataFrame:
    """indicators.signal_cycles for those allowed to see patient-level rows; AccessDenied (and audited) otherwise.

    The rows are pseudonymised (cycle id, index date, observed, expected); the audit event records the condition,
    unit, indicator and the number of rows shown, never the rows themselves.
    """
    from vbhc.indicators import signal_cycles
    from vbhc.store import get_engine

    engine = engine or get_engine()
    hospital = _unit_hospital(result, unit)
    require(
        viewer,
        Permission.PATIENT_ROWS,
        engine=engine,
        condition=result.condition,
        hospital=hospital,
        unit=unit,
        indicator=indicator,
    )
    rows = signal_cycles(result, indicator, unit, last_days=last_days)
    audit.record(
        engine,
        viewer,
        "view",
        condition=result.condition,
        unit=unit,
        detail={"what": "patient_rows", "indicator": indicator, "level": result.level, "shown": len(rows)},
        dedupe_seconds=VIEW_DEDUPE_SECONDS,
    )
    return rows


def indicator_rows(
    viewer: Viewer,
    table: pd.DataFrame,
    *,
    units: pd.DataFrame | None = None,
    others: str = "anonymise",
    engine: Engine | None = None,
    record_view: bool = True,
    withheld: np.ndarray | None = None,
    thin: Collection[str] = (),
) -> pd.DataFrame:
    """The rows of one condition's indicator table that the viewer may see.

    Quality and the condition's care teams get the whole table (a care team limited to some hospitals with
    other hospitals' small cells withheld, column `suppressed`). A manager gets the rows of their own units
    (target and limits included, so the benchmark line can be drawn) and, with others="anonymise", the other
    units' rows as _anonymised makes them ("other unit k" numbered per indicator by value, `n_band`, rounded
    values, nothing exact); with others="hide" those rows are dropped. With fewer than MIN_OTHER_UNITS other
    units in the table, or from fewer hospitals, the manager gets the own rows only, without benchmark
    (`benchmark_withheld`); and so per indicator where fewer other units (or hospitals) are counted (n > 0), and
    for the indicators in `thin` (registry_indicators_withheld: so in some period of the grid; the pages pass
    it, so all dates minus the other years gives no withheld year back): a PROM or treatment only one other
    hospital records left its exact events and n as the pooled benchmark minus the manager's own.
    `units` (vbhc.registry.units()) is needed to match divisions; it is read from the database when a
    manager's scope names divisions and it is not given. `withheld`: the table's rows to withhold for a care team
    limited to some hospitals, from period_masks over every period of the grid (the pages pass it, so no period
    can be differenced against another); without it the table is protected on its own.
    A viewer who may not see the condition gets AccessDenied (audited).
    """
    from vbhc.store import get_engine

    if others not in ("anonymise", "hide"):
        raise ValueError("others must be 'anonymise' or 'hide'")
    engine = engine or get_engine()
    conditions = sorted(set(table["condition"].dropna().astype(str))) if "condition" in table else []
    if len(conditions) > 1:
        raise ValueError("indicator_rows takes one condition's table at a time")
    if not conditions:
        return table.iloc[0:0].copy()
    condition = conditions[0]
    level = str(table["unit_level"].iloc[0]) if "unit_level" in table and len(table) else "hospital"
    require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=condition, level=level)
    if sees_all_units(viewer, condition):
        out = table.copy()
        out["anonymised"] = False
        limited = _limited_care_hospitals(viewer, condition)
        if limited is not None:  # a care team limited to some hospitals: other hospitals' small cells withheld
            from vbhc.reports.privacy import SuppressionRule, suppress_table

            out = suppress_table(
                out,
                SuppressionRule.from_settings(),
                own_hospitals=sorted(limited),
                include_own=False,
                mask=withheld if withheld is not None and len(withheld) == len(out) else None,
            )
    else:
        divisions = _divisions(viewer, units, engine)
        own = _own_rows(viewer, condition, level, table, divisions)
        mine = table[own].copy()
        mine["anonymised"] = False
        rest = table[~own].copy()
        if _too_few(rest["unit"].astype(str) if "unit" in rest else range(len(rest))):
            # too few others: the benchmark (computed on own and other units) would give a lone other unit back
            mine = _without_benchmark(mine)
            out = mine
        else:
            few = set(map(str, thin)) | _thin_in(table, own)
            if few and "indicator" in table:
                # an indicator counted in too few other units: its benchmark minus the own rows is theirs
                alone = mine["indicator"].astype(str).isin(few).to_numpy()
                mine = pd.concat([mine[~alone], _without_benchmark(mine[alone])]).loc[mine.index]
                mine["benchmark_withheld"] = mine["benchmark_withheld"].fillna(False).astype(bool)
                rest = rest[~rest["indicator"].astype(str).isin(few)]
            out = mine if others == "hide" else pd.concat([mine, _anonymised(rest)], ignore_index=True)
    out = out.reset_index(drop=True)
    if withheld is not None and len(withheld) == len(table):
        # withheld over the grid of periods and levels: what judges a target on it may trust it (grid_masked)
        out.attrs[GRID_MASKED] = viewer.cache_key
    if record_view:
        record_indicator_view(viewer, out, condition=condition, level=level, engine=engine)
    return out


def _own_rows(
    viewer: Viewer, condition: str, level: str, table: pd.DataFrame, divisions: dict[tuple[str, str], str]
) -> np.ndarray:
    """Per row of an indicator table whether it is of a unit in the viewer's (a manager's) scope."""
    if table.empty:
        return np.zeros(0, bool)
    return (
        table.apply(lambda row: _row_visible(viewer, condition, level, row, divisions), axis=1).astype(bool).to_numpy()
    )


def _too_few(units: Iterable[str]) -> bool:
    """Whether `units` (other units' labels, repeats allowed) are fewer than MIN_OTHER_UNITS or of fewer hospitals:
    five departments of one hospital are one hospital."""
    labels = set(map(str, units))
    return len(labels) < MIN_OTHER_UNITS or len({hospital_of(u) for u in labels}) < MIN_OTHER_UNITS


def _thin_in(table: pd.DataFrame, own: np.ndarray) -> set[str]:
    """The indicators of `table` whose other units (rows not `own`) with care cycles counted (n > 0) are some but
    too few (_too_few): the pooled benchmark is the own rows and theirs, so it gives their figures back."""
    if "indicator" not in table or "unit" not in table or "n" not in table:
        return set()
    counted = table[~np.asarray(own, bool) & (pd.to_numeric(table["n"], errors="coerce").fillna(0) > 0).to_numpy()]
    # none counted is no one's figure (a year before a 12-month PROM is due): the benchmark is the own rows'
    found = counted.groupby(counted["indicator"].astype(str))["unit"].agg(lambda u: _too_few(u.astype(str)))
    return {str(i) for i, few in found.items() if few}


def registry_indicators_withheld(
    viewer: Viewer,
    condition: str,
    level: str,
    registry_tables: Iterable[pd.DataFrame],
    units: pd.DataFrame | None = None,
    engine: Engine | None = None,
) -> frozenset[str]:
    """The indicators whose benchmark a manager's views show in no period (indicator_rows' `thin`): those counted
    (n > 0) in some but fewer than MIN_OTHER_UNITS other units, or of fewer hospitals, in some table of
    `registry_tables` (the registry's tables of every period of the grid: all dates and each year). Shown in all
    dates and every year but one, the benchmark of that year was all dates minus the others, so that year's lone
    other hospital's events and n. None counted is no one's figure (a year before a 12-month PROM is due). Empty
    for a viewer who sees every unit; a viewer who may not see the condition gets nothing."""
    if sees_all_units(viewer, condition) or not may_view_condition(viewer, condition):
        return frozenset()
    withheld: set[str] = set()
    divisions: dict[tuple[str, str], str] | None = None
    for table in registry_tables:
        if table is None or not len(table) or "indicator" not in table:
            continue
        if divisions is None:
            from vbhc.store import get_engine

            divisions = _divisions(viewer, units, engine or get_engine())
        withheld |= _thin_in(table, _own_rows(viewer, condition, level, table, divisions))
    return frozenset(withheld)


#: indicator_rows' mark (DataFrame.attrs) on a table withheld with period_masks over the grid, for that viewer.
GRID_MASKED = "vbhc_grid_masked"


def grid_masked(viewer: Viewer, table: pd.DataFrame) -> bool:
    """Whether `table` is indicator_rows' answer for this viewer with the grid's masks (the pages' result_for):
    its `suppressed` cells are the pages' and its other cells may be judged (a target met or not). A table
    withheld on its own is not: all dates minus the years gave a cell it shows back."""
    return table.attrs.get(GRID_MASKED) == viewer.cache_key


def withholds_across_periods(viewer: Viewer, condition: str) -> bool:
    """Whether the viewer's pages withhold exact cells of other units that another period could give back (see
    period_masks): a care team limited to some hospitals."""
    return sees_all_units(viewer, condition) and _limited_care_hospitals(viewer, condition) is not None


def period_masks(
    viewer: Viewer, condition: str, grid: Mapping[str, pd.DataFrame], hospital_grid: Any = None
) -> dict[str, np.ndarray] | None:
    """The rows to withhold in each period's table of `grid` (all dates "" and every whole year of one
    condition, level and comparison group) for a viewer who gets small cells withheld on the pages: a care team
    limited to some hospitals (vbhc.reports.privacy.grid_suppression_masks, the other hospitals' small cells).
    None for every other viewer: quality and a care team without a hospital limit see every cell, and a manager
    sees other units without an exact count in any period (n in bands), so no period can be differenced.
    A grid of departments or condition teams needs `hospital_grid` (period_grid_masks of the same condition's
    hospital grid): see period_grid_masks."""
    got = period_grid_masks(viewer, condition, grid, hospital_grid)
    return None if got is None else got.masks


def period_grid_masks(
    viewer: Viewer, condition: str, grid: Mapping[str, pd.DataFrame], hospital_grid: Any = None
):  # -> GridMasks | None
    """period_masks with the PROM response and cost frames of every period where `grid` derives them (a
    vbhc.reports.privacy.PeriodGrid), withheld jointly with the indicator tables (joint_grid_masks: a count
    withheld in one is withheld where another shows it). None for viewers who see every cell or none exactly.
    `hospital_grid`: for a grid of departments or condition teams, this function's answer for the same
    condition's hospital grid; the grid is then withheld as the hospital level withholds
    (vbhc.reports.privacy.masks_from_hospitals), so one level cannot be differenced against the other. Without
    it such a grid is refused (ValueError): withheld on its own, a department's cell was its hospital's total
    minus its other departments (the hospital level shows the total)."""
    if not withholds_across_periods(viewer, condition):
        return None
    if hospital_grid is None and _grid_level(grid) != "hospital":
        raise ValueError("a department or condition-team grid is withheld as its hospital grid is: pass hospital_grid")
    limited = _limited_care_hospitals(viewer, condition) or frozenset()
    from vbhc.catalog import default_catalog
    from vbhc.reports.privacy import SuppressionRule, joint_frames, masks_from_hospitals, page_grid_masks

    if hospital_grid is not None:
        rule = SuppressionRule.from_settings()
        return masks_from_hospitals(hospital_grid, dict(grid), joint_frames(grid, list(grid)), rule, sorted(limited))

    try:
        catalog_condition = default_catalog().condition(condition)
    except KeyError:
        catalog_condition = None
    return page_grid_masks(
        grid, SuppressionRule.from_settings(), condition=catalog_condition, own_hospitals=sorted(limited)
    )


def _grid_level(grid: Mapping[str, pd.DataFrame]) -> str:
    """The unit level of a grid's tables (their `unit_level`, else read from the unit labels), "hospital" when
    none says otherwise."""
    for table in grid.values():
        if table is None or not len(table):
            continue
        if "unit_level" in table:
            return str(table["unit_level"].iloc[0])
        from vbhc.registry import condition_of, unit_parts

        for unit in table["unit"].astype(str) if "unit" in table else ():
            if condition_of(unit) is not None:
                return "condition_team"
            if unit_parts(unit)[1] is not None:
                return "department"
    return "hospital"


def record_indicator_view(
    viewer: Viewer, rows: pd.DataFrame, *, condition: str, level: str, engine: Engine | None = None
) -> None:
    """Audit that the viewer saw `rows` (what indicator_rows gave them): the condition, level and the units seen
    by name (anonymised ones are not named). Identical views within VIEW_DEDUPE_SECONDS are written once. Kept
    apart from indicator_rows so a page that reuses the rows it filtered before still records every visit."""
    from vbhc.store import get_engine

    shown = sorted(set(rows.loc[~rows["anonymised"], "unit"].astype(str))) if "unit" in rows else []
    audit.record(
        engine or get_engine(),
        viewer,
        "view",
        condition=condition,
        unit=shown[0] if len(shown) == 1 else None,
        detail={"what": "indicators", "level": level, "units": shown[:50], "unit_count": len(shown)},
        dedupe_seconds=VIEW_DEDUPE_SECONDS,
    )


def limited_care_hospitals(viewer: Viewer, condition: str) -> frozenset[str] | None:
    """The hospitals of a care team limited to some hospitals, whose cells its pages never withhold (None: the
    viewer sees every small number or none exactly): see _limited_care_hospitals."""
    return _limited_care_hospitals(viewer, condition)


def _limited_care_hospitals(viewer: Viewer, condition: str) -> frozenset[str] | None:
    """The hospitals of a care team limited to some hospitals (None when the viewer may see every unit's
    patient-level rows, and so every small number: quality, a care team without a hospital limit)."""
    if viewer.has(Role.QUALITY):
        return None
    scopes = [s for s in viewer.scopes_for(Role.CARE_TEAM) if s.covers_condition(condition)]
    if not scopes or any(not s.hospitals for s in scopes):
        return None
    return frozenset().union(*(s.hospitals for s in scopes))


#: Columns of an own row computed from every unit's care cycles besides the benchmark itself: the case-mix
#: model's expected value (with no case-mix, expected / n is the pooled rate), O/E and the adjusted value (O/E
#: times the registry's rate), the shrunken value and ranks (a unit shrunk to the mean), the spread between units,
#: the units ranked and the model's fit and excluded cycles (the other units' missing values). Withheld with the
#: benchmark: a manager of H01 beside one other counted hospital read its rate from any of them.
REGISTRY_DERIVED_COLUMNS = (
    "expected",
    "oe",
    "oe_lower",
    "oe_upper",
    "adjusted_value",
    "adjusted_lower",
    "adjusted_upper",
    "detectable_difference",
    "phi",
    "tau2",
    "rankability",
    "rankability_note",
    "shrunken_value",
    "shrunken_lower",
    "shrunken_upper",
    "shrinkage_tau2",
    "shrinkage_rankability",
    "expected_rank",
    "expected_rank_lower",
    "expected_rank_upper",
    "ranked_units",
)


def _without_benchmark(rows: pd.DataFrame) -> pd.DataFrame:
    """Own rows without the benchmark and everything else computed from the other units (REGISTRY_DERIVED_COLUMNS,
    the case-mix model's figures): what is left is the own units' count, events and crude value."""
    out = rows.copy()
    derived = {"target", *REGISTRY_DERIVED_COLUMNS}
    for col in [c for c in out.columns if c in derived or str(c).startswith((*_BENCHMARK_PREFIXES, "model_"))]:
        if pd.api.types.is_numeric_dtype(out[col]) and not pd.api.types.is_bool_dtype(out[col]):
            out[col] = np.nan
        else:
            out[col] = None
    out[BENCHMARK_WITHHELD] = True
    return out


def _round_sig(values: pd.Series, significant: np.ndarray) -> pd.Series:
    """Rounded to `significant` digits: enough to read a rate or mean, too coarse to solve a count back."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        magnitude = np.where(np.isfinite(x) & (x != 0), np.floor(np.log10(np.abs(x))), 0)
        digits = (significant - 1 - magnitude).astype(int)
    return pd.Series(
        [round(v, int(d)) if np.isfinite(v) else np.nan for v, d in zip(x, digits, strict=True)], index=values.index
    )


def _anonymised(rest: pd.DataFrame) -> pd.DataFrame:
    """Other units for a manager: no name, numbered per indicator by value (a number never refers to the same
    unit in two indicators), n in bands, values rounded, nothing that gives n or the events back, and units
    below the small-number threshold withheld."""
    from vbhc.disclosure import n_band
    from vbhc.settings import suppress_below

    threshold = suppress_below()
    rest = rest.copy()
    if "hospital" in rest:
        rest["hospital"] = ""
    rest["anonymised"] = True
    n = pd.to_numeric(rest["n"], errors="coerce") if "n" in rest else pd.Series(np.nan, index=rest.index)
    rest["n_band"] = [n_band(v, threshold) for v in n]
    small = (n.fillna(0) < threshold).to_numpy() if threshold > 0 else np.zeros(len(rest), bool)
    for col in [c for c in rest.columns if c in EXACT_COLUMNS or str(c).startswith(_LIMIT_PREFIXES)]:
        rest[col] = np.nan if pd.api.types.is_numeric_dtype(rest[col]) else None
    for col in [c for c in ROUNDED_COLUMNS if c in rest]:
        plain = (rest["kind"] == "response_rate").to_numpy() if "kind" in rest else np.zeros(len(rest), bool)
        rest[col] = _round_sig(rest[col], np.where(plain, 2, 3))
        rest.loc[small, col] = np.nan
    for col in [c for c in WHOLE_COLUMNS if c in rest]:
        rest[col] = pd.to_numeric(rest[col], errors="coerce").round(0)
        rest.loc[small, col] = np.nan
    for col in [c for c in rest.columns if str(c).startswith(("position_", "assessment_"))]:
        rest[col] = rest[col].astype(object)
        rest.loc[small, col] = None
    rest["suppressed"] = small
    value = next((c for c in ("adjusted_value", "crude_value") if c in rest), None)
    sort_by = [c for c in ("indicator", value) if c is not None and c in rest]
    rest = rest.sort_values(sort_by, kind="mergesort", na_position="last") if sort_by else rest
    number = rest.groupby("indicator").cumcount() + 1 if "indicator" in rest else range(1, len(rest) + 1)
    rest["unit"] = [f"{OTHER_UNIT} {i}" for i in number]
    return rest


def comparison_group(
    viewer: Viewer,
    condition: str,
    level: str,
    peers: Sequence[str],
    teams: pd.DataFrame,
    units: pd.DataFrame | None,
    published: Sequence[PublishedGroup] | None = None,
) -> tuple[tuple[str, ...], bool]:
    """The comparison group (hospitals) to compute a view on, and whether the chosen one was refused: GroupChoice's
    `resolved` for these values (its docstring says the rule)."""
    return GroupChoice.of(viewer, condition, level, peers, teams, units, published).resolved()


#: comparison_group_refusal's reasons, each a message key of the sidebar's warning (vbhc/i18n).
GROUP_WITHHELD, GROUP_TOO_SMALL, GROUP_COMPLEMENT, GROUP_NOT_PUBLISHED = (
    "comparison.not_with_withheld",
    "comparison.too_small",
    "comparison.complement_too_small",
    "comparison.not_published",
)


def comparison_group_refusal(
    viewer: Viewer,
    condition: str,
    level: str,
    peers: Sequence[str],
    teams: pd.DataFrame,
    units: pd.DataFrame | None,
    published: Sequence[PublishedGroup] | None = None,
) -> str | None:
    """Why comparison_group refuses `peers` for the viewer (a message key: GROUP_WITHHELD, GROUP_TOO_SMALL,
    GROUP_COMPLEMENT, GROUP_NOT_PUBLISHED), or None when the group is kept: GroupChoice's `refusal` for these
    values (its docstring says the rules)."""
    return GroupChoice.of(viewer, condition, level, peers, teams, units, published).refusal()


@dataclass(frozen=True, eq=False)
class GroupChoice:
    """A viewer's chosen comparison group with what deciding on it reads, as one value: the viewer, the condition,
    the unit level, the chosen hospitals (`peers`, sorted and without repeats), `teams` (vbhc.registry.
    condition_units(condition), or condition_unit_years), `units` (vbhc.registry.units(), for divisions) and the
    published groups (`published`: load_comparison_groups() when None). comparison_group and
    comparison_group_refusal took these seven one by one, and every caller passed the same seven to both; a page
    builds the value once and asks it both questions. Compared by identity (it holds tables)."""

    viewer: Viewer
    condition: str
    level: str
    peers: tuple[str, ...]
    teams: pd.DataFrame
    units: pd.DataFrame | None
    published: tuple[PublishedGroup, ...] | None = None

    @classmethod
    def of(
        cls,
        viewer: Viewer,
        condition: str,
        level: str,
        peers: Iterable[str],
        teams: pd.DataFrame,
        units: pd.DataFrame | None,
        published: Iterable[PublishedGroup] | None = None,
    ) -> GroupChoice:
        """The value for a chosen group in any order, with repeats (a multiselect's, a link's)."""
        chosen = tuple(sorted(set(peers)))
        return cls(viewer, condition, level, chosen, teams, units, None if published is None else tuple(published))

    def resolved(self) -> tuple[tuple[str, ...], bool]:
        """The comparison group (hospitals) to compute a view on, and whether the chosen one was refused.

        A manager's chosen group must hold at least MIN_OTHER_UNITS units at `level` outside the manager's scope,
        from at least MIN_OTHER_UNITS hospitals, else one other unit or hospital could be singled out (its figures
        are the benchmark minus the manager's own: one other hospital's five departments made five units, and the
        group's benchmark was that hospital's own figure); and so must the group's complement, the units outside it
        (refusal), and it must be one of the published groups offered to the manager (offered_groups), returned
        with every hospital of the manager's own units; then the whole registry is the comparison group, as for a
        viewer whose pages withhold other hospitals' small cells (withholds_across_periods). Viewers who see every
        unit keep their choice."""
        viewer, condition, level, chosen = self.viewer, self.condition, self.level, self.peers
        if self.refusal() is not None:
            return (), True
        if chosen and not sees_all_units(viewer, condition):
            # a manager's published group with every hospital of the manager's own units: the same view whichever
            # own unit is in focus (the pages add the focus unit's hospital), as offered_groups checked it
            own = _own_hospitals(viewer, condition, level, self.teams, self.units)
            return tuple(sorted(set(chosen) | own)), False
        return chosen, False

    def refusal(self) -> str | None:
        """Why resolved refuses the chosen group for the viewer (a message key: GROUP_WITHHELD, GROUP_TOO_SMALL,
        GROUP_COMPLEMENT, GROUP_NOT_PUBLISHED), or None when the group is kept.

        Not published (GROUP_NOT_PUBLISHED): a manager's group must be one of offered_groups, whatever own
        hospitals it holds besides. Two groups a manager chose freely differed by one hospital (H01-H06 and H01-H07
        of thirteen hospitals, each with five or more other hospitals inside and outside it): the difference of
        their exact benchmarks was H07's figures by name.

        The complement (GROUP_COMPLEMENT): a manager sees the group's benchmark exactly (the pooled rate, a
        fraction whose denominator is the group's n), and the registry's. The registry's minus the group's is the
        units outside the group, so those must pass the rule a group passes (MIN_OTHER_UNITS units from
        MIN_OTHER_UNITS hospitals), as the PROM histogram's comparison panel
        (vbhc.disclosure.comparison_group_withheld): on the 2,000-cycle demo a manager of H01 read colorectal
        12-month EQ-5D improvement of 17/53 in H01-H06 and 19/61 in H01-H07, so H07's 2 of 8 patients (a cell below
        the threshold, by name); a group of every hospital but one gave that one's cells."""
        viewer, condition, level, chosen = self.viewer, self.condition, self.level, self.peers
        teams, units = self.teams, self.units
        if chosen and withholds_across_periods(viewer, condition):
            # a viewer with other hospitals' cells withheld (a care team limited to some hospitals): a group's own
            # secondary cells differ from the registry's, so two group views (or a group and the registry) gave a
            # withheld cell back, and a group of the own hospital and one other was that one's cells (its total
            # minus the own cells); such a viewer compares with the whole registry
            return GROUP_WITHHELD
        if not chosen or sees_all_units(viewer, condition):
            return None
        inside = teams["hospital"].astype(str).isin(chosen)
        if _too_few_others(viewer, condition, level, teams[inside], units):
            return GROUP_TOO_SMALL
        outside = teams[~inside]
        if len(outside) and _too_few_others(viewer, condition, level, outside, units, empty_passes=True):
            return GROUP_COMPLEMENT
        if not len(outside):
            return None  # every hospital: the registry itself
        offered = offered_groups(viewer, condition, level, teams, units, self.published)
        own = _own_hospitals(viewer, condition, level, teams, units)
        with_own = teams["hospital"].astype(str).isin(set(chosen) | own)
        inside_others = set(_other_units(viewer, condition, level, teams[with_own], units))
        if not any(set(_members(viewer, condition, level, teams, units, g)) == inside_others for g in offered):
            return GROUP_NOT_PUBLISHED
        return None


def _too_few_others(
    viewer: Viewer,
    condition: str,
    level: str,
    part: pd.DataFrame,
    units: pd.DataFrame | None,
    *,
    empty_passes: bool = False,
) -> bool:
    """Whether the units at `level` of `part` (rows of condition_units) outside the viewer's scope are fewer than
    MIN_OTHER_UNITS or from fewer than MIN_OTHER_UNITS hospitals (`empty_passes`: none at all is no one's)."""
    others = _other_units(viewer, condition, level, part, units)
    if empty_passes and not others:
        return False
    return len(others) < MIN_OTHER_UNITS or len({hospital_of(u) for u in others}) < MIN_OTHER_UNITS


def _other_units(
    viewer: Viewer, condition: str, level: str, part: pd.DataFrame, units: pd.DataFrame | None
) -> list[str]:
    """The units at `level` of `part` (rows of condition_units) outside the viewer's scope."""
    labels = _level_units(condition, level, part)
    visible = _in_scope(viewer, condition, level, labels, units)
    return [u for u in labels if u not in visible]


def _level_units(condition: str, level: str, part: pd.DataFrame) -> list[str]:
    """The unit labels at `level` of `part` (rows of condition_units)."""
    hospitals, departments = part["hospital"].astype(str), part["department"].astype(str)
    if level == "department":
        return sorted(set(hospitals + "/" + departments))
    if level == "condition_team":
        return sorted({f"{condition}@{h}" for h in hospitals})
    return sorted(set(hospitals))


def _in_scope(
    viewer: Viewer, condition: str, level: str, labels: Iterable[str], units: pd.DataFrame | None
) -> set[str]:
    """The unit labels in the viewer's scope (divisions matched through `units`)."""
    divisions = (
        {
            (str(h), str(d)): str(v)
            for h, d, v in zip(units["hospital"], units["department"], units["division"].fillna(""), strict=True)
        }
        if units is not None and "division" in units
        else {}
    )
    return {
        u for u in labels if _row_visible(viewer, condition, level, pd.Series({"unit": u, "hospital": ""}), divisions)
    }


def comparison_groups_offered(
    viewer: Viewer,
    condition: str,
    level: str,
    teams: pd.DataFrame,
    units: pd.DataFrame | None,
    published: Sequence[PublishedGroup] | None = None,
) -> bool:
    """Whether any comparison group but the whole registry can pass comparison_group_refusal for the viewer, so
    that the pages offer the choice at all. A viewer who sees every unit chooses freely; a viewer whose pages
    withhold other hospitals' cells never chooses (GROUP_WITHHELD); a manager picks among the published groups
    offered_groups keeps (`published`: load_comparison_groups() when None), none on a registry with fewer than
    twice MIN_OTHER_UNITS other hospitals (the demo's ten hospitals, one the manager's own)."""
    if withholds_across_periods(viewer, condition):
        return False
    if sees_all_units(viewer, condition):
        return True
    return bool(offered_groups(viewer, condition, level, teams, units, published))


@dataclass(frozen=True)
class PublishedGroup:
    """One comparison group of the published set (config/comparison_groups.toml): a name every viewer reads the
    same way, and its hospitals."""

    name: str
    hospitals: frozenset[str]


_GROUP_KEYS = {"name", "hospitals", "note"}


def load_comparison_groups(path: Path | str | None = None) -> tuple[PublishedGroup, ...]:
    """The published comparison groups in the file's order (default settings.comparison_groups_file(); no file:
    none). A manager picks among these only (offered_groups), never a free set of hospitals: two free sets that
    differed by one hospital gave that hospital's figures as the difference of their benchmarks. A mistake
    raises AccessConfigError naming the file, the group's number, the key and the value."""
    from vbhc.settings import comparison_groups_file

    path = Path(path) if path is not None else comparison_groups_file()
    if not path.is_file():
        return ()
    data = _read_toml(path)
    unknown = sorted(set(data) - {"group"})
    if unknown:
        raise AccessConfigError(f"{path}: unknown top-level key {unknown[0]!r}; only [[group]] tables are allowed")
    raw = data.get("group", [])
    if not isinstance(raw, list) or not all(isinstance(g, dict) for g in raw):
        raise AccessConfigError(f"{path}: 'group' must be a list of tables, written [[group]]")
    groups: list[PublishedGroup] = []
    for number, item in enumerate(raw, start=1):

        def fail(key: str, value: object, message: str, number: int = number) -> AccessConfigError:
            return AccessConfigError(f"{path}: group {number}, key {key!r}, value {value!r}: {message}")

        for key in item:
            if key not in _GROUP_KEYS:
                raise fail(key, item[key], f"unknown key (allowed: {', '.join(sorted(_GROUP_KEYS))})")
        name, hospitals = item.get("name"), item.get("hospitals")
        if not isinstance(name, str) or not name.strip():
            raise fail("name", name, "must be a non-empty text")
        if any(g.name == name.strip() for g in groups):
            raise fail("name", name, "another group has this name")
        if (
            not isinstance(hospitals, list)
            or not hospitals
            or not all(isinstance(h, str) and h.strip() for h in hospitals)
        ):
            raise fail("hospitals", hospitals, "must be a non-empty list of hospital codes")
        groups.append(PublishedGroup(name.strip(), frozenset(h.strip() for h in hospitals)))
    return tuple(groups)


def published_groups_problem(viewer: Viewer, error: str | None, lang: str) -> str | None:
    """What the sidebar says when the published groups' file cannot be read (`error`: load_comparison_groups'
    one-line mistake; None: nothing to say), through config_problem: the quality directorate and the
    administrator, who maintain the file, read the mistake; everyone else is told that no group can be chosen and
    who sees why. A manager or a care team was shown the mistake, and so the members of a group never offered to
    them."""
    if not error:
        return None
    return config_problem(error, lang, "comparison.groups_unreadable", viewer)


def config_problem(error: str, lang: str, unreadable: str, viewer: Viewer | None = None) -> str:
    """What a page says about a configuration file with a mistake (`error`: its loader's one line, naming the
    file's path on the server and the value written: a person's e-mail address, a group's name or members). The
    server's log always gets the line. The page shows it only to a `viewer` who keeps the file (the quality
    directorate, the administrator); everyone else reads the catalog's `unreadable` text in `lang`, which says
    what does not work and whom to tell. `viewer` None: nobody is known to keep it, as when the roles mapping
    itself is wrong and so no one has a role. The policy of vbhc.settings.SettingError: a page names what is
    wrong, the log the value. The command line prints the error itself (the operator runs it)."""
    log.error("%s", error)
    if viewer is not None and (viewer.has(Role.QUALITY) or may_manage_access(viewer)):
        return error
    from vbhc.i18n import t

    return t(unreadable, lang)


def offered_groups(
    viewer: Viewer,
    condition: str,
    level: str,
    teams: pd.DataFrame,
    units: pd.DataFrame | None,
    published: Sequence[PublishedGroup] | None = None,
) -> tuple[PublishedGroup, ...]:
    """The published groups (`published`: load_comparison_groups() when None) the viewer may pick for this
    condition and level. None for a viewer whose pages withhold other hospitals' cells (GROUP_WITHHELD); every
    one for a viewer who sees every unit.

    A manager sees each offered group's benchmark and the registry's exactly, in every period; any sum or
    difference of those views is a sum over "atoms", the other units with the same membership in every offered
    group (the manager's own hospitals count as members of every group: the pages add them). So every atom must
    hold MIN_OTHER_UNITS units from MIN_OTHER_UNITS hospitals, as a group must: the groups are taken in the file's
    order and one that would leave a smaller atom is not offered. Two groups that differ by one hospital, a group
    and the registry with one hospital outside it, or three groups whose sums single out a hospital all leave an
    atom of one hospital."""
    if withholds_across_periods(viewer, condition) or not may_view_condition(viewer, condition):
        return ()
    published = load_comparison_groups() if published is None else tuple(published)
    if sees_all_units(viewer, condition):
        return published
    # the other units over all dates and, where `teams` has a `year` column (vbhc.registry.condition_unit_years),
    # those with care cycles in each year: the pages show every year too, and an atom of five hospitals of which
    # one treated patients in a year was that hospital's year
    periods = [_other_units(viewer, condition, level, teams, units)]
    if "year" in teams:
        years = teams["year"].dropna()
        periods += [
            _other_units(viewer, condition, level, teams[teams["year"] == y], units) for y in sorted(set(years))
        ]
    kept: list[PublishedGroup] = []
    members: list[set[str]] = []
    for group in published:
        inside = set(_members(viewer, condition, level, teams, units, group))
        if not inside:
            continue  # only own units: nothing to compare with
        if all(_atoms_hold(others, [*members, inside]) for others in periods):
            kept.append(group)
            members.append(inside)
    return tuple(kept)


def group_indicators_withheld(
    viewer: Viewer,
    condition: str,
    level: str,
    teams: pd.DataFrame,
    units: pd.DataFrame | None,
    registry_tables: Iterable[pd.DataFrame],
    published: Sequence[PublishedGroup] | None = None,
) -> frozenset[str]:
    """The indicators whose benchmark no group view of the viewer may show (the registry's instead): those where
    an atom of the offered groups (offered_groups) holds fewer than MIN_OTHER_UNITS units, or units of fewer
    hospitals, with care cycles counted (n > 0) in some period. `registry_tables`: the registry's indicator tables
    (every unit, no group) of every period of the grid (all dates and each year), so all dates minus the other
    years gives no withheld year back. The atoms hold over the units treating the condition, but an indicator of
    a few units (PROMs only some hospitals collect, a treatment only some give) left one hospital with a count in
    an atom of five: the registry's benchmark minus a group's was that hospital's. Empty for a viewer who sees every
    unit or picks no group."""
    if sees_all_units(viewer, condition) or withholds_across_periods(viewer, condition):
        return frozenset()
    offered = offered_groups(viewer, condition, level, teams, units, published)
    if not offered:
        return frozenset()
    members = [set(_members(viewer, condition, level, teams, units, g)) for g in offered]
    withheld: set[str] = set()
    for table in registry_tables:
        if table is None or not len(table) or "indicator" not in table:
            continue
        counted = table[pd.to_numeric(table["n"], errors="coerce").fillna(0) > 0]
        mine = _in_scope(viewer, condition, level, set(counted["unit"].astype(str)), units)
        for indicator, rows in counted.groupby(counted["indicator"].astype(str)):
            others = sorted(set(rows["unit"].astype(str)) - mine)
            if not _atoms_hold(others, members):
                withheld.add(indicator)
    return frozenset(withheld)


def _atoms_hold(others: Sequence[str], members: Sequence[set[str]]) -> bool:
    """Whether every atom of `others` (units with the same membership in each of `members`) is empty or holds
    MIN_OTHER_UNITS units from MIN_OTHER_UNITS hospitals."""
    atoms: dict[tuple[bool, ...], list[str]] = {}
    for unit in others:
        atoms.setdefault(tuple(unit in m for m in members), []).append(unit)
    return all(
        len(a) >= MIN_OTHER_UNITS and len({hospital_of(u) for u in a}) >= MIN_OTHER_UNITS for a in atoms.values()
    )


def _own_hospitals(
    viewer: Viewer, condition: str, level: str, teams: pd.DataFrame, units: pd.DataFrame | None
) -> set[str]:
    """The hospitals of the viewer's own units at `level` (rows of condition_units)."""
    return {hospital_of(u) for u in _in_scope(viewer, condition, level, _level_units(condition, level, teams), units)}


def _members(
    viewer: Viewer, condition: str, level: str, teams: pd.DataFrame, units: pd.DataFrame | None, group: PublishedGroup
) -> list[str]:
    """The other units (outside the viewer's scope) at `level` in a published group's view: the group's hospitals
    and the hospitals of the viewer's own units (the pages add those to every group)."""
    own = _own_hospitals(viewer, condition, level, teams, units)
    inside = teams["hospital"].astype(str).isin(set(group.hospitals) | own)
    return _other_units(viewer, condition, level, teams[inside], units)


def other_units_shown(viewer: Viewer, condition: str, peers: Sequence[str]) -> str:
    """indicator_rows' `others` for a view of comparison group `peers` (comparison_group's answer): a manager sees
    the other units anonymised in the registry's view only, and in a group's view their own units with the group's
    benchmark ("hide"). Two groups that differ by one hospital listed the same anonymised units but one: the value
    found in one view only was that hospital's, by name (the demo's colorectal 12-month response rate of H06,
    group H01-H06 against H01-H05 + H07)."""
    return "hide" if peers and not sees_all_units(viewer, condition) else "anonymise"


def _divisions(viewer: Viewer, units: pd.DataFrame | None, engine: Engine) -> dict[tuple[str, str], str]:
    if not any(s.divisions for s in viewer.scopes_for(Role.MANAGER)):
        return {}
    if units is None:
        from vbhc.registry import units as read_units

        units = read_units(engine)
    return {
        (str(h), str(d)): str(v)
        for h, d, v in zip(units["hospital"], units["department"], units["division"].fillna(""), strict=True)
    }


def _row_visible(
    viewer: Viewer, condition: str, level: str, row: pd.Series, divisions: dict[tuple[str, str], str]
) -> bool:
    unit = str(row.get("unit", ""))
    hospital = row.get("hospital")
    hospital = str(hospital) if hospital is not None and pd.notna(hospital) else ""
    if level == "department" and "/" in unit:
        h, d = unit_parts(unit)
        return may_see_unit(viewer, condition, h, d, divisions.get((h, d)))
    if level == "hospital":
        hospital = hospital or unit
    elif level == "condition_team" and not hospital and "@" in unit:
        hospital = hospital_of(unit)
    return bool(hospital) and may_see_unit(viewer, condition, hospital)


def guarded_import(
    viewer: Viewer,
    paths: Sequence[Path | str],
    engine: Engine | None = None,
    **kwargs: Any,
) -> ImportReport:
    """ingest.import_files for quality and admin; the viewer is recorded as the batch's importer and audit actor."""
    from vbhc.ingest import import_files
    from vbhc.store import get_engine, upgrade_schema

    engine = engine or get_engine()
    upgrade_schema(engine)
    require(viewer, Permission.IMPORT, engine=engine, what="import_files", file_count=len(paths))
    kwargs.setdefault("imported_by", viewer.user_id)
    kwargs.setdefault("upload", True)  # files from the dashboard: the upload size limit applies
    return import_files(list(paths), engine, actor=viewer, **kwargs)


def export_file(
    viewer: Viewer,
    data: bytes | Callable[[], bytes],
    *,
    what: str,
    file_name: str = "",
    condition: str | None = None,
    unit: str | None = None,
    patient_level: bool = False,
    engine: Engine | None = None,
) -> bytes:
    """Check the export is allowed, build it (when given a callable) and record it with the file's sha256.

    Use inside st.download_button(data=lambda: export_file(...)) so the file is built and audited on click. A
    refusal is recorded as "denied" (require); a file whose building fails is recorded as "export_refused" with
    the error's class before the error goes on, as `vbhc report` records a failed report: a click that gave no
    file left nothing in the log, so the log could not tell a viewer who never asked from one whose file failed.
    """
    from vbhc.store import get_engine

    engine = engine or get_engine()
    require(
        viewer, Permission.EXPORT, engine=engine, condition=condition, unit=unit, what=what, patient_level=patient_level
    )
    try:
        content = data() if callable(data) else data
    except AccessDenied:  # a check inside the build: recorded as denied already
        raise
    except Exception as exc:
        _record_failed_export(
            viewer,
            exc,
            what=what,
            file_name=file_name,
            condition=condition,
            unit=unit,
            patient_level=patient_level,
            engine=engine,
        )
        raise
    audit.record(
        engine,
        viewer,
        "export",
        condition=condition,
        unit=unit,
        detail={"what": what, "file": file_name, "bytes": len(content), "patient_level": patient_level},
        sha256=audit.sha256_of(content),
    )
    return content


def _record_failed_export(
    viewer: Viewer,
    exc: BaseException,
    *,
    what: str,
    file_name: str,
    condition: str | None,
    unit: str | None,
    patient_level: bool,
    engine: Engine,
) -> None:
    """Audit a download whose file could not be built (export_file): the error's class only, never its text (it
    may quote data); a log that cannot be written does not hide the build's own error."""
    detail = {"what": what, "file": file_name, "patient_level": patient_level, "error": type(exc).__name__}
    try:
        audit.record(engine, viewer, "export_refused", condition=condition, unit=unit, detail=detail)
    except SQLAlchemyError as failed:
        log.error("could not write the audit event for a failed export (%s)", type(failed).__name__)


def require_file_export(
    viewer: Viewer,
    condition: str | None,
    *,
    what: str,
    threshold: int | None = None,
    engine: Engine | None = None,
    **context: Any,
) -> None:
    """The check of every file of aggregated figures built for a viewer outside export_file's own call (a report,
    summary figures): the viewer may export the condition (a manager never, a care team its own conditions), and a
    viewer whose pages withhold other hospitals' small cells (a care team limited to some hospitals) gets them
    withheld in the file too: a small-number `threshold` below the registry's (VBHC_SUPPRESS_BELOW) is refused,
    else a threshold of the caller's choosing (0) gave another hospital's cells of three care cycles.
    AccessDenied (audited) otherwise."""
    from vbhc.settings import suppress_below

    require(viewer, Permission.EXPORT, engine=engine, condition=condition, what=what, **context)
    floor = suppress_below()
    conditions = [condition] if condition is not None else []
    if threshold is None or threshold >= floor or viewer.has(Role.QUALITY):
        return
    if all(sees_all_units(viewer, c) and _limited_care_hospitals(viewer, c) is None for c in conditions):
        return
    permission = Permission.EXPORT
    ctx = {"condition": condition, "what": what, "suppress_below": threshold} | context
    reason = (
        f"roles {', '.join(sorted(r.value for r in viewer.roles))}: other hospitals' small numbers are withheld "
        f"for this viewer, so a file keeps the registry's threshold ({floor}), not {threshold}"
    )
    _record_denied(viewer, permission, ctx, engine)
    raise AccessDenied(viewer.user_id, permission, reason, _shown_context(ctx))


def export_table(
    viewer: Viewer,
    frame: pd.DataFrame,
    *,
    what: str,
    file_name: str,
    condition: str | None = None,
    unit: str | None = None,
    patient_level: bool = False,
    index: bool = False,
    engine: Engine | None = None,
) -> bytes:
    """A table as a formula-safe CSV (vbhc.safety.safe_csv), through export_file: checked and audited with its
    sha256. The pages offer this instead of the grid's own CSV download, which is switched off because it is
    neither role-checked, audited nor safe against formulas."""
    return export_file(
        viewer,
        lambda: safe_csv(frame, index=index),
        what=what,
        file_name=file_name,
        condition=condition,
        unit=unit,
        patient_level=patient_level,
        engine=engine,
    )


def read_audit(viewer: Viewer, engine: Engine | None = None, **filters: Any) -> pd.DataFrame:
    """audit.read for the quality directorate (reading the log is itself logged)."""
    from vbhc.store import get_engine

    engine = engine or get_engine()
    require(viewer, Permission.READ_AUDIT, engine=engine, what="audit log")
    df = audit.read(engine, **filters)
    shown = {k: str(v) for k, v in filters.items() if v is not None}
    audit.record(engine, viewer, "view", detail={"what": "audit_log"} | shown, dedupe_seconds=VIEW_DEDUPE_SECONDS)
    return df
