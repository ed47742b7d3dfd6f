"""The condition catalog: what each condition team measures, read from vbhc/data/catalog/*.toml.

The catalog is data, so care teams can change their indicator set without touching code; in exchange every
file is validated strictly here, and a mistake names the file and the key rather than surfacing later as a
wrong number on a dashboard.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from vbhc.settings import catalog_dir

#: Case-mix variables the database stores (one column each on care_cycles) and their types.
#: A catalog may use any subset; a new variable needs a column and an Alembic migration.
STORED_CASEMIX: dict[str, str] = {
    "age": "integer",
    "sex": "category",
    "asa": "integer",
    "charlson": "integer",
    "bmi": "number",
    "stage": "category",
    "nyha": "integer",
    "lvef": "number",
    "smoking": "category",
}

#: Variables the indicator engine adds to a model itself (vbhc.indicators): labelled in casemix.toml too.
DERIVED_CASEMIX: dict[str, str] = {"baseline_score": "number"}

#: Catalog files shared by all conditions (every other *.toml file is one condition).
SHARED_FILES = ("instruments.toml", "cost_activities.toml", "casemix.toml", "prems.toml")

CASEMIX_TYPES = ("integer", "number", "category")
OUTCOME_TYPES = ("binary", "number")
INDICATOR_KINDS = (
    "volume",  # number of care cycles
    "proportion",  # share of cycles with a binary clinical outcome
    "mean",  # mean of a numeric clinical outcome
    "prom_score",  # PROM scale score at a follow-up timepoint
    "prom_change",  # follow-up minus baseline on a PROM scale
    "prom_mic",  # share of responders whose change reaches the minimal important change
    "response_rate",  # share of eligible cycles with a completed questionnaire at a timepoint
    "cost",  # cost per care cycle (TDABC)
    "composite",  # share of cycles where every component went as planned (textbook outcome)
    "survival",  # Kaplan-Meier survival at a horizon from the index date, Cox-adjusted SMR (vbhc.survival)
    "prem_rating",  # PREM: mean 0-10 overall rating of the respondents (vbhc.prems)
    "prem_nps",  # PREM: net promoter score, % promoters (9-10) minus % detractors (0-6) on a 0-10 question
    "prem_topbox",  # PREM: share of a theme's answers in the best category ("always")
)
#: Indicator kinds that describe patient outcomes and therefore carry a Porter tier (1-3).
OUTCOME_KINDS = ("proportion", "mean", "prom_score", "prom_change", "prom_mic", "composite", "survival")
PROM_KINDS = ("prom_score", "prom_change", "prom_mic", "response_rate")
#: Patient-experience kinds: defined per questionnaire in prems.toml, never in a condition file (vbhc.prems).
PREM_KINDS = ("prem_rating", "prem_nps", "prem_topbox")
#: Kinds whose value is the share of care cycles with a yes/no outcome: observed counts events, expected is the
#: expected number of events, and the case-mix model is logistic.
BINARY_KINDS = ("proportion", "prom_mic", "composite", "prem_topbox")
#: Kinds whose value is a mean: observed and expected are means, the case-mix model is linear.
CONTINUOUS_KINDS = ("mean", "prom_score", "prom_change", "cost", "prem_rating", "prem_nps")
#: Kinds followed over time to an event with censoring: observed counts deaths (events) within the horizon,
#: expected is the Cox model's expected number, the value is Kaplan-Meier survival at the horizon.
SURVIVAL_KINDS = ("survival",)
#: Kinds shown as a percentage (the binary ones, PROM response and survival).
PROPORTION_KINDS = (*BINARY_KINDS, "response_rate", *SURVIVAL_KINDS)
#: A survival indicator's outcome is a yes/no outcome whose record carries a date (of the event, or the last
#: date the patient was known to be event-free); the registry's wide table names that date column so.
EVENT_DATE_SUFFIX = "_date"
#: Days in a survival indicator's year (its `years` horizon), the same for the demo's vital status and the charts.
DAYS_PER_YEAR = 365.25
#: Outcomes a cost can be set against on the value page (patient outcomes, not process measures).
VALUE_OUTCOME_KINDS = ("proportion", "prom_score", "prom_change", "prom_mic", "composite")


#: What happens to external figures computed under another definition version than the catalog's (vbhc.external).
OTHER_VERSION_RULES = ("refuse", "warn")


class CatalogError(ValueError):
    """A catalog file is malformed; the message names the file and the key."""


def _pick(lang: str, label_en: str, label_nl: str, fallback: str) -> str:
    """The label in `lang` ("nl" or "en"), else the other language's, else the id: every catalog object's
    label(lang) goes through here, so pages never choose between label_en and label_nl themselves."""
    labels = {"en": label_en, "nl": label_nl}
    if lang not in labels:
        raise ValueError(f"unsupported language {lang!r}; expected nl or en")
    return labels[lang] or next((text for text in labels.values() if text), "") or fallback


@dataclass(frozen=True)
class Item:
    id: str
    min: float
    max: float
    label_en: str = ""
    label_nl: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class Scale:
    id: str
    label_en: str
    label_nl: str
    min: float
    max: float
    higher_is_better: bool
    mic: float
    mic_source: str
    mic_source_nl: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)

    def source(self, lang: str = "en") -> str:
        """Where the minimal important change comes from (the literature reference stays as cited)."""
        return _pick(lang, self.mic_source, self.mic_source_nl, "")


@dataclass(frozen=True)
class Instrument:
    id: str
    label_en: str
    label_nl: str
    scoring: str
    items: tuple[Item, ...]
    scales: tuple[Scale, ...]

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)

    def item(self, item_id: str) -> Item | None:
        return next((i for i in self.items if i.id == item_id), None)

    def scale(self, scale_id: str) -> Scale:
        for s in self.scales:
            if s.id == scale_id:
                return s
        raise KeyError(f"instrument {self.id!r} has no scale {scale_id!r}")


@dataclass(frozen=True)
class CostActivity:
    id: str
    label_en: str
    label_nl: str
    unit: str
    typical_unit_cost_eur: float

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class CodeLabel:
    """The label of one code of a category case-mix variable (sex "F" -> "Female" / "Vrouw")."""

    code: str
    label_en: str = ""
    label_nl: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.code)


@dataclass(frozen=True)
class CaseMixVariable:
    name: str
    type: str
    min: float | None = None
    max: float | None = None
    codes: tuple[str, ...] = ()
    label_en: str = ""
    label_nl: str = ""
    code_labels: tuple[CodeLabel, ...] = ()

    @property
    def id(self) -> str:
        return self.name

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.name)

    def code_label(self, code: object, lang: str = "en") -> str:
        """A code as the reader sees it (sex "M" -> "Man"); a code without a label (stage "III") as it is."""
        text = str(code)
        found = next((c for c in self.code_labels if c.code == text), None)
        return found.label(lang) if found else _pick(lang, "", "", text)


@dataclass(frozen=True)
class Outcome:
    id: str
    type: str
    label_en: str
    label_nl: str
    min: float | None = None
    max: float | None = None
    unit: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


#: Days before its care cycle's index date a baseline questionnaire (a timepoint with days = 0) may be completed,
#: unless the condition's timepoint sets `before_days`. A baseline describes the patient as the care cycle begins;
#: the intake questionnaire is sent with the referral or the pre-operative visit, weeks to months before the
#: index date (the demo's up to 30 days; a waiting list for a joint replacement runs to months). One dated more
#: than a year before belongs to an earlier episode or carries a wrong date, and would be counted as this care
#: cycle's starting point (its PROM change).
BASELINE_WINDOW_DAYS = 365


@dataclass(frozen=True)
class Timepoint:
    id: str
    days: int
    label_en: str = ""
    label_nl: str = ""
    #: A baseline's window: completed at most this many days before the index date (0 for a follow-up, which
    #: may not precede the index date at all); None: BASELINE_WINDOW_DAYS for a baseline
    before_days: int | None = None

    def __post_init__(self) -> None:
        if self.before_days is None:
            object.__setattr__(self, "before_days", BASELINE_WINDOW_DAYS if self.days == 0 else 0)

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class Treatment:
    id: str
    label_en: str = ""
    label_nl: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class PromUse:
    instrument: str
    timepoints: tuple[str, ...]


@dataclass(frozen=True)
class Component:
    """One part of a composite (textbook outcome) indicator: an outcome of the condition and when it fails.

    A yes/no outcome fails when it equals `fails_if` (1 for an event such as death, 0 for a wanted result
    such as a radical resection); a numeric outcome fails above `fails_above` (a prolonged stay).
    """

    outcome: str
    fails_if: int | None = None
    fails_above: float | None = None

    @property
    def id(self) -> str:
        return self.outcome


@dataclass(frozen=True)
class Indicator:
    id: str
    label_en: str
    label_nl: str
    kind: str
    direction: str  # "higher" or "lower" is better
    min_n: int
    tier: int | None = None  # Porter tier 1-3 for outcome indicators, None for volume/process/cost
    outcome: str | None = None
    instrument: str | None = None
    scale: str | None = None
    timepoint: str | None = None
    key: bool = False
    components: tuple[Component, ...] = ()  # composite indicators only
    years: float | None = None  # survival indicators only: the horizon (years from the index date)
    # the definition's version: figures computed under another version are not silently compared
    # (vbhc.external); other_version says whether such figures are refused or accepted with a warning
    version: str = "1"
    other_version: str = "refuse"
    item: str | None = None  # PREM rating and net promoter indicators: the 0-10 question
    theme: str | None = None  # PREM top-box indicators: the theme whose answers count

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class Condition:
    id: str
    label_en: str
    label_nl: str
    standard_set: str
    treatments: tuple[str, ...]
    casemix: tuple[CaseMixVariable, ...]
    outcomes: tuple[Outcome, ...]
    timepoints: tuple[Timepoint, ...]
    proms: tuple[PromUse, ...]
    cost_activities: tuple[str, ...]
    indicators: tuple[Indicator, ...]
    source: Path = field(default=Path(), compare=False)
    treatment_info: tuple[Treatment, ...] = ()
    standard_set_nl: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)

    def standard_set_label(self, lang: str = "en") -> str:
        """The standard set the indicators follow, as named in `lang`."""
        return _pick(lang, self.standard_set, self.standard_set_nl, self.id)

    def treatment(self, treatment_id: str) -> Treatment:
        for tr in self.treatment_info:
            if tr.id == treatment_id:
                return tr
        if treatment_id in self.treatments:
            return Treatment(treatment_id)
        raise KeyError(f"condition {self.id!r} has no treatment {treatment_id!r}")

    def casemix_variable(self, name: str) -> CaseMixVariable:
        for v in self.casemix:
            if v.name == name:
                return v
        raise KeyError(f"condition {self.id!r} has no case-mix variable {name!r}")

    def outcome(self, outcome_id: str) -> Outcome:
        for o in self.outcomes:
            if o.id == outcome_id:
                return o
        raise KeyError(f"condition {self.id!r} has no outcome {outcome_id!r}")

    def indicator(self, indicator_id: str) -> Indicator:
        for i in self.indicators:
            if i.id == indicator_id:
                return i
        raise KeyError(f"condition {self.id!r} has no indicator {indicator_id!r}")

    def timepoint(self, timepoint_id: str) -> Timepoint:
        for t in self.timepoints:
            if t.id == timepoint_id:
                return t
        raise KeyError(f"condition {self.id!r} has no timepoint {timepoint_id!r}")

    @property
    def casemix_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.casemix)


@dataclass(frozen=True)
class PremAnswer:
    """One answer of a PREM answer scale (1 -> "Never" / "Nooit"); a 0-10 rating's answers need no label."""

    value: int
    label_en: str = ""
    label_nl: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, str(self.value))


@dataclass(frozen=True)
class PremScale:
    """An answer scale of PREM items, and which answers are the "top box" (the best category)."""

    id: str
    label_en: str
    label_nl: str
    answers: tuple[PremAnswer, ...]
    top_box: tuple[int, ...]

    @property
    def values(self) -> tuple[int, ...]:
        return tuple(a.value for a in self.answers)

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class PremTheme:
    id: str
    label_en: str
    label_nl: str

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class PremItem:
    """One question; `departments` empty = asked hospital-wide, else only of those departments' patients."""

    id: str
    scale: str
    theme: str | None = None
    departments: tuple[str, ...] = ()
    label_en: str = ""
    label_nl: str = ""

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)


@dataclass(frozen=True)
class PremQuestionnaire:
    """A PREM questionnaire: its themes, items and indicators. The indicator engine sees it as an indicator set
    like a condition (`as_condition`), so funnels, verdicts, external figures and reports treat it the same."""

    id: str
    label_en: str
    label_nl: str
    visit_type: str
    themes: tuple[PremTheme, ...]
    items: tuple[PremItem, ...]
    indicators: tuple[Indicator, ...]
    casemix: tuple[CaseMixVariable, ...]
    scales: dict[str, PremScale] = field(default_factory=dict, compare=False)
    source: Path = field(default=Path(), compare=False)

    def label(self, lang: str = "en") -> str:
        return _pick(lang, self.label_en, self.label_nl, self.id)

    def item(self, item_id: str) -> PremItem:
        for it in self.items:
            if it.id == item_id:
                return it
        raise KeyError(f"questionnaire {self.id!r} has no item {item_id!r}")

    def theme(self, theme_id: str) -> PremTheme:
        for th in self.themes:
            if th.id == theme_id:
                return th
        raise KeyError(f"questionnaire {self.id!r} has no theme {theme_id!r}")

    def indicator(self, indicator_id: str) -> Indicator:
        for i in self.indicators:
            if i.id == indicator_id:
                return i
        raise KeyError(f"questionnaire {self.id!r} has no indicator {indicator_id!r}")

    def as_condition(self) -> Condition:
        """The questionnaire as the indicator engine's indicator set: its case-mix is the respondents'."""
        return Condition(
            id=self.id,
            label_en=self.label_en,
            label_nl=self.label_nl,
            standard_set="CQI patient experience (Consumer Quality Index)",
            standard_set_nl="CQI-patiëntervaring (Consumer Quality Index)",
            treatments=(),
            casemix=self.casemix,
            outcomes=(),
            timepoints=(),
            proms=(),
            cost_activities=(),
            indicators=self.indicators,
            source=self.source,
        )


@dataclass(frozen=True)
class Catalog:
    conditions: dict[str, Condition]
    instruments: dict[str, Instrument]
    cost_activities: dict[str, CostActivity]
    #: Every case-mix variable a model may use (stored and derived), with its labels and codes.
    variables: dict[str, CaseMixVariable] = field(default_factory=dict)
    #: PREM questionnaires (prems.toml), by id; their ids never clash with a condition's.
    prems: dict[str, PremQuestionnaire] = field(default_factory=dict)

    def questionnaire(self, questionnaire_id: str) -> PremQuestionnaire:
        try:
            return self.prems[questionnaire_id]
        except KeyError:
            raise KeyError(f"unknown PREM questionnaire {questionnaire_id!r}") from None

    def indicator_set(self, set_id: str) -> Condition:
        """A condition, or a PREM questionnaire seen as one: what external figures and reports name."""
        if set_id in self.prems:
            return self.prems[set_id].as_condition()
        return self.condition(set_id)

    def variable(self, name: str) -> CaseMixVariable:
        """The labels of any case-mix variable by name (a name without labels labels itself)."""
        return self.variables.get(name) or CaseMixVariable(name, {**STORED_CASEMIX, **DERIVED_CASEMIX}.get(name, ""))

    def instrument(self, instrument_id: str) -> Instrument:
        try:
            return self.instruments[instrument_id]
        except KeyError:
            raise KeyError(f"unknown PROM instrument {instrument_id!r}") from None

    def cost_activity(self, activity_id: str) -> CostActivity:
        try:
            return self.cost_activities[activity_id]
        except KeyError:
            raise KeyError(f"unknown cost activity {activity_id!r}") from None

    def condition(self, condition_id: str) -> Condition:
        try:
            return self.conditions[condition_id]
        except KeyError:
            known = ", ".join(sorted(self.conditions))
            raise KeyError(f"unknown condition {condition_id!r}; known conditions: {known}") from None

    def value_range(self, set_id: str, indicator: Indicator) -> tuple[float, float]:
        """The values a unit's figure of `indicator` (of condition or questionnaire `set_id`) can take, as its
        patient rows allow: a rate lies in 0-1, a mean within its outcome's range, a PROM score within its scale,
        a change within the scale's width either way, a cost or a count at 0 or more, a 0-10 rating within its
        answers, a net promoter score within -100..100. A figure or target outside it is no figure of the
        indicator (a rate of 150%, a stay of -5 days, an Oxford score of 200 on its 0-48 scale)."""
        inf = math.inf
        kind = indicator.kind
        if kind in PROPORTION_KINDS:
            return 0.0, 1.0
        if kind == "prem_nps":
            return -100.0, 100.0
        if kind in ("prom_score", "prom_change") and indicator.instrument and indicator.scale:
            scale = self.instrument(indicator.instrument).scale(indicator.scale)
            width = scale.max - scale.min
            return (scale.min, scale.max) if kind == "prom_score" else (-width, width)
        if kind == "mean" and indicator.outcome:
            outcome = self.indicator_set(set_id).outcome(indicator.outcome)
            return (
                -inf if outcome.min is None else outcome.min,
                inf if outcome.max is None else outcome.max,
            )
        if kind == "prem_rating" and indicator.item and set_id in self.prems:
            questionnaire = self.prems[set_id]
            answers = questionnaire.scales[questionnaire.item(indicator.item).scale].values
            return float(min(answers)), float(max(answers))
        if kind in ("cost", "volume"):
            return 0.0, inf
        return -inf, inf


# --- validation helpers -------------------------------------------------------------------------------


def _version(ir: _Reader) -> str:
    """An indicator's definition version: text or a whole number in the TOML file ("2" and 2 are the same)."""
    value = ir.get("version", (str, int), "1")
    text = str(value).strip()
    if not text or len(text) > 20:
        raise ir.fail("version", f"must be 1 to 20 characters, got {value!r}")
    return text


class _Reader:
    """Reads one table of a TOML file, naming the file and dotted key in every error."""

    def __init__(self, file: Path, data: dict[str, Any], where: str = ""):
        self.file, self.data, self.where = file, data, where
        self._used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, message: str) -> CatalogError:
        return CatalogError(f"{self.file}: key '{self._key(key)}': {message}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., required: bool = True) -> Any:
        self._used.add(key)
        if key not in self.data:
            if default is not ...:
                return default
            if required:
                raise self.fail(key, "is required but missing")
            return None
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; a TOML `true` where a number is expected is still a mistake
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {_kind_name(kinds)}, got {value!r}")
        return value

    def text(self, key: str, default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value is not None and isinstance(value, str) and default is ... and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def number(self, key: str, default: Any = ...) -> float | None:
        value = self.get(key, (int, float), default)
        return None if value is None else float(value)

    def one_of(self, key: str, allowed: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value is not None and value not in allowed:
            raise self.fail(key, f"must be one of {', '.join(allowed)}; got {value!r}")
        return value

    def tables(self, key: str) -> list[_Reader]:
        rows = self.get(key, list)
        readers = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise self.fail(f"{key}[{i}]", f"expected a table, got {row!r}")
            readers.append(_Reader(self.file, row, self._key(f"{key}[{i}]")))
        return readers

    def strings(self, key: str) -> tuple[str, ...]:
        rows = self.get(key, list)
        for i, value in enumerate(rows):
            if not isinstance(value, str) or not value:
                raise self.fail(f"{key}[{i}]", f"expected a non-empty string, got {value!r}")
        if len(set(rows)) != len(rows):
            raise self.fail(key, f"contains duplicates: {rows!r}")
        return tuple(rows)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise self.fail(unknown[0], f"unknown key (allowed: {', '.join(sorted(self._used))})")


def _kind_name(kinds: tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table", bool: "true/false"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from exc


def _unique(reader: _Reader, key: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, value in enumerate(ids):
        if value in seen:
            raise reader.fail(f"{key}[{i}]", f"duplicate id {value!r}")
        seen.add(value)


def _range(reader: _Reader, lo: float | None, hi: float | None) -> None:
    if lo is not None and hi is not None and lo > hi:
        raise reader.fail("min", f"min ({lo}) is greater than max ({hi})")


# --- loaders ------------------------------------------------------------------------------------------


def _load_instruments(path: Path) -> dict[str, Instrument]:
    data = _load_toml(path)
    out: dict[str, Instrument] = {}
    for inst_id, body in data.items():
        if not isinstance(body, dict):
            raise CatalogError(f"{path}: key '{inst_id}': expected a table")
        r = _Reader(path, body, inst_id)
        items = []
        for ir in r.tables("items"):
            item = Item(
                id=ir.text("id"),
                min=ir.number("min"),
                max=ir.number("max"),
                label_en=ir.text("label_en", ""),
                label_nl=ir.text("label_nl", ""),
            )
            _range(ir, item.min, item.max)
            ir.done()
            items.append(item)
        _unique(r, "items", [i.id for i in items])
        scales = []
        for sr in r.tables("scales"):
            scale = Scale(
                id=sr.text("id"),
                label_en=sr.text("label_en"),
                label_nl=sr.text("label_nl"),
                min=sr.number("min"),
                max=sr.number("max"),
                higher_is_better=sr.get("higher_is_better", bool),
                mic=sr.number("mic"),
                mic_source=sr.text("mic_source"),
                mic_source_nl=sr.text("mic_source_nl", ""),
            )
            _range(sr, scale.min, scale.max)
            if scale.mic <= 0:
                raise sr.fail("mic", f"must be positive, got {scale.mic}")
            sr.done()
            scales.append(scale)
        _unique(r, "scales", [s.id for s in scales])
        out[inst_id] = Instrument(
            id=inst_id,
            label_en=r.text("label_en"),
            label_nl=r.text("label_nl"),
            scoring=r.one_of("scoring", ("eq5d5l_nl", "qlq_c30", "oxford", "promis10")),
            items=tuple(items),
            scales=tuple(scales),
        )
        r.done()
    return out


def _load_activities(path: Path) -> dict[str, CostActivity]:
    data = _load_toml(path)
    out: dict[str, CostActivity] = {}
    for act_id, body in data.items():
        if not isinstance(body, dict):
            raise CatalogError(f"{path}: key '{act_id}': expected a table")
        r = _Reader(path, body, act_id)
        out[act_id] = CostActivity(
            id=act_id,
            label_en=r.text("label_en"),
            label_nl=r.text("label_nl"),
            unit=r.one_of("unit", ("count", "minute", "hour", "day")),
            typical_unit_cost_eur=r.number("typical_unit_cost_eur"),
        )
        r.done()
    return out


def _load_casemix_labels(path: Path) -> dict[str, tuple[str, str, tuple[CodeLabel, ...]]]:
    """casemix.toml: the label of every stored case-mix variable, and of its category codes."""
    data = _load_toml(path)
    out: dict[str, tuple[str, str, tuple[CodeLabel, ...]]] = {}
    for name, body in data.items():
        if name not in STORED_CASEMIX and name not in DERIVED_CASEMIX:
            known = ", ".join([*STORED_CASEMIX, *DERIVED_CASEMIX])
            raise CatalogError(f"{path}: key '{name}': not a stored case-mix variable ({known})")
        if not isinstance(body, dict):
            raise CatalogError(f"{path}: key '{name}': expected a table")
        r = _Reader(path, body, name)
        codes = []
        for code, labels in (r.get("codes", dict, {}) or {}).items():
            if not isinstance(labels, dict):
                raise r.fail(f"codes.{code}", "expected a table with label_en and label_nl")
            cr = _Reader(path, labels, f"{name}.codes.{code}")
            codes.append(CodeLabel(code=code, label_en=cr.text("label_en"), label_nl=cr.text("label_nl")))
            cr.done()
        out[name] = (r.text("label_en"), r.text("label_nl"), tuple(codes))
        r.done()
    missing = sorted((set(STORED_CASEMIX) | set(DERIVED_CASEMIX)) - set(out))
    if missing:
        raise CatalogError(f"{path}: no labels for case-mix variable(s) {', '.join(missing)}")
    return out


def _load_condition(
    path: Path,
    instruments: dict[str, Instrument],
    activities: dict[str, CostActivity],
    casemix_labels: dict[str, tuple[str, str, tuple[CodeLabel, ...]]] | None = None,
) -> Condition:
    r = _Reader(path, _load_toml(path))
    cond_id = r.text("id")
    if cond_id != path.stem:
        raise r.fail("id", f"must equal the file name {path.stem!r}, got {cond_id!r}")

    casemix = []
    for cr in r.tables("casemix"):
        name = cr.text("name")
        if name not in STORED_CASEMIX:
            raise cr.fail("name", f"{name!r} is not a stored case-mix variable ({', '.join(STORED_CASEMIX)})")
        ctype = cr.one_of("type", CASEMIX_TYPES)
        if ctype != STORED_CASEMIX[name]:
            raise cr.fail("type", f"{name!r} is stored as {STORED_CASEMIX[name]}, not {ctype}")
        label_en, label_nl, code_labels = (casemix_labels or {}).get(name, ("", "", ()))
        labels = dict(label_en=label_en, label_nl=label_nl, code_labels=code_labels)
        if ctype == "category":
            var = CaseMixVariable(name=name, type=ctype, codes=cr.strings("codes"), **labels)
            if not var.codes:
                raise cr.fail("codes", "a category needs at least one code")
        else:
            var = CaseMixVariable(name=name, type=ctype, min=cr.number("min"), max=cr.number("max"), **labels)
            _range(cr, var.min, var.max)
        cr.done()
        casemix.append(var)
    _unique(r, "casemix", [v.name for v in casemix])

    outcomes = []
    for orr in r.tables("outcomes"):
        otype = orr.one_of("type", OUTCOME_TYPES)
        outcome = Outcome(
            id=orr.text("id"),
            type=otype,
            label_en=orr.text("label_en"),
            label_nl=orr.text("label_nl"),
            min=orr.number("min") if otype == "number" else None,
            max=orr.number("max") if otype == "number" else None,
            unit=orr.text("unit", ""),
        )
        _range(orr, outcome.min, outcome.max)
        orr.done()
        outcomes.append(outcome)
    _unique(r, "outcomes", [o.id for o in outcomes])
    outcome_by_id = {o.id: o for o in outcomes}

    timepoints = []
    for tr in r.tables("timepoints"):
        days = int(tr.get("days", int))
        tp = Timepoint(
            id=tr.text("id"),
            days=days,
            label_en=tr.text("label_en", ""),
            label_nl=tr.text("label_nl", ""),
            before_days=tr.get("before_days", int, None),
        )
        if tp.days < 0:
            raise tr.fail("days", f"must be 0 or more, got {tp.days}")
        if tp.before_days < 0:
            raise tr.fail("before_days", f"must be 0 or more, got {tp.before_days}")
        if tp.days > 0 and tp.before_days:
            raise tr.fail("before_days", "only a baseline (days = 0) may be completed before the index date")
        tr.done()
        timepoints.append(tp)
    _unique(r, "timepoints", [t.id for t in timepoints])
    timepoint_ids = {t.id for t in timepoints}

    proms = []
    for pr in r.tables("proms"):
        inst = pr.text("instrument")
        if inst not in instruments:
            raise pr.fail("instrument", f"unknown instrument {inst!r} (known: {', '.join(instruments)})")
        tps = pr.strings("timepoints")
        for i, tp in enumerate(tps):
            if tp not in timepoint_ids:
                raise pr.fail(f"timepoints[{i}]", f"unknown timepoint {tp!r}")
        pr.done()
        proms.append(PromUse(instrument=inst, timepoints=tps))
    _unique(r, "proms", [p.instrument for p in proms])
    prom_by_inst = {p.instrument: p for p in proms}

    cost_activities = r.strings("cost_activities")
    for i, act in enumerate(cost_activities):
        if act not in activities:
            raise r.fail(f"cost_activities[{i}]", f"unknown cost activity {act!r}")

    indicators = []
    for ir in r.tables("indicators"):
        kind = ir.one_of("kind", INDICATOR_KINDS)
        if kind in PREM_KINDS:
            raise ir.fail("kind", f"a {kind} indicator belongs to a questionnaire in prems.toml, not to a condition")
        ind = Indicator(
            id=ir.text("id"),
            label_en=ir.text("label_en"),
            label_nl=ir.text("label_nl"),
            kind=kind,
            direction=ir.one_of("direction", ("higher", "lower")),
            min_n=int(ir.get("min_n", int)),
            tier=ir.get("tier", int, required=kind in OUTCOME_KINDS),
            outcome=ir.get("outcome", str, required=kind in ("proportion", "mean", *SURVIVAL_KINDS)),
            instrument=ir.get("instrument", str, required=kind in PROM_KINDS),
            scale=ir.get("scale", str, required=kind in ("prom_score", "prom_change", "prom_mic")),
            timepoint=ir.get("timepoint", str, required=kind in PROM_KINDS),
            key=ir.get("key", bool, False),
            components=_components(ir, kind, outcome_by_id),
            years=_years(ir, kind),
            version=_version(ir),
            other_version=ir.one_of("other_version", OTHER_VERSION_RULES, "refuse"),
        )
        if ind.min_n < 0:
            raise ir.fail("min_n", f"must be 0 or more, got {ind.min_n}")
        if ind.tier is not None and ind.tier not in (1, 2, 3):
            raise ir.fail("tier", f"Porter tier must be 1, 2 or 3, got {ind.tier}")
        if ind.outcome is not None:
            if ind.outcome not in outcome_by_id:
                raise ir.fail("outcome", f"unknown outcome {ind.outcome!r}")
            wanted = "binary" if kind in ("proportion", *SURVIVAL_KINDS) else "number"
            if outcome_by_id[ind.outcome].type != wanted:
                raise ir.fail("outcome", f"a {kind} indicator needs a {wanted} outcome, {ind.outcome!r} is not")
        if ind.instrument is not None:
            if ind.instrument not in prom_by_inst:
                raise ir.fail("instrument", f"instrument {ind.instrument!r} is not in this condition's proms")
            if ind.timepoint not in prom_by_inst[ind.instrument].timepoints:
                raise ir.fail("timepoint", f"{ind.instrument!r} is not collected at {ind.timepoint!r}")
            if ind.kind in ("prom_change", "prom_mic") and "baseline" not in prom_by_inst[ind.instrument].timepoints:
                raise ir.fail("instrument", f"change needs a 'baseline' timepoint for {ind.instrument!r}")
            if ind.scale is not None:
                scales = {s.id for s in instruments[ind.instrument].scales}
                if ind.scale not in scales:
                    raise ir.fail("scale", f"instrument {ind.instrument!r} has no scale {ind.scale!r}")
        ir.done()
        indicators.append(ind)
    _unique(r, "indicators", [i.id for i in indicators])

    treatment_info = []
    for i, entry in enumerate(r.get("treatments", list)):
        # a treatment is an id, or a table with its id and labels
        if isinstance(entry, str) and entry:
            treatment_info.append(Treatment(entry))
        elif isinstance(entry, dict):
            tr = _Reader(path, entry, f"treatments[{i}]")
            treatment_info.append(Treatment(tr.text("id"), tr.text("label_en", ""), tr.text("label_nl", "")))
            tr.done()
        else:
            raise r.fail(f"treatments[{i}]", f"expected an id or a table with id, label_en and label_nl, got {entry!r}")
    _unique(r, "treatments", [tr.id for tr in treatment_info])

    condition = Condition(
        id=cond_id,
        label_en=r.text("label_en"),
        label_nl=r.text("label_nl"),
        standard_set=r.text("standard_set"),
        standard_set_nl=r.text("standard_set_nl", ""),
        treatments=tuple(tr.id for tr in treatment_info),
        treatment_info=tuple(treatment_info),
        casemix=tuple(casemix),
        outcomes=tuple(outcomes),
        timepoints=tuple(timepoints),
        proms=tuple(proms),
        cost_activities=cost_activities,
        indicators=tuple(indicators),
        source=path,
    )
    r.done()
    return condition


def _years(ir: _Reader, kind: str) -> float | None:
    """A survival indicator's horizon in years (required, positive); no other kind has one."""
    if kind not in SURVIVAL_KINDS:
        if ir.get("years", (int, float), None, required=False) is not None:
            raise ir.fail("years", f"only a survival indicator has a horizon, this one is {kind!r}")
        return None
    years = float(ir.get("years", (int, float)))
    if years <= 0:
        raise ir.fail("years", f"must be more than 0, got {years}")
    return years


def _components(ir: _Reader, kind: str, outcome_by_id: dict[str, Outcome]) -> tuple[Component, ...]:
    """The components of a composite indicator, each an outcome of this condition (a typo is refused here,
    naming the file and the indicator, rather than silently counting every cycle as textbook)."""
    if kind != "composite":
        if "components" in ir.data:
            raise ir.fail("components", f"only a composite indicator has components, this one is {kind!r}")
        return ()
    entry = ir.data.get("id", "?")
    components = []
    for cr in ir.tables("components"):
        name = cr.text("outcome")
        if name not in outcome_by_id:
            known = ", ".join(outcome_by_id)
            raise cr.fail("outcome", f"composite {entry!r} names unknown component {name!r} (outcomes: {known})")
        if outcome_by_id[name].type == "binary":
            fails_if = cr.get("fails_if", int, 1)
            if fails_if not in (0, 1):
                raise cr.fail("fails_if", f"must be 0 or 1, got {fails_if!r}")
            components.append(Component(name, fails_if=int(fails_if)))
        else:
            components.append(Component(name, fails_above=cr.number("fails_above")))
        cr.done()
    if not components:
        raise ir.fail("components", f"composite {entry!r} needs at least one component")
    _unique(ir, "components", [c.outcome for c in components])
    return tuple(components)


#: The respondent case-mix columns a PREM file may carry (stored on prem_responses; all categories).
PREM_CASEMIX = ("age_band", "education", "self_rated_health")
#: Visit types of PREM questionnaires.
PREM_VISIT_TYPES = ("clinical", "outpatient")
#: Answers of a net promoter question that count as promoters (9-10) and detractors (0-6).
NPS_PROMOTER_FROM, NPS_DETRACTOR_UPTO = 9, 6


def _load_prems(path: Path) -> dict[str, PremQuestionnaire]:
    """prems.toml: answer scales, the respondents' case-mix variables and the questionnaires."""
    r = _Reader(path, _load_toml(path))
    scales: dict[str, PremScale] = {}
    for sid, body in (r.get("scales", dict) or {}).items():
        if not isinstance(body, dict):
            raise r.fail(f"scales.{sid}", "expected a table")
        sr = _Reader(path, body, f"scales.{sid}")
        answers = []
        for ar in sr.tables("answers"):
            value = ar.get("value", int)
            answers.append(PremAnswer(int(value), ar.text("label_en", ""), ar.text("label_nl", "")))
            ar.done()
        _unique(sr, "answers", [str(a.value) for a in answers])
        if not answers:
            raise sr.fail("answers", "a scale needs at least one answer")
        top = tuple(int(v) for v in sr.get("top_box", list))
        for i, v in enumerate(top):
            if v not in {a.value for a in answers}:
                raise sr.fail(f"top_box[{i}]", f"{v!r} is not an answer of this scale")
        if not top:
            raise sr.fail("top_box", "name at least one answer as the top box")
        scales[sid] = PremScale(sid, sr.text("label_en"), sr.text("label_nl"), tuple(answers), top)
        sr.done()
    casemix = []
    for name, body in (r.get("casemix", dict) or {}).items():
        if name not in PREM_CASEMIX:
            raise r.fail(f"casemix.{name}", f"not a stored PREM case-mix variable ({', '.join(PREM_CASEMIX)})")
        if not isinstance(body, dict):
            raise r.fail(f"casemix.{name}", "expected a table")
        cr = _Reader(path, body, f"casemix.{name}")
        codes = []
        for code_r in cr.tables("codes"):
            codes.append(CodeLabel(code_r.text("code"), code_r.text("label_en"), code_r.text("label_nl")))
            code_r.done()
        _unique(cr, "codes", [c.code for c in codes])
        casemix.append(
            CaseMixVariable(
                name=name,
                type="category",
                codes=tuple(c.code for c in codes),
                label_en=cr.text("label_en"),
                label_nl=cr.text("label_nl"),
                code_labels=tuple(codes),
            )
        )
        cr.done()
    out: dict[str, PremQuestionnaire] = {}
    for qid, body in (r.get("questionnaires", dict) or {}).items():
        if not isinstance(body, dict):
            raise r.fail(f"questionnaires.{qid}", "expected a table")
        out[qid] = _load_questionnaire(path, qid, body, scales, tuple(casemix))
    r.done()
    return out


def _load_questionnaire(
    path: Path, qid: str, body: dict[str, Any], scales: dict[str, PremScale], casemix: tuple[CaseMixVariable, ...]
) -> PremQuestionnaire:
    r = _Reader(path, body, f"questionnaires.{qid}")
    themes = []
    for tr in r.tables("themes"):
        themes.append(PremTheme(tr.text("id"), tr.text("label_en"), tr.text("label_nl")))
        tr.done()
    _unique(r, "themes", [t.id for t in themes])
    theme_ids = {t.id for t in themes}
    items = []
    for ir in r.tables("items"):
        item = PremItem(
            id=ir.text("id"),
            scale=ir.text("scale"),
            theme=ir.get("theme", str, None, required=False),
            departments=ir.strings("departments") if "departments" in ir.data else (),
            label_en=ir.text("label_en", ""),
            label_nl=ir.text("label_nl", ""),
        )
        if item.scale not in scales:
            raise ir.fail("scale", f"unknown answer scale {item.scale!r} (known: {', '.join(scales)})")
        if item.theme is not None and item.theme not in theme_ids:
            raise ir.fail("theme", f"unknown theme {item.theme!r}")
        ir.done()
        items.append(item)
    _unique(r, "items", [i.id for i in items])
    by_id = {i.id: i for i in items}
    indicators = []
    for ir in r.tables("indicators"):
        kind = ir.one_of("kind", ("volume", *PREM_KINDS))
        ind = Indicator(
            id=ir.text("id"),
            label_en=ir.text("label_en"),
            label_nl=ir.text("label_nl"),
            kind=kind,
            direction=ir.one_of("direction", ("higher", "lower")),
            min_n=int(ir.get("min_n", int)),
            key=ir.get("key", bool, False),
            item=ir.get("item", str, required=kind in ("prem_rating", "prem_nps")),
            theme=ir.get("theme", str, required=kind == "prem_topbox"),
            version=_version(ir),
            other_version=ir.one_of("other_version", OTHER_VERSION_RULES, "refuse"),
        )
        if ind.min_n < 0:
            raise ir.fail("min_n", f"must be 0 or more, got {ind.min_n}")
        if ind.item is not None:
            if ind.item not in by_id:
                raise ir.fail("item", f"unknown item {ind.item!r}")
            values = scales[by_id[ind.item].scale].values
            if (min(values), max(values)) != (0, 10):
                raise ir.fail("item", f"a {kind} indicator needs a 0-10 question, {ind.item!r} is not")
        if ind.theme is not None and not any(i.theme == ind.theme for i in items):
            raise ir.fail("theme", f"theme {ind.theme!r} has no items")
        ir.done()
        indicators.append(ind)
    _unique(r, "indicators", [i.id for i in indicators])
    q = PremQuestionnaire(
        id=qid,
        label_en=r.text("label_en"),
        label_nl=r.text("label_nl"),
        visit_type=r.one_of("visit_type", PREM_VISIT_TYPES),
        themes=tuple(themes),
        items=tuple(items),
        indicators=tuple(indicators),
        casemix=casemix,
        scales=scales,
        source=path,
    )
    r.done()
    return q


def load_catalog(directory: Path | str | None = None) -> Catalog:
    """Read and validate every catalog file in `directory` (default: vbhc/data/catalog)."""
    directory = Path(directory) if directory is not None else catalog_dir()
    if not directory.is_dir():
        raise CatalogError(f"{directory}: catalog directory not found")
    instruments = _load_instruments(directory / "instruments.toml")
    activities = _load_activities(directory / "cost_activities.toml")
    labels_file = directory / "casemix.toml"
    casemix_labels = _load_casemix_labels(labels_file) if labels_file.is_file() else None
    conditions: dict[str, Condition] = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name in SHARED_FILES:
            continue
        cond = _load_condition(path, instruments, activities, casemix_labels)
        conditions[cond.id] = cond
    if not conditions:
        raise CatalogError(f"{directory}: no condition files (*.toml) found")
    prems_file = directory / "prems.toml"
    prems = _load_prems(prems_file) if prems_file.is_file() else {}
    for qid in prems:
        if qid in conditions:
            raise CatalogError(f"{prems_file}: key 'questionnaires.{qid}': the id of a condition too")
    variables = {
        name: CaseMixVariable(name, kind, label_en=en, label_nl=nl, code_labels=codes)
        for name, kind in {**STORED_CASEMIX, **DERIVED_CASEMIX}.items()
        for en, nl, codes in [(casemix_labels or {}).get(name, ("", "", ()))]
    }
    for q in prems.values():
        variables.update({v.name: v for v in q.casemix})
    return Catalog(
        conditions=conditions, instruments=instruments, cost_activities=activities, variables=variables, prems=prems
    )


@cache
def default_catalog() -> Catalog:
    """The catalog of this installation, loaded once per process."""
    return load_catalog()
