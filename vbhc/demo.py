"""Deterministic synthetic registry: fictitious hospitals, care cycles, outcomes, PROMs and costs.

No real patient data is used or imitated record by record: every value is drawn from simple parametric models
driven by the condition catalog. The data set is built so that the statistics can be checked against a known
truth (written to truth.json beside the files):

- case-mix really drives outcomes (logistic models with substantial age, ASA, Charlson, stage, NYHA ...
  coefficients), so crude and adjusted comparisons differ;
- every (hospital, condition, indicator) has ZERO true unit effect, except a short list of planted outliers
  (worse and better) and exactly one unit whose crude results differ only because it treats older and sicker
  patients (true effect zero);
- two planted changes over time (PLANTED_IMPROVEMENTS, in two condition teams of the own hospital): from an
  improvement action's start the own hospital's excess of an outlier outcome is gone (its odds ratio drops below
  1), so the action's before/after view (vbhc.action_effect) has a real effect to find; the same random numbers
  are drawn, so nothing else changes;
- hospital volumes differ about four-fold, index dates span five years with a mild upward trend.

Determinism: all randomness comes from ``np.random.default_rng(SeedSequence(seed, spawn_key=(block,)))`` per
block of ``BLOCK_SIZE`` consecutive cycles (cycle ids are chronological). The same seed, number of cycles and
block size therefore give byte-identical files, however the blocks are batched for writing (``chunk_size``),
and memory does not grow with the number of cycles.

Parameters that make the data realistic (baseline risks, case-mix distributions, PROM trajectories ...) live
in dictionaries below, keyed by catalog ids, with defaults for ids they do not mention; which outcomes,
instruments, items, timepoints and cost activities exist is always read from the catalog.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vbhc.catalog import DAYS_PER_YEAR, STORED_CASEMIX, SURVIVAL_KINDS, Catalog, Condition, default_catalog
from vbhc.progress import Progress

# --- fixed frame --------------------------------------------------------------------------------------

AS_OF = date(2026, 6, 30)  #: the demo's "today": follow-up after this date has not happened yet
FIRST_INDEX = date(2021, 1, 1)
LAST_INDEX = date(2025, 12, 31)
DEFAULT_SEED = 20261124
DEFAULT_CYCLES = 50_000
BLOCK_SIZE = 10_000  #: cycles per random-number block (part of the determinism contract)
CHUNK_SIZE = 100_000  #: cycles generated before the CSV files are appended to (memory bound)
GENERATOR_VERSION = 1

_EPOCH = np.datetime64("1970-01-01", "D")
_DATE0 = np.datetime64("2019-01-01", "D")  # first date the date lookup table can format
_DATE_STRINGS = np.datetime_as_string(np.arange(_DATE0, np.datetime64("2031-01-01", "D")), unit="D")
_AS_OF_DAY = int((np.datetime64(AS_OF.isoformat(), "D") - _EPOCH).astype(int))


def _day(d: date) -> int:
    return int((np.datetime64(d.isoformat(), "D") - _EPOCH).astype(int))


# --- fictitious hospitals and departments --------------------------------------------------------------

#: department code -> (Dutch name, division)
DEPARTMENTS: dict[str, tuple[str, str]] = {
    "SUR": ("Heelkunde", "Snijdende specialismen"),
    "ORT": ("Orthopedie", "Snijdende specialismen"),
    "ENT": ("Keel-, neus- en oorheelkunde", "Snijdende specialismen"),
    "CAR": ("Cardiologie", "Hart en vaten"),
    "ONC": ("Medische oncologie", "Oncologisch centrum"),
}

#: the department a condition team belongs to, unless a hospital says otherwise; unknown conditions -> SUR
DEFAULT_DEPARTMENT = {
    "oesophageal_cancer": "SUR",
    "thyroid_cancer": "SUR",
    "breast_cancer": "SUR",
    "colorectal_cancer": "SUR",
    "hip_osteoarthritis": "ORT",
    "knee_osteoarthritis": "ORT",
    "heart_failure": "CAR",
}


@dataclass(frozen=True)
class DemoHospital:
    code: str
    name: str
    size: float  # relative volume
    own: bool = False
    not_treated: tuple[str, ...] = ()
    departments: dict[str, str] = field(default_factory=dict)  # condition -> department override


#: Fictitious hospitals (invented place names; any resemblance to a real hospital is unintended).
HOSPITALS: tuple[DemoHospital, ...] = (
    DemoHospital("H01", "Universitair Medisch Centrum Veenmeer", 1.8, own=True),
    DemoHospital("H02", "Oosterhaven Ziekenhuis", 1.5, departments={"thyroid_cancer": "ENT"}),
    DemoHospital("H03", "Heidekamp Medisch Centrum", 1.2, departments={"breast_cancer": "ONC"}),
    DemoHospital("H04", "Zilverberg Gasthuis", 0.9, not_treated=("oesophageal_cancer",)),
    DemoHospital("H05", "Ziekenhuis Polderwijk", 0.7, not_treated=("oesophageal_cancer", "thyroid_cancer")),
    DemoHospital("H06", "Eikenrode Ziekenhuis", 1.0, departments={"thyroid_cancer": "ENT"}),
    DemoHospital("H07", "Duinrand Medisch Centrum", 1.1, departments={"thyroid_cancer": "ENT"}),
    DemoHospital(
        "H08",
        "Brughaven Ziekenhuisgroep",
        0.5,
        not_treated=("oesophageal_cancer", "breast_cancer"),
    ),
    DemoHospital(
        "H09",
        "Waterweide Ziekenhuis",
        0.8,
        not_treated=("oesophageal_cancer", "thyroid_cancer"),
        departments={"breast_cancer": "ONC"},
    ),
    DemoHospital("H10", "Kruidenhof Medisch Centrum", 2.0, departments={"thyroid_cancer": "ENT"}),
)

# --- realism parameters (keyed by catalog ids; defaults for ids not listed) ------------------------------

#: share of all care cycles per condition (renormalised over the catalog's conditions)
CONDITION_SHARE = {
    "hip_osteoarthritis": 0.22,
    "knee_osteoarthritis": 0.20,
    "breast_cancer": 0.17,
    "colorectal_cancer": 0.14,
    "heart_failure": 0.13,
    "oesophageal_cancer": 0.07,
    "thyroid_cancer": 0.07,
}
DEFAULT_CONDITION_SHARE = 0.1


@dataclass(frozen=True)
class CaseMixParams:
    age: tuple[float, float] = (65.0, 12.0)  # mean, sd
    male: float = 0.5
    charlson: float = 1.0  # Poisson mean at the mean age
    bmi: float = 27.0
    stage: tuple[float, ...] = ()  # probabilities per catalog code; () = uniform
    nyha: tuple[float, ...] = (0.12, 0.45, 0.33, 0.10)
    lvef: tuple[float, float] = (38.0, 12.0)
    smoking: tuple[float, ...] = (0.50, 0.38, 0.12)


CASEMIX: dict[str, CaseMixParams] = {
    "oesophageal_cancer": CaseMixParams((67, 9), 0.75, 1.2, 25.5, (0.08, 0.25, 0.45, 0.22)),
    "thyroid_cancer": CaseMixParams((51, 15), 0.27, 0.6, 27.0, (0.65, 0.20, 0.10, 0.05)),
    "breast_cancer": CaseMixParams((61, 12), 0.01, 0.7, 27.0, (0.12, 0.38, 0.32, 0.12, 0.06)),
    "colorectal_cancer": CaseMixParams((69, 10), 0.55, 1.1, 27.0, (0.20, 0.30, 0.32, 0.18)),
    "hip_osteoarthritis": CaseMixParams((69, 10), 0.35, 0.7, 28.0),
    "knee_osteoarthritis": CaseMixParams((68, 9), 0.35, 0.7, 30.0),
    "heart_failure": CaseMixParams((74, 11), 0.56, 2.0, 28.0),
}

#: log-odds per unit of each case-mix variable (centred), before the per-outcome multipliers below
BETA = {"age": 0.035, "sex": 0.2, "asa": 0.4, "charlson": 0.18, "bmi": 0.03, "stage": 0.4, "nyha": 0.45,
        "lvef": -0.02, "smoking": 1.0}  # fmt: skip
SMOKING_LOGODDS = {"never": 0.0, "former": 0.15, "current": 0.45}

#: baseline risk of a binary outcome for a patient with average case-mix; (condition, outcome) or outcome
BASE_RISK: dict[Any, float] = {
    ("oesophageal_cancer", "mortality_30d"): 0.016,
    ("oesophageal_cancer", "severe_complication"): 0.28,
    ("oesophageal_cancer", "anastomotic_leak"): 0.13,
    ("oesophageal_cancer", "radical_resection"): 0.88,
    ("thyroid_cancer", "mortality_1y"): 0.012,
    ("thyroid_cancer", "permanent_hypoparathyroidism"): 0.07,
    ("thyroid_cancer", "recurrent_nerve_palsy"): 0.025,
    ("thyroid_cancer", "reoperation_30d"): 0.03,
    ("breast_cancer", "reexcision"): 0.10,
    ("breast_cancer", "surgical_site_infection"): 0.06,
    ("breast_cancer", "recurrence_2y"): 0.04,
    ("breast_cancer", "mortality_2y"): 0.025,
    ("colorectal_cancer", "mortality_30d"): 0.015,
    ("colorectal_cancer", "anastomotic_leak"): 0.08,
    ("colorectal_cancer", "severe_complication"): 0.15,
    ("colorectal_cancer", "readmission_30d"): 0.10,
    ("hip_osteoarthritis", "revision_1y"): 0.012,
    ("hip_osteoarthritis", "complication_90d"): 0.05,
    ("hip_osteoarthritis", "readmission_30d"): 0.04,
    ("knee_osteoarthritis", "revision_1y"): 0.01,
    ("knee_osteoarthritis", "complication_90d"): 0.05,
    ("knee_osteoarthritis", "readmission_30d"): 0.045,
    ("heart_failure", "mortality_1y"): 0.15,
    ("heart_failure", "hf_readmission_1y"): 0.22,
}
DEFAULT_BASE_RISK = 0.05

#: multipliers of BETA per outcome (keyed by outcome id, or an id prefix ending in "*"); default 1
OUTCOME_SENSITIVITY: dict[str, dict[str, float]] = {
    "mortality*": {"age": 1.5, "asa": 1.3, "charlson": 1.3, "stage": 1.5, "nyha": 1.3, "lvef": 1.2, "bmi": 0.3},
    "recurrence_2y": {"age": 0.2, "asa": 0.2, "charlson": 0.3, "stage": 2.5, "bmi": 0.3, "sex": 0.5},
    "radical_resection": {"age": 0.2, "asa": 0.2, "charlson": 0.2, "stage": 1.3, "bmi": 0.5, "sex": 0.5},
    "reexcision": {"age": -0.5, "asa": 0.2, "charlson": 0.2, "stage": 0.8, "bmi": 0.5},
    "revision_1y": {"age": 0.3, "asa": 0.8, "bmi": 1.2, "smoking": 1.0},
    "surgical_site_infection": {"age": 0.5, "bmi": 2.0, "smoking": 1.5},
    "permanent_hypoparathyroidism": {"age": 0.3, "stage": 1.2, "asa": 0.3, "charlson": 0.3},
    "recurrent_nerve_palsy": {"age": 0.5, "stage": 1.0, "asa": 0.3},
    "hf_readmission_1y": {"age": 0.6, "nyha": 1.2, "lvef": 1.0},
}

#: outcomes (as in the catalog) whose value 1 means the good result: case-mix risk lowers their probability
GOOD_OUTCOMES = {"radical_resection"}

#: the alternative treatment (catalog treatments[1]) : probability and log-odds per stage step
TREATMENT_CHOICE: dict[str, tuple[float, float]] = {
    "oesophageal_cancer": (0.18, 0.5),
    "thyroid_cancer": (0.30, -0.8),
    "breast_cancer": (0.33, 0.5),
    "colorectal_cancer": (0.30, 0.0),
    "hip_osteoarthritis": (0.03, 0.0),
    "knee_osteoarthritis": (0.12, 0.0),
    "heart_failure": (0.20, 0.0),
}

#: log-odds effect of a treatment on an outcome (treatment depends on stage only, so no unit is favoured)
TREATMENT_EFFECT: dict[tuple[str, str], float] = {
    ("hemithyroidectomy", "permanent_hypoparathyroidism"): -2.5,
    ("hemithyroidectomy", "recurrent_nerve_palsy"): -0.6,
    ("mastectomy", "reexcision"): -1.5,
    ("rectal_resection", "anastomotic_leak"): 0.5,
    ("device_therapy", "mortality_1y"): -0.3,
}
#: outcomes not recorded after a treatment (no anastomosis, no resection)
NOT_APPLICABLE = {"definitive_chemoradiation": {"anastomotic_leak", "radical_resection"}}

#: the complication that lengthens the stay, adds costs and worsens the follow-up PROM, per condition
DRIVER_OUTCOME = {
    "oesophageal_cancer": "severe_complication",
    "colorectal_cancer": "severe_complication",
    "thyroid_cancer": "reoperation_30d",
    "hip_osteoarthritis": "complication_90d",
    "knee_osteoarthritis": "complication_90d",
}

#: length of stay (days): base, extra days with the driver complication, noise sd, days per unit of risk
LOS_PARAMS: dict[str, tuple[float, float, float, float]] = {
    "oesophageal_cancer": (11.0, 9.0, 4.0, 2.0),
    "colorectal_cancer": (5.5, 7.0, 2.5, 1.6),
    "thyroid_cancer": (1.3, 2.0, 0.6, 0.4),
    "breast_cancer": (1.0, 1.0, 0.6, 0.3),
    "hip_osteoarthritis": (2.3, 2.0, 0.9, 0.6),
    "knee_osteoarthritis": (2.4, 2.0, 0.9, 0.6),
    "heart_failure": (7.5, 0.0, 3.5, 1.5),
}
DEFAULT_LOS = (3.0, 2.0, 1.5, 0.8)
LOS_TREATMENT_SHIFT = {"definitive_chemoradiation": -7.0, "mastectomy": 1.0, "device_therapy": 1.0,
                       "hip_resurfacing": -0.3, "unicompartmental_knee_arthroplasty": -0.8}  # fmt: skip
#: weights of the case-mix risk components in length of stay and the PROM latent state
LOS_WEIGHTS = {"age": 0.8, "sex": 0.0, "asa": 1.0, "charlson": 1.0, "bmi": 0.3, "stage": 0.3, "nyha": 1.0,
               "lvef": 0.5, "smoking": 0.3}  # fmt: skip
PROM_WEIGHTS = {"age": 0.7, "sex": -0.3, "asa": 1.0, "charlson": 1.0, "bmi": 0.5, "stage": 0.5, "nyha": 1.2,
                "lvef": 1.0, "smoking": 0.5}  # fmt: skip

#: PROM latent health (SD units, higher = better) at baseline and follow-up: general, disease-specific
#: (joint for hip/knee; None = same as general), mental
PROM_LATENT: dict[str, dict[str, tuple[float, float] | None]] = {
    "hip_osteoarthritis": {"g": (-0.1, 0.5), "d": (-0.4, 1.85), "m": (0.2, 0.5)},
    "knee_osteoarthritis": {"g": (-0.1, 0.4), "d": (-0.35, 1.5), "m": (0.2, 0.4)},
    "oesophageal_cancer": {"g": (0.65, 0.5), "d": None, "m": (-0.1, 0.2)},
    "colorectal_cancer": {"g": (0.75, 0.9), "d": None, "m": (0.0, 0.3)},
    "breast_cancer": {"g": (1.0, 1.1), "d": None, "m": (-0.1, 0.3)},
    "thyroid_cancer": {"g": (1.1, 1.25), "d": None, "m": (0.0, 0.3)},
    "heart_failure": {"g": (-0.5, -0.25), "d": None, "m": (0.0, 0.15)},
}
DEFAULT_PROM_LATENT: dict[str, tuple[float, float] | None] = {"g": (0.0, 0.2), "d": None, "m": (0.0, 0.1)}
PROM_RHO = 0.55  # baseline -> follow-up persistence of the latent state
PROM_COMPLICATION = -0.5  # latent shift at follow-up after the driver complication
ITEM_DISCRIMINATION = 1.7

#: item response model: loadings on (general, disease-specific, mental), higher value is better, difficulty
#: (positive = more problems). Items not listed load on the general state, higher is better, difficulty 0.
_QLQ = {f"q{i}": ((1.0, 0.0, 0.0), False, 0.0) for i in range(1, 29)}
_QLQ.update({
    "q1": ((1.0, 0, 0), False, 0.4), "q2": ((1.0, 0, 0), False, 0.0), "q3": ((1.0, 0, 0), False, -1.2),
    "q4": ((1.0, 0, 0), False, -0.9), "q5": ((1.0, 0, 0), False, -2.2), "q8": ((0.7, 0, 0.3), False, -0.6),
    "q11": ((0.4, 0, 0.6), False, -0.2), "q14": ((1.0, 0, 0), False, -1.6), "q15": ((1.0, 0, 0), False, -2.4),
    "q16": ((1.0, 0, 0), False, -1.2), "q17": ((1.0, 0, 0), False, -1.2), "q18": ((0.8, 0, 0.2), False, 0.3),
    "q20": ((0.4, 0, 0.6), False, -0.8), "q21": ((0, 0, 1.0), False, 0.2), "q22": ((0, 0, 1.0), False, 0.5),
    "q23": ((0, 0, 1.0), False, -0.3), "q24": ((0, 0, 1.0), False, -0.1), "q25": ((0.5, 0, 0.5), False, -0.8),
    "q26": ((0.5, 0, 0.5), False, -0.5), "q27": ((0.5, 0, 0.5), False, -0.6), "q28": ((0.3, 0, 0.4), False, -1.4),
    "q29": ((0.7, 0, 0.3), True, -0.4), "q30": ((0.7, 0, 0.3), True, -0.4),
})  # fmt: skip
ITEM_MODEL: dict[str, dict[str, tuple[tuple[float, float, float], bool, float]]] = {
    "eq5d5l": {
        "MO": ((0.3, 0.7, 0.0), False, -0.9),
        "SC": ((0.8, 0.2, 0.0), False, -2.6),
        "UA": ((0.5, 0.5, 0.0), False, -1.1),
        "PD": ((0.2, 0.8, 0.0), False, -0.5),
        "AD": ((0.0, 0.0, 1.0), False, -2.0),
        "VAS": ((0.6, 0.2, 0.2), True, -0.9),
    },
    "qlq_c30": _QLQ,
    "oxford_hip": {f"i{i}": ((0.1, 0.9, 0.0), True, 0.0) for i in range(1, 13)},
    "oxford_knee": {f"i{i}": ((0.1, 0.9, 0.0), True, 0.0) for i in range(1, 13)},
    "promis10": {
        "Global01": ((0.6, 0.0, 0.4), True, 0.0),
        "Global02": ((0.3, 0.0, 0.7), True, -0.2),
        "Global03": ((1.0, 0.0, 0.0), True, 0.2),
        "Global04": ((0.0, 0.0, 1.0), True, -0.2),
        "Global05": ((0.3, 0.0, 0.7), True, 0.0),
        "Global06": ((1.0, 0.0, 0.0), True, -0.6),
        "Global07": ((0.8, 0.2, 0.0), False, -0.3),
        "Global08r": ((0.8, 0.0, 0.2), True, 0.0),
        "Global09r": ((0.5, 0.0, 0.5), True, -0.2),
        "Global10r": ((0.0, 0.0, 1.0), True, -0.4),
    },
}
#: item difficulty tweaks per instrument item for joint-specific scores (Oxford items differ a little)
_OXFORD_DIFFICULTY = (0.3, -0.2, 0.1, 0.0, -0.3, 0.2, 0.4, -0.1, 0.0, 0.3, -0.4, -0.2)
for _inst in ("oxford_hip", "oxford_knee"):
    for _k, _b in enumerate(_OXFORD_DIFFICULTY):
        _lo, _hb, _ = ITEM_MODEL[_inst][f"i{_k + 1}"]
        ITEM_MODEL[_inst][f"i{_k + 1}"] = (_lo, _hb, _b)

#: questionnaire response: logit at baseline and at follow-up (not having answered at baseline)
RESPONSE_LOGIT = {"baseline": 0.75, "followup": -0.7}
RESPONSE_CONDITION_SHIFT = {"heart_failure": 0.1, "oesophageal_cancer": 0.05, "hip_osteoarthritis": 0.2,
                            "knee_osteoarthritis": 0.2, "thyroid_cancer": 0.1}  # fmt: skip
RESPONSE_BASELINE_BONUS = 1.0  # log-odds: having answered at baseline
RESPONSE_AGE = -0.008  # log-odds per year of age above 65
RESPONSE_HEALTH = 0.1  # log-odds per SD of the general latent state
ITEM_SKIP = 0.03  # share of questionnaires with one skipped item
CASEMIX_MISSING = 0.01  # share of missing values per non-age case-mix variable

#: operating theatre minutes per treatment (0 = no operation)
OR_MINUTES = {
    "oesophagectomy": 330, "definitive_chemoradiation": 0, "total_thyroidectomy": 120, "hemithyroidectomy": 80,
    "breast_conserving_surgery": 75, "mastectomy": 105, "colectomy": 170, "rectal_resection": 230,
    "total_hip_arthroplasty": 85, "hip_resurfacing": 100, "total_knee_arthroplasty": 95,
    "unicompartmental_knee_arthroplasty": 80, "medical_therapy": 0, "device_therapy": 0,
}  # fmt: skip
DEFAULT_OR_MINUTES = 120
OUTPATIENT_VISITS = {"oesophageal_cancer": 8, "colorectal_cancer": 7, "breast_cancer": 7, "thyroid_cancer": 6,
                     "hip_osteoarthritis": 3, "knee_osteoarthritis": 3, "heart_failure": 6}  # fmt: skip
IMAGING = {"oesophageal_cancer": 3, "colorectal_cancer": 3, "breast_cancer": 2, "thyroid_cancer": 1,
           "hip_osteoarthritis": 0, "knee_osteoarthritis": 0, "heart_failure": 1}  # fmt: skip
PRICE_SPREAD = 0.13  # hospital rates per activity vary +-13 % (balanced per condition team, see _price_factors)

#: follow-up window (days) of outcomes without a _30d/_90d/_6m/_12m/_1y/_2y suffix
OUTCOME_WINDOW = {"anastomotic_leak": 30, "severe_complication": 30, "reexcision": 90,
                  "surgical_site_infection": 30, "radical_resection": 14, "permanent_hypoparathyroidism": 365,
                  "recurrent_nerve_palsy": 365}  # fmt: skip
DEFAULT_OUTCOME_WINDOW = 30

# --- planted truth ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedOutcome:
    """A unit effect on a binary outcome, as an odds ratio."""

    condition: str
    outcome: str
    hospital: str
    odds_ratio: float
    note: str


@dataclass(frozen=True)
class PlantedStay:
    condition: str
    hospital: str
    days: float
    note: str


@dataclass(frozen=True)
class PlantedProm:
    """A shift of the latent state behind one instrument's items at one timepoint (Oxford: points via scoring)."""

    condition: str
    instrument: str
    timepoint: str
    hospital: str
    latent_shift: float
    note: str


@dataclass(frozen=True)
class PlantedResponse:
    condition: str
    timepoint: str
    hospital: str
    odds_ratio: float
    note: str


@dataclass(frozen=True)
class PlantedCost:
    condition: str
    hospital: str
    extra: dict[str, int]  # activity -> extra quantity per cycle
    note: str


@dataclass(frozen=True)
class CaseMixOnly:
    condition: str
    hospital: str
    age_shift: float
    charlson_factor: float
    asa_shift: float
    note: str


PLANTED_OUTCOMES = (
    PlantedOutcome("colorectal_cancer", "anastomotic_leak", "H01", 2.0,
                   "own hospital: more anastomotic leaks than expected for its case-mix"),
    PlantedOutcome("oesophageal_cancer", "radical_resection", "H07", 0.4,
                   "fewer radical (R0) resections than expected"),
    PlantedOutcome("breast_cancer", "reexcision", "H05", 2.4, "more re-excisions for positive margins"),
    PlantedOutcome("hip_osteoarthritis", "revision_1y", "H07", 3.5, "more revisions within a year"),
    PlantedOutcome("heart_failure", "hf_readmission_1y", "H03", 0.45, "fewer heart failure readmissions"),
    PlantedOutcome("thyroid_cancer", "permanent_hypoparathyroidism", "H04", 3.0,
                   "more permanent hypoparathyroidism"),
    PlantedOutcome("breast_cancer", "surgical_site_infection", "H02", 0.25, "fewer surgical site infections"),
    PlantedOutcome("oesophageal_cancer", "mortality_30d", "H06", 3.5,
                   "higher 30-day mortality (deaths also remove patients from the 12-month PROM)"),
    PlantedOutcome("hip_osteoarthritis", "readmission_30d", "H01", 2.5,
                   "own hospital: more readmissions within 30 days after a hip replacement than expected"),
)  # fmt: skip


@dataclass(frozen=True)
class PlantedImprovement:
    """An improvement action's real effect: from `start` (index date) on, the unit's planted odds ratio of the
    outcome becomes `odds_ratio` (the demo's second action on the outlier starts that day, vbhc.demo_history)."""

    condition: str
    outcome: str
    hospital: str
    start: date
    odds_ratio: float
    note: str


#: Two, in different condition teams (and departments) of the own hospital, each on an outcome that drives nothing
#: else in the generator (not a DRIVER_OUTCOME, not a death), so its change shows in that indicator only. Sized so
#: that at the default 50,000 cycles the year after the start differs from the year before by more than chance
#: (vbhc.action_effect): leaks about 22% -> 12% of about 215 resections a year, hip readmissions about 9% -> 3% of
#: about 350 replacements a year.
PLANTED_IMPROVEMENTS = (
    PlantedImprovement("colorectal_cancer", "anastomotic_leak", "H01", date(2024, 10, 1), 0.8,
                       "improvement programme from 1 Oct 2024: the excess of leaks is gone (odds ratio 0.8)"),
    PlantedImprovement("hip_osteoarthritis", "readmission_30d", "H01", date(2024, 7, 1), 0.8,
                       "discharge and aftercare programme from 1 Jul 2024: the excess of readmissions is gone "
                       "(odds ratio 0.8)"),
)  # fmt: skip
PLANTED_STAYS = (PlantedStay("colorectal_cancer", "H03", 1.0, "longer length of stay (+1 day)"),)
PLANTED_PROMS = (
    PlantedProm("knee_osteoarthritis", "oxford_knee", "12m", "H09", -0.55,
                "less improvement in the Oxford Knee Score (about -4.5 points)"),
    PlantedProm("knee_osteoarthritis", "oxford_knee", "12m", "H05", 0.6,
                "more improvement in the Oxford Knee Score (about +4 points; balances H09 in the benchmark)"),
)  # fmt: skip
PLANTED_RESPONSES = (
    PlantedResponse("hip_osteoarthritis", "12m", "H04", 0.55, "poor PROM follow-up logistics"),
    PlantedResponse("heart_failure", "6m", "H07", 2.0, "nurse-led PROM follow-up: better response"),
)
PLANTED_COSTS = (
    PlantedCost("colorectal_cancer", "H03", {"operating_theatre": 60, "imaging": 1},
                "longer operations (+60 min), an extra scan and the longer stay make care cycles more expensive"),
)  # fmt: skip
CASEMIX_ONLY = CaseMixOnly(
    "colorectal_cancer", "H06", 8.0, 1.5, 0.3,
    "treats older, sicker patients (about 8 years older, higher ASA and Charlson); crude mortality and "
    "complication rates are higher but the true unit effect is zero: adjustment should remove the signal",
)  # fmt: skip


@dataclass(frozen=True)
class PlantedSurvival:
    """A unit effect on long-term survival, as a hazard ratio (vital status file only)."""

    condition: str
    hospital: str
    hazard_ratio: float
    note: str


#: The survival outlier; the case-mix-only unit of survival is CASEMIX_ONLY (older, sicker: higher crude
#: mortality from the case-mix hazard alone, true effect zero).
PLANTED_SURVIVAL = (
    PlantedSurvival("colorectal_cancer", "H08", 2.2, "worse overall survival than expected for its case-mix"),
)
#: Vital status: deaths after the early-mortality windows follow an exponential hazard per year (at the
#: condition's average patient) times exp(log hazard ratios of the case-mix below); a share of patients is
#: lost to follow-up at a uniform date between the index date and AS_OF.
SURVIVAL_RATE = {"oesophageal_cancer": 0.22, "colorectal_cancer": 0.09, "breast_cancer": 0.03,
                 "thyroid_cancer": 0.012}  # fmt: skip
DEFAULT_SURVIVAL_RATE = 0.05
SURVIVAL_LOG_HR = {"age": 0.035, "asa": 0.3, "charlson": 0.15, "stage": 0.55, "sex_M": 0.15}  # per year/step
LOST_TO_FOLLOW_UP = 0.02
FOLLOW_UP_FILE = "clinical_outcomes_follow_up.csv"
_FOLLOW_UP_STREAM = 2**31 - 2  #: spawn key of the vital-status random stream (blocks use 0.., prices 2**31 - 1)

# --- public API ----------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    files: list[Path]  # in import order: units, care_cycles, clinical_outcomes, prom_responses, costs
    truth_path: Path
    counts: dict[str, int]  # rows per table
    #: vital status per cancer care cycle (clinical_outcomes format), see write_follow_up
    follow_up: Path | None = None
    #: patient-experience answers of every unit (vbhc.demo_prems), and their number of rows
    prems: Path | None = None
    prem_rows: int = 0

    def import_order(self) -> list[Path]:
        """Every file to import, the vital status before clinical_outcomes.csv: that file is then the table's
        last import, so importing the five demo files again is skipped as "nothing new", as without it."""
        files = list(self.files)
        if self.follow_up is not None:
            at = next(i for i, f in enumerate(files) if f.name == "clinical_outcomes.csv")
            files.insert(at, self.follow_up)
        if self.prems is not None:
            files.append(self.prems)
        return files


TABLES = ("units", "care_cycles", "clinical_outcomes", "prom_responses", "costs")


def generate_demo(
    out_dir: Path,
    cycles: int = DEFAULT_CYCLES,
    seed: int = DEFAULT_SEED,
    progress: Progress | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    block_size: int = BLOCK_SIZE,
    catalog: Catalog | None = None,
) -> DemoResult:
    """Write a synthetic registry (units.xlsx and four CSV files) and truth.json into out_dir.

    progress(stage, done, total) is called with stage "cycles" after every block of generated cycles and
    with "truth" at the end. chunk_size (cycles held in memory before appending to the CSV files) does not
    change the output; block_size does (it fixes which random numbers each cycle gets).
    """
    if cycles < 1:
        raise ValueError(f"cycles must be at least 1, got {cycles}")
    if block_size < 1 or chunk_size < 1:
        raise ValueError("block_size and chunk_size must be positive")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = _Model(catalog or default_catalog(), seed, cycles)

    files = [out_dir / "units.xlsx"] + [out_dir / f"{t}.csv" for t in TABLES[1:]]
    counts = dict.fromkeys(TABLES, 0)
    counts["units"] = _write_units(files[0], model)
    if progress:
        progress("cycles", 0, cycles)

    handles = [f.open("w", encoding="utf-8", newline="") for f in files[1:]]
    try:
        n_blocks = -(-cycles // block_size)
        blocks_per_chunk = max(1, chunk_size // block_size)
        pending: list[_Block] = []
        for b in range(n_blocks):
            start, stop = b * block_size, min(cycles, (b + 1) * block_size)
            pending.append(model.block(b, start, stop))
            if len(pending) == blocks_per_chunk or b == n_blocks - 1:
                for table, n in _write_chunk(pending, model, handles, first=b < blocks_per_chunk).items():
                    counts[table] += n
                pending = []
            if progress:
                progress("cycles", stop, cycles)
    finally:
        for fh in handles:
            fh.close()

    prems, prem_rows, prem_truth = _write_prems(out_dir, model, seed, cycles)
    truth_path = out_dir / "truth.json"
    truth = model.truth(counts) | {"prem": prem_truth}
    truth_path.write_text(json.dumps(truth, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if progress:
        progress("truth", 1, 1)
    follow = write_follow_up(out_dir, seed, catalog or default_catalog())
    return DemoResult(
        files=files, truth_path=truth_path, counts=counts, follow_up=follow, prems=prems, prem_rows=prem_rows
    )


def _write_prems(out_dir: Path, model: _Model, seed: int, cycles: int) -> tuple[Path, int, dict[str, Any]]:
    """Patient-experience answers for every unit of the units file, about half a respondent per care cycle."""
    from vbhc.demo_prems import RESPONDENTS_PER_CYCLE, write_prem_responses

    units = [
        (h.code, d, h.size)
        for h in model.hosp
        for d in sorted({d for (_, code), d in model.dept.items() if code == h.code})
    ]
    respondents = max(1, round(cycles * RESPONDENTS_PER_CYCLE))
    return write_prem_responses(out_dir, units, respondents, seed, FIRST_INDEX, LAST_INDEX, model.cat)


# --- the model -----------------------------------------------------------------------------------------


def _logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _window(outcome_id: str) -> int:
    if outcome_id in OUTCOME_WINDOW:
        return OUTCOME_WINDOW[outcome_id]
    m = re.search(r"_(\d+)(d|m|y)$", outcome_id)
    if not m:
        return DEFAULT_OUTCOME_WINDOW
    n, unit = int(m.group(1)), m.group(2)
    return n if unit == "d" else (round(n * 30.4375) if unit == "m" else n * 365)


def _sensitivity(outcome_id: str) -> dict[str, float]:
    if outcome_id in OUTCOME_SENSITIVITY:
        return OUTCOME_SENSITIVITY[outcome_id]
    for key, value in OUTCOME_SENSITIVITY.items():
        if key.endswith("*") and outcome_id.startswith(key[:-1]):
            return value
    return {}


@dataclass
class _Rows:
    """Columns of one output table for one block (numpy arrays), sorted by cycle and catalog order."""

    cols: dict[str, np.ndarray]


@dataclass
class _Block:
    start: int
    stop: int
    cycles: dict[str, np.ndarray]
    outcomes: _Rows
    proms: _Rows
    costs: _Rows


class _Acc:
    """Per-unit sums for truth.json, accumulated over blocks: key -> array (n_hospitals, n_fields)."""

    def __init__(self, n_hosp: int):
        self.n_hosp = n_hosp
        self.data: dict[tuple, np.ndarray] = {}

    def add(self, key: tuple, hosp: np.ndarray, *fields: np.ndarray) -> None:
        arr = self.data.get(key)
        if arr is None:
            arr = self.data[key] = np.zeros((self.n_hosp, len(fields)))
        for j, values in enumerate(fields):
            arr[:, j] += np.bincount(hosp, weights=np.asarray(values, dtype=np.float64), minlength=self.n_hosp)

    def get(self, key: tuple) -> np.ndarray | None:
        return self.data.get(key)


class _Model:
    def __init__(self, catalog: Catalog, seed: int, cycles: int):
        self.cat, self.seed, self.n_total = catalog, int(seed), int(cycles)
        self.conds: list[Condition] = list(catalog.conditions.values())
        self.hosp = HOSPITALS
        self.hosp_codes = [h.code for h in HOSPITALS]
        nh = len(HOSPITALS)
        shares = np.array([CONDITION_SHARE.get(c.id, DEFAULT_CONDITION_SHARE) for c in self.conds])
        self.cond_share = shares / shares.sum()
        # hospital weights per condition (0 where not treated) and department per (condition, hospital)
        self.weights = np.zeros((len(self.conds), nh))
        self.dept: dict[tuple[str, str], str] = {}
        for ci, c in enumerate(self.conds):
            for hi, h in enumerate(HOSPITALS):
                if c.id in h.not_treated:
                    continue
                self.weights[ci, hi] = h.size
                self.dept[(c.id, h.code)] = h.departments.get(c.id, DEFAULT_DEPARTMENT.get(c.id, "SUR"))
            self.weights[ci] /= self.weights[ci].sum()
        self.dept_codes = list(DEPARTMENTS)
        self.casemix_cols = [v for v in STORED_CASEMIX if any(v in c.casemix_names for c in self.conds)]
        # category vocabularies for the output
        self.cond_ids = [c.id for c in self.conds]
        self.treatments = sorted({t for c in self.conds for t in c.treatments})
        self.outcome_ids = sorted({o.id for c in self.conds for o in c.outcomes})
        self.instrument_ids = sorted({p.instrument for c in self.conds for p in c.proms})
        self.timepoint_ids = sorted({t.id for c in self.conds for t in c.timepoints})
        self.item_ids = sorted({i.id for inst in self.instrument_ids for i in catalog.instruments[inst].items})
        self.activity_ids = sorted({a for c in self.conds for a in c.cost_activities})
        self.category_codes: dict[str, list[str]] = {}
        for name in self.casemix_cols:
            if STORED_CASEMIX[name] == "category":
                codes: list[str] = []
                for c in self.conds:
                    for v in c.casemix:
                        if v.name == name:
                            codes += [x for x in v.codes if x not in codes]
                self.category_codes[name] = codes
        # index dates: 5 years, mild upward trend, fewer operations at weekends, in summer and at Christmas
        days = np.arange(_day(FIRST_INDEX), _day(LAST_INDEX) + 1)
        dt = days.astype("datetime64[D]")
        weekday = (days + 3) % 7  # 0 = Monday
        month = dt.astype("datetime64[M]").astype(int) % 12 + 1
        w = 1.0 + 0.15 * (days - days[0]) / (days[-1] - days[0])
        w = w * np.where(weekday >= 5, 0.08, 1.0) * np.where(np.isin(month, (7, 8)), 0.8, 1.0)
        mday = (dt - dt.astype("datetime64[M]")).astype(int) + 1
        w = w * np.where((month == 12) & (mday >= 20), 0.5, 1.0)
        holiday = ((month == 1) & (mday == 1)) | ((month == 12) & np.isin(mday, (25, 26)))
        w = w * np.where(holiday, 0.08, 1.0)
        self.date_days = days
        self.date_cdf = np.cumsum(w) / w.sum()
        self.acc = _Acc(nh)
        self._planted_index()
        self.price = self._price_factors()

    # -- planted effects as lookups ----------------------------------------------------------------

    def _planted_index(self) -> None:
        hidx = {h: i for i, h in enumerate(self.hosp_codes)}
        known = {c.id: c for c in self.conds}

        def ok(cond: str, hosp: str) -> bool:
            return cond in known and hosp in hidx and (cond, hosp) in self.dept

        self.p_outcome = {
            (p.condition, p.outcome): p
            for p in PLANTED_OUTCOMES
            if ok(p.condition, p.hospital) and p.outcome in {o.id for o in known[p.condition].outcomes}
        }
        self.p_improvement = {
            (p.condition, p.outcome): p
            for p in PLANTED_IMPROVEMENTS
            if ok(p.condition, p.hospital) and p.outcome in {o.id for o in known[p.condition].outcomes}
        }
        self.p_stay = {
            p.condition: p
            for p in PLANTED_STAYS
            if ok(p.condition, p.hospital) and "length_of_stay" in {o.id for o in known[p.condition].outcomes}
        }
        self.p_prom: dict[tuple[str, str, str], list[PlantedProm]] = {}
        for p in PLANTED_PROMS:
            if ok(p.condition, p.hospital) and any(
                u.instrument == p.instrument and p.timepoint in u.timepoints for u in known[p.condition].proms
            ):
                self.p_prom.setdefault((p.condition, p.instrument, p.timepoint), []).append(p)
        self.p_response = {
            (p.condition, p.timepoint): p
            for p in PLANTED_RESPONSES
            if ok(p.condition, p.hospital) and p.timepoint in {t.id for t in known[p.condition].timepoints}
        }
        self.p_cost = {p.condition: p for p in PLANTED_COSTS if ok(p.condition, p.hospital)}
        self.prom_tracked = {
            (p.condition, p.instrument)
            for plist in self.p_prom.values()
            for p in plist
            if self.cat.instruments[p.instrument].scoring == "oxford"
        }
        self.casemix_only = CASEMIX_ONLY if ok(CASEMIX_ONLY.condition, CASEMIX_ONLY.hospital) else None
        self.hidx = hidx

    def _unit_mask(self, hosp: np.ndarray, code: str) -> np.ndarray:
        return hosp == self.hidx[code]

    # -- hospital rates ----------------------------------------------------------------------------

    def _price_factors(self) -> dict[str, np.ndarray]:
        """Rate factor per (condition, hospital, activity), spread +-PRICE_SPREAD but balanced so that a
        hospital's expected cost per cycle equals the benchmark's (rates differ, the unit effect is zero).
        The balancing weights are each activity's expected share of the cost, from a fixed pilot sample."""
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(2**31 - 1,)))
        out = {}
        for ci, c in enumerate(self.conds):
            pilot = self._condition(rng, ci, np.zeros(4000, dtype=np.int64), None, reference=True)
            typical = np.array([self.cat.cost_activities[a].typical_unit_cost_eur for a in c.cost_activities])
            mean_q = np.array([pilot["quantity"][a].mean() for a in c.cost_activities])
            w = typical * mean_q
            raw = 1.0 + rng.uniform(-PRICE_SPREAD, PRICE_SPREAD, size=(len(self.hosp), len(c.cost_activities)))
            out[c.id] = raw / ((raw @ w) / w.sum())[:, None]
        return out

    # -- one block of cycles -----------------------------------------------------------------------

    def block(self, b: int, start: int, stop: int) -> _Block:
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(b,)))
        n = stop - start
        q = (np.arange(start, stop) + rng.random(n)) / self.n_total
        day = self.date_days[np.minimum(np.searchsorted(self.date_cdf, q), len(self.date_days) - 1)]
        cond = rng.choice(len(self.conds), size=n, p=self.cond_share)
        hosp = np.zeros(n, dtype=np.int64)
        for ci in range(len(self.conds)):
            m = cond == ci
            hosp[m] = rng.choice(len(self.hosp), size=int(m.sum()), p=self.weights[ci])
        pid = rng.integers(0, 2**48, size=n, dtype=np.int64)

        # age and sex first, so that a patient's second cycle can inherit them
        age = np.zeros(n)
        male = np.zeros(n, dtype=bool)
        for ci, c in enumerate(self.conds):
            m = np.flatnonzero(cond == ci)
            age[m], male[m] = self._age_sex(rng, c, hosp[m], len(m))
        # ~1.5 % of cycles are a patient's second cycle (same sex; age follows the calendar)
        second = rng.random(n) < 0.015
        second[0] = False
        first_pool = np.flatnonzero(~second)
        cand = np.flatnonzero(second)
        before = np.searchsorted(first_pool, cand)  # number of first cycles before each candidate
        pick = first_pool[np.minimum((rng.random(len(cand)) * before).astype(np.int64), len(first_pool) - 1)]
        valid = (before > 0) & (male[pick] == male[cand])
        _, first_use = np.unique(pick, return_index=True)
        once = np.zeros(len(cand), dtype=bool)
        once[first_use] = True
        valid &= once
        cand, pick = cand[valid], pick[valid]
        pid[cand] = pid[pick]
        age[cand] = age[pick] + (day[cand] - day[pick]) // 365
        # the later cycle may be of another condition or past the catalog's maximum age: keep it in range
        for ci, c in enumerate(self.conds):
            limits = {v.name: v for v in c.casemix}.get("age")
            if limits is not None:
                m = cond == ci
                age[m] = np.clip(age[m], limits.min, limits.max)

        cyc: dict[str, Any] = {
            "cond": cond,
            "hosp": hosp,
            "day": day,
            "pid": pid,
            "dept": np.zeros(n, dtype=np.int64),
            "treatment": np.zeros(n, dtype=np.int64),
        }
        for name in self.casemix_cols:
            cyc[name] = np.full(n, np.nan)
        parts: dict[str, list[tuple[np.ndarray, dict[str, np.ndarray]]]] = {"o": [], "p": [], "c": []}
        for ci, c in enumerate(self.conds):
            m = np.flatnonzero(cond == ci)
            if len(m) == 0:
                continue
            res = self._condition(rng, ci, hosp[m], {"age": age[m], "male": male[m], "day": day[m]})
            for h in np.unique(hosp[m]):
                cyc["dept"][m[hosp[m] == h]] = self.dept_codes.index(self.dept[(c.id, self.hosp_codes[h])])
            cyc["treatment"][m] = np.array([self.treatments.index(t) for t in c.treatments])[res["treatment"]]
            for name, values in res["casemix_out"].items():
                cyc[name][m] = values
            for tag in ("o", "p", "c"):
                rows = res[tag]
                rows["cycle"] = m[rows["cycle"]]
                parts[tag].append(rows)
        return _Block(
            start,
            stop,
            cyc,
            self._rows(parts["o"], ("cycle", "outcome_pos")),
            self._rows(parts["p"], ("cycle", "tp_pos", "inst_pos", "item_pos")),
            self._rows(parts["c"], ("cycle", "act_pos")),
        )

    @staticmethod
    def _rows(parts: list[dict[str, np.ndarray]], order: tuple[str, ...]) -> _Rows:
        cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
        if not cols:
            return _Rows({})
        order_ = np.lexsort(tuple(cols[k] for k in reversed(order)))
        return _Rows({k: v[order_] for k, v in cols.items()})

    # -- case-mix ----------------------------------------------------------------------------------

    def _age_sex(self, rng: np.random.Generator, c: Condition, hosp: np.ndarray, n: int, reference: bool = False):
        p = CASEMIX.get(c.id, CaseMixParams())
        var = {v.name: v for v in c.casemix}
        mean = np.full(n, float(p.age[0]))
        if self.casemix_only and self.casemix_only.condition == c.id and not reference:
            mean[self._unit_mask(hosp, self.casemix_only.hospital)] += self.casemix_only.age_shift
        age = np.rint(rng.normal(mean, p.age[1]))
        if "age" in var:
            age = np.clip(age, var["age"].min, var["age"].max)
        male = rng.random(n) < p.male
        return age, male

    def _condition(
        self,
        rng: np.random.Generator,
        ci: int,
        hosp: np.ndarray,
        given: dict[str, np.ndarray] | None,
        reference: bool = False,
    ) -> dict[str, Any]:
        """Everything about n cycles of one condition. reference=True: benchmark patients, no unit effects
        and no output rows (used for the pilot sample that balances hospital rates)."""
        c = self.conds[ci]
        n = len(hosp)
        p = CASEMIX.get(c.id, CaseMixParams())
        var = {v.name: v for v in c.casemix}
        if given is None:
            age, male = self._age_sex(rng, c, hosp, n, reference)
            day = np.full(n, _day(date(2023, 1, 1)))
        else:
            age, male, day = given["age"], given["male"], given["day"]
        cmo = None if reference else self.casemix_only
        cm_unit = np.zeros(n, dtype=bool)
        if cmo is not None and cmo.condition == c.id:
            cm_unit = self._unit_mask(hosp, cmo.hospital)

        # true case-mix values (output masks some as missing); categories as integer codes
        x: dict[str, np.ndarray] = {}
        risk: dict[str, np.ndarray] = {}  # centred contributions in log-odds units (before sensitivities)
        ref_age = float(p.age[0])
        x["age"] = age
        risk["age"] = BETA["age"] * (age - ref_age)
        if "sex" in var:
            codes = var["sex"].codes
            if "M" in codes and "F" in codes:
                x["sex"] = np.where(male, codes.index("M"), codes.index("F")).astype(float)
            else:
                x["sex"] = rng.integers(0, len(codes), n).astype(float)
            risk["sex"] = BETA["sex"] * (male - p.male)
        lam = p.charlson * np.exp(0.03 * (age - ref_age))
        if cm_unit.any():
            lam = np.where(cm_unit, lam * cmo.charlson_factor, lam)
        charlson = rng.poisson(lam).astype(float)
        if "charlson" in var:
            charlson = np.clip(charlson, var["charlson"].min, var["charlson"].max)
            x["charlson"] = charlson
            risk["charlson"] = BETA["charlson"] * (charlson - p.charlson)
        asa_raw = 1.25 + 0.03 * (age - 60) + 0.3 * np.minimum(charlson, 5) + rng.normal(0, 0.55, n)
        if cm_unit.any():
            asa_raw = asa_raw + np.where(cm_unit, cmo.asa_shift, 0.0)
        if "asa" in var:
            asa = np.clip(np.rint(asa_raw), var["asa"].min, min(4, var["asa"].max))
            x["asa"] = asa
            risk["asa"] = BETA["asa"] * (asa - 2.0)
        if "bmi" in var:
            bmi = np.round(np.exp(rng.normal(np.log(p.bmi), 0.16, n)), 1)
            bmi = np.clip(bmi, var["bmi"].min, var["bmi"].max)
            x["bmi"] = bmi
            risk["bmi"] = BETA["bmi"] * (bmi - p.bmi)
        stage_idx = np.zeros(n)
        if "stage" in var:
            k = len(var["stage"].codes)
            probs = np.array(p.stage if len(p.stage) == k else [1.0 / k] * k)
            stage_idx = rng.choice(k, size=n, p=probs / probs.sum()).astype(float)
            x["stage"] = stage_idx
            risk["stage"] = BETA["stage"] * (stage_idx - float(np.dot(np.arange(k), probs / probs.sum())))
        if "nyha" in var:
            lo, hi = int(var["nyha"].min), int(var["nyha"].max)
            k = hi - lo + 1
            probs = np.array(p.nyha if len(p.nyha) == k else [1.0 / k] * k)
            nyha = lo + rng.choice(k, size=n, p=probs / probs.sum())
            x["nyha"] = nyha.astype(float)
            risk["nyha"] = BETA["nyha"] * (nyha - (lo + float(np.dot(np.arange(k), probs / probs.sum()))))
        if "lvef" in var:
            lvef = np.clip(np.rint(rng.normal(p.lvef[0], p.lvef[1], n)), var["lvef"].min, var["lvef"].max)
            x["lvef"] = lvef
            risk["lvef"] = BETA["lvef"] * (lvef - p.lvef[0])
        if "smoking" in var:
            codes = var["smoking"].codes
            k = len(codes)
            probs = np.array(p.smoking if len(p.smoking) == k else [1.0 / k] * k)
            sm = rng.choice(k, size=n, p=probs / probs.sum())
            x["smoking"] = sm.astype(float)
            lo_odds = np.array([SMOKING_LOGODDS.get(code, 0.0) for code in codes])
            risk["smoking"] = BETA["smoking"] * (lo_odds[sm] - float(np.dot(lo_odds, probs / probs.sum())))
        names = list(risk)
        R = np.column_stack([risk[v] for v in names])

        # treatment (depends on stage only, identically in every hospital)
        if len(c.treatments) >= 2 and c.id in TREATMENT_CHOICE:
            p_alt, slope = TREATMENT_CHOICE[c.id]
            mean_stage = 0.0
            if "stage" in var:
                k = len(var["stage"].codes)
                probs = np.array(p.stage if len(p.stage) == k else [1.0 / k] * k)
                mean_stage = float(np.dot(np.arange(k), probs / probs.sum()))
            alt = rng.random(n) < _expit(_logit(p_alt) + slope * (stage_idx - mean_stage))
            treatment = alt.astype(np.int64)
        else:
            treatment = rng.integers(0, len(c.treatments), n)
        trt_name = np.array(c.treatments)[treatment]

        # binary outcomes
        res: dict[str, Any] = {"treatment": treatment}
        y_of: dict[str, np.ndarray] = {}
        p_of: dict[str, np.ndarray] = {}
        death_day = np.full(n, 10**7, dtype=np.int64)
        o_rows: dict[str, list[np.ndarray]] = {"cycle": [], "outcome_pos": [], "value": [], "day": []}
        o_pos = {o.id: j for j, o in enumerate(c.outcomes)}
        followed = {i.outcome for i in c.indicators if i.kind in SURVIVAL_KINDS}
        for o in c.outcomes:
            if o.id in followed:  # vital status: its own file and random stream (write_follow_up)
                continue
            if o.type != "binary":
                if o.id != "length_of_stay" and not reference:  # a numeric outcome without a model here
                    lo_, hi_ = (o.min or 0.0), (o.max if o.max is not None else 100.0)
                    val = np.clip(np.rint(rng.normal((lo_ + hi_) / 2, (hi_ - lo_) / 8, n)), lo_, hi_)
                    idx = np.flatnonzero(day + DEFAULT_OUTCOME_WINDOW <= _AS_OF_DAY)
                    o_rows["cycle"].append(idx)
                    o_rows["outcome_pos"].append(np.full(len(idx), o_pos[o.id]))
                    o_rows["value"].append(val[idx].astype(np.int64))
                    o_rows["day"].append(day[idx] + DEFAULT_OUTCOME_WINDOW)
                continue
            sens = _sensitivity(o.id)
            coef = np.array([sens.get(v, 1.0) for v in names])
            lp = _logit(BASE_RISK.get((c.id, o.id), BASE_RISK.get(o.id, DEFAULT_BASE_RISK))) + (
                -1.0 if o.id in GOOD_OUTCOMES else 1.0
            ) * (R @ coef)
            for t_idx, t in enumerate(c.treatments):
                eff = TREATMENT_EFFECT.get((t, o.id))
                if eff:
                    lp = lp + np.where(treatment == t_idx, eff, 0.0)
            p0 = _expit(lp)
            p1 = p0
            planted = None if reference else self.p_outcome.get((c.id, o.id))
            if planted is not None:
                unit = self._unit_mask(hosp, planted.hospital)
                log_or = np.full(n, np.log(planted.odds_ratio))
                better = self.p_improvement.get((c.id, o.id))
                if better is not None and better.hospital == planted.hospital:
                    log_or[day >= _day(better.start)] = np.log(better.odds_ratio)
                p1 = np.where(unit, _expit(lp + log_or), p0)
            u = rng.random(n)
            y = u < p1
            y_of[o.id], p_of[o.id] = y, p0
            window = _window(o.id)
            event_day = day + 1 + (rng.random(n) * window).astype(np.int64)
            if o.id.startswith("mortality"):
                death_day = np.where(y, np.minimum(death_day, event_day), death_day)
            if reference:
                continue
            applicable = ~np.isin(trt_name, [t for t, s in NOT_APPLICABLE.items() if o.id in s])
            recorded = applicable & (day + window <= _AS_OF_DAY)
            if o.id == "radical_resection":
                out_day = day + 7 + (rng.random(n) * 8).astype(np.int64)
            else:
                out_day = np.where(y, event_day, day + window)
            idx = np.flatnonzero(recorded)
            o_rows["cycle"].append(idx)
            o_rows["outcome_pos"].append(np.full(len(idx), o_pos[o.id]))
            o_rows["value"].append(y[idx].astype(np.int64))
            o_rows["day"].append(out_day[idx])
            self.acc.add(
                (c.id, "outcome", o.id),
                hosp[idx],
                np.ones(len(idx)),
                y[idx],
                p0[idx],
                p1[idx],
                p0[idx] * (1 - p0[idx]),
                p1[idx] * (1 - p1[idx]),
                p0[idx] * (1 - p0[idx]) * (1 - 2 * p0[idx]),
            )

        # length of stay (days)
        driver_id = DRIVER_OUTCOME.get(c.id)
        driver = y_of.get(driver_id, np.zeros(n, dtype=bool)) if driver_id else np.zeros(n, dtype=bool)
        p_driver = p_of.get(driver_id, np.zeros(n)) if driver_id else np.zeros(n)
        base, extra, sd, per_risk = LOS_PARAMS.get(c.id, DEFAULT_LOS)
        los_lin = base + per_risk * (R @ np.array([LOS_WEIGHTS.get(v, 0.0) for v in names]))
        los_lin = los_lin + np.array([LOS_TREATMENT_SHIFT.get(t, 0.0) for t in c.treatments])[treatment]
        noise = (rng.gamma(2.0, 1.0, n) - 2.0) / np.sqrt(2.0) * sd
        shift = np.zeros(n)
        ps = None if reference else self.p_stay.get(c.id)
        if ps is not None:
            shift = np.where(self._unit_mask(hosp, ps.hospital), ps.days, 0.0)
        los0 = np.clip(np.rint(los_lin + extra * driver + noise), 0, 365)
        los1 = np.clip(np.rint(los_lin + extra * driver + noise + shift), 0, 365)
        if not reference and "length_of_stay" in o_pos:
            mu0 = los_lin + extra * p_driver
            resid = los1 - (mu0 + shift)
            recorded = day + los1 <= _AS_OF_DAY
            idx = np.flatnonzero(recorded)
            o_rows["cycle"].append(idx)
            o_rows["outcome_pos"].append(np.full(len(idx), o_pos["length_of_stay"]))
            o_rows["value"].append(los1[idx].astype(np.int64))
            o_rows["day"].append((day + los1)[idx].astype(np.int64))
            self.acc.add(
                (c.id, "stay"),
                hosp[idx],
                np.ones(len(idx)),
                los1[idx],
                los1[idx] ** 2,
                (los1 - mu0)[idx],
                shift[idx],
                resid[idx] ** 2,
            )

        # costs (quantities per activity; planted extras)
        q0 = self._quantities(rng, c, trt_name, x, stage_idx, driver, los0, n)
        res["quantity"] = q0
        if reference:
            return res
        q1 = dict(q0)
        if "ward_day" in q1:
            q1["ward_day"] = self._ward(los1, q0.get("icu_day"))
        pc = self.p_cost.get(c.id)
        if pc is not None:
            unit = self._unit_mask(hosp, pc.hospital)
            for act, more in pc.extra.items():
                if act in q1:
                    q1[act] = q1[act] + np.where(unit & (q1[act] > 0), more, 0)
        rates = self.price[c.id]  # (n_hosp, n_act)
        cost0 = np.zeros(n)
        cost1 = np.zeros(n)
        c_rows: dict[str, list[np.ndarray]] = {"cycle": [], "act_pos": [], "quantity": [], "unit_cost": []}
        for j, act in enumerate(c.cost_activities):
            price = np.round(self.cat.cost_activities[act].typical_unit_cost_eur * rates[hosp, j], 2)
            cost0 += q0[act] * price
            cost1 += q1[act] * price
            idx = np.flatnonzero(q1[act] > 0)
            c_rows["cycle"].append(idx)
            c_rows["act_pos"].append(np.full(len(idx), j))
            c_rows["quantity"].append(q1[act][idx].astype(np.int64))
            c_rows["unit_cost"].append(price[idx])
        self.acc.add((c.id, "cost"), hosp, np.ones(n), cost1, cost0, cost0**2)

        # PROMs
        res["p"] = self._proms(rng, c, hosp, age, R, names, trt_name, driver, death_day, day, x)
        res["o"] = {k: np.concatenate(v) for k, v in o_rows.items()}
        # nothing is dated after the death: the outcomes are drawn in catalog order, so an event (a readmission,
        # a leak) or the end of a window can fall after a mortality outcome drawn later; that row is then dated
        # the day of death (the event with the death, the window closed by it). Only dates move, no value or
        # random number, so the planted effects and truth.json stay as they were.
        res["o"]["day"] = np.minimum(res["o"]["day"], death_day[res["o"]["cycle"]])
        res["c"] = {k: np.concatenate(v) for k, v in c_rows.items()}

        # case-mix as written: ~1 % missing per non-age variable
        out = {}
        for name in c.casemix_names:
            values = x[name].astype(float)
            if STORED_CASEMIX[name] == "category":
                local = next(v.codes for v in c.casemix if v.name == name)
                values = np.array([self.category_codes[name].index(code) for code in local], dtype=float)[
                    values.astype(np.int64)
                ]
            if name != "age":
                values = np.where(rng.random(n) < CASEMIX_MISSING, np.nan, values)
            out[name] = values
        res["casemix_out"] = out
        return res

    @staticmethod
    def _ward(los: np.ndarray, icu: np.ndarray | None) -> np.ndarray:
        return np.maximum(los - (icu if icu is not None else 0), 0).astype(np.int64)

    def _quantities(self, rng, c, trt_name, x, stage_idx, driver, los, n) -> dict[str, np.ndarray]:
        q: dict[str, np.ndarray] = {}
        drv = driver.astype(np.int64)
        surgical = np.array([OR_MINUTES.get(t, DEFAULT_OR_MINUTES) > 0 for t in trt_name])
        stage_codes = [v.codes for v in c.casemix if v.name == "stage"]
        codes = stage_codes[0] if stage_codes else ()

        def stage_at_least(code: str) -> np.ndarray:
            if code not in codes:
                return np.zeros(n, dtype=bool)
            return stage_idx >= codes.index(code)

        for act in c.cost_activities:
            if act == "outpatient_visit":
                v = OUTPATIENT_VISITS.get(c.id, 4) + rng.poisson(2, n) + 2 * drv
            elif act == "imaging":
                base = IMAGING.get(c.id, 1)
                v = base + rng.poisson(0.3 if base == 0 else 1.0, n) + drv
            elif act == "endoscopy":
                v = (
                    (1 + rng.poisson(0.4, n))
                    if c.id in ("colorectal_cancer", "oesophageal_cancer")
                    else rng.poisson(0.2, n)
                )
            elif act == "operating_theatre":
                mean = np.array([OR_MINUTES.get(t, DEFAULT_OR_MINUTES) for t in trt_name], dtype=float)
                asa = x.get("asa", np.full(n, 2.0))
                minutes = mean * (1 + 0.05 * (asa - 2)) + rng.normal(0, 1, n) * 0.15 * mean + 40 * drv * (mean > 0)
                v = np.where(mean > 0, np.maximum(np.rint(minutes), 10), 0)
            elif act == "icu_day":
                if c.id == "oesophageal_cancer":
                    v = np.where(surgical, 1 + rng.poisson(0.5, n) + drv * rng.poisson(4, n), drv * rng.poisson(1, n))
                elif c.id == "colorectal_cancer":
                    v = (rng.random(n) < 0.08) * (1 + rng.poisson(0.5, n)) + drv * rng.poisson(2.5, n)
                elif c.id == "heart_failure":
                    v = (rng.random(n) < 0.06) * (1 + rng.poisson(1.5, n))
                else:
                    v = drv * rng.poisson(1, n)
                v = np.minimum(v, los) if los is not None else v
            elif act == "ward_day":
                v = self._ward(los, q.get("icu_day"))
            elif act == "chemotherapy_cycle":
                u = rng.random(n)
                if c.id == "breast_cancer":
                    p = np.where(stage_at_least("III"), 0.8, np.where(stage_at_least("II"), 0.4, 0.05))
                    v = (u < p) * (6 + rng.integers(-2, 3, n))
                elif c.id == "colorectal_cancer":
                    p = np.where(stage_at_least("IV"), 0.85, np.where(stage_at_least("III"), 0.75, 0.0))
                    v = (u < p) * np.where(
                        stage_at_least("IV"), 6 + rng.poisson(4, n), np.where(rng.random(n) < 0.5, 4, 8)
                    )
                elif c.id == "oesophageal_cancer":
                    v = np.where(trt_name == "definitive_chemoradiation", 6, (u < 0.85) * 5)
                else:
                    v = (u < 0.2) * 4
            elif act == "radiotherapy_fraction":
                u = rng.random(n)
                if c.id == "breast_cancer":
                    bcs = trt_name == "breast_conserving_surgery"
                    v = np.where(bcs, np.where(u < 0.9, 16, 5), np.where(stage_at_least("III"), 16, 0))
                elif c.id == "oesophageal_cancer":
                    v = np.where(trt_name == "definitive_chemoradiation", 28, (u < 0.85) * 23)
                else:
                    v = (u < 0.1) * 20
            elif act == "radioiodine_therapy":
                total = trt_name != "hemithyroidectomy"
                v = (total & (rng.random(n) < np.where(stage_at_least("II"), 0.9, 0.4))).astype(np.int64)
            elif act == "laboratory_test":
                v = (
                    {"thyroid_cancer": 3, "heart_failure": 5}.get(c.id, 2)
                    + rng.poisson({"thyroid_cancer": 2, "heart_failure": 4}.get(c.id, 1), n)
                    + drv
                )
            elif act == "implant":
                v = surgical.astype(np.int64)
            elif act == "physiotherapy_session":
                v = 2 + rng.poisson(4, n) + 2 * drv if c.id.endswith("osteoarthritis") else rng.poisson(1, n)
            elif act == "device_implantation":
                v = (trt_name == "device_therapy").astype(np.int64)
            else:
                v = rng.poisson(1.0, n)
            q[act] = np.asarray(v, dtype=np.int64)
        return q

    # -- PROMs -------------------------------------------------------------------------------------

    def _proms(self, rng, c, hosp, age, R, names, trt_name, driver, death_day, day, x) -> dict[str, np.ndarray]:
        n = len(hosp)
        lat = PROM_LATENT.get(c.id, DEFAULT_PROM_LATENT)
        g_par = lat.get("g") or (0.0, 0.2)
        d_par = lat.get("d")
        m_par = lat.get("m") or (0.0, 0.1)
        cm = -0.55 * (R @ np.array([PROM_WEIGHTS.get(v, 0.0) for v in names]))
        u = rng.normal(0, 1, n)
        e = rng.normal(0, 1, (n, 6))
        g0 = g_par[0] + cm + 0.7 * u + 0.55 * e[:, 0]
        m0 = m_par[0] + 0.4 * cm + 0.5 * u + 0.75 * e[:, 2]
        age_c = age - CASEMIX.get(c.id, CaseMixParams()).age[0]
        comp = PROM_COMPLICATION * driver
        g1 = g_par[1] + PROM_RHO * (g0 - g_par[0]) + 0.45 * cm + comp + 0.55 * e[:, 3]
        m1 = m_par[1] + PROM_RHO * (m0 - m_par[0]) + 0.2 * cm + 0.6 * e[:, 5]
        if d_par is None:
            d0, d1 = g0, g1
        else:
            d0 = d_par[0] + 0.3 * cm + 0.5 * u + 0.6 * e[:, 1]
            d1 = d_par[1] + PROM_RHO * (d0 - d_par[0]) + 0.3 * cm - 0.01 * age_c + comp + 0.55 * e[:, 4]
        states = {True: np.column_stack([g0, d0, m0]), False: np.column_stack([g1, d1, m1])}

        rows: dict[str, list[np.ndarray]] = {k: [] for k in ("cycle", "tp_pos", "inst_pos", "item_pos", "value", "day")}
        tp_ids = [t.id for t in c.timepoints]
        tp_all = [t for t in c.timepoints if any(t.id in use.timepoints for use in c.proms)]
        base_resp = np.zeros(n, dtype=bool)
        base_total: dict[str, np.ndarray] = {}  # tracked instruments: baseline total score (NaN = none)
        cond_shift = RESPONSE_CONDITION_SHIFT.get(c.id, 0.0)
        for tp in tp_all:
            is_base = tp.days == 0
            state = states[is_base]
            lp = cond_shift + RESPONSE_AGE * (age - 65) + RESPONSE_HEALTH * state[:, 0]
            if is_base:
                lp = lp + RESPONSE_LOGIT["baseline"]
                eligible = np.ones(n, dtype=bool)
                target = day
            else:
                lp = lp + RESPONSE_LOGIT["followup"] + RESPONSE_BASELINE_BONUS * base_resp
                target = day + tp.days
                eligible = target <= _AS_OF_DAY
            alive = death_day > target
            p0 = _expit(lp) * alive
            p1 = p0
            pr = self.p_response.get((c.id, tp.id))
            if pr is not None:
                p1 = np.where(self._unit_mask(hosp, pr.hospital), _expit(lp + np.log(pr.odds_ratio)) * alive, p0)
            resp = (rng.random(n) < p1) & eligible
            if is_base:
                base_resp = resp
                done = day - rng.integers(0, 31, n)
            else:
                slack = np.minimum(30, _AS_OF_DAY - target)
                done = target - 30 + (rng.random(n) * (slack + 31)).astype(np.int64)
                # answered while alive: the death comes after the target day, but the answer can be up to 30
                # days late; then it was given the day before the death (no random number changes)
                done = np.minimum(done, death_day - 1)
            el = np.flatnonzero(eligible)
            self.acc.add(
                (c.id, "response", tp.id),
                hosp[el],
                np.ones(len(el)),
                resp[el],
                p0[el],
                p1[el],
                p0[el] * (1 - p0[el]),
                p1[el] * (1 - p1[el]),
                p0[el] * (1 - p0[el]) * (1 - 2 * p0[el]),
            )
            idx = np.flatnonzero(resp)
            for k, use in enumerate(c.proms):
                if tp.id not in use.timepoints:
                    continue
                inst = self.cat.instruments[use.instrument]
                shift = np.zeros(len(idx))
                for planted in self.p_prom.get((c.id, use.instrument, tp.id), ()):
                    shift = np.where(self._unit_mask(hosp[idx], planted.hospital), planted.latent_shift, shift)
                values, values0 = self._items(rng, inst.id, list(inst.items), state[idx], shift)
                if (c.id, use.instrument) in self.prom_tracked:
                    self._track_prom(c, inst, tp, hosp, idx, values, values0, base_total, is_base, n)
                n_items = len(inst.items)
                keep = np.ones((len(idx), n_items), dtype=bool)
                skip = np.flatnonzero(rng.random(len(idx)) < ITEM_SKIP)
                keep[skip, rng.integers(0, n_items, len(skip))] = False
                r, col = np.nonzero(keep)
                rows["cycle"].append(idx[r])
                rows["tp_pos"].append(np.full(len(r), tp_ids.index(tp.id)))
                rows["inst_pos"].append(np.full(len(r), k))
                rows["item_pos"].append(col)
                rows["value"].append(values[r, col])
                rows["day"].append(done[idx][r])
        return {k: np.concatenate(v) if v else np.zeros(0, dtype=np.int64) for k, v in rows.items()}

    def _track_prom(self, c, inst, tp, hosp, idx, values, values0, base_total, is_base, n) -> None:
        """Total scores (sum of items = the Oxford scores) with and without the planted shift, for the
        counterfactual effect sizes in truth.json (same random numbers, so the difference is the effect)."""
        s1 = values.sum(axis=1).astype(float)
        s0 = values0.sum(axis=1).astype(float)
        if is_base:
            full = np.full(n, np.nan)
            full[idx] = s0
            base_total[inst.id] = full
            return
        h = hosp[idx]
        self.acc.add((c.id, "prom", inst.id, tp.id, "score"), h, np.ones(len(idx)), s1, s0, s0**2)
        if inst.id not in base_total:
            return
        b = base_total[inst.id][idx]
        both = ~np.isnan(b)
        ch1, ch0 = (s1 - b)[both], (s0 - b)[both]
        self.acc.add((c.id, "prom", inst.id, tp.id, "change"), h[both], np.ones(both.sum()), ch1, ch0, ch0**2)
        mic = inst.scales[0].mic if inst.scales else 0.0
        self.acc.add((c.id, "prom", inst.id, tp.id, "mic"), h[both], np.ones(both.sum()), ch1 >= mic, ch0 >= mic)

    def _items(self, rng, inst_id, items, theta, shift) -> tuple[np.ndarray, np.ndarray]:
        """Item responses from the latent state: graded logistic model, K-1 thresholds per item.
        Returns (values, values without the planted shift) using the same random numbers."""
        model = ITEM_MODEL.get(inst_id, {})
        n = theta.shape[0]
        n_items = len(items)
        L = np.array([model.get(i.id, ((1.0, 0.0, 0.0), True, 0.0))[0] for i in items])
        better = np.array([model.get(i.id, ((1.0, 0.0, 0.0), True, 0.0))[1] for i in items])
        b = np.array([model.get(i.id, ((1.0, 0.0, 0.0), True, 0.0))[2] for i in items])
        lo = np.array([i.min for i in items])
        hi = np.array([i.max for i in items])
        base = theta @ L.T - b  # (n, items)
        noise = rng.logistic(0.0, 1.0, (n, n_items))

        def respond(lat: np.ndarray) -> np.ndarray:
            good = np.zeros((n, n_items))
            for j in range(n_items):
                k = int(hi[j] - lo[j]) + 1
                if k > 12:  # near-continuous item (EQ VAS 0-100)
                    good[:, j] = np.rint(_expit(0.9 * lat[:, j] + 0.3 * noise[:, j]) * (k - 1))
                else:
                    tau = np.linspace(-3.0, 3.0, k - 1) if k > 2 else np.zeros(1)
                    z = ITEM_DISCRIMINATION * lat[:, j] + noise[:, j]
                    good[:, j] = (z[:, None] > tau[None, :]).sum(axis=1)
            return np.where(better, lo + good, hi - good).astype(np.int64)

        values = respond(base + shift[:, None])
        return values, (respond(base) if np.any(shift) else values)

    # -- truth -------------------------------------------------------------------------------------

    def truth(self, counts: dict[str, int]) -> dict[str, Any]:
        return _build_truth(self, counts)


# --- writing -------------------------------------------------------------------------------------------


def _cat(codes: np.ndarray, categories: list[str] | np.ndarray) -> pd.Categorical:
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int64), categories=pd.Index(categories, dtype=object))


def _write_chunk(blocks: list[_Block], model: _Model, handles, first: bool) -> dict[str, int]:
    start, stop = blocks[0].start, blocks[-1].stop
    n = stop - start
    width = max(7, len(str(model.n_total)))
    ids = np.char.add("C", np.char.zfill(np.arange(start + 1, stop + 1).astype(str), width))
    offsets = [blk.start - start for blk in blocks]

    def cat_cycles(key: str) -> np.ndarray:
        return np.concatenate([blk.cycles[key] for blk in blocks])

    cond = cat_cycles("cond")
    hosp = cat_cycles("hosp")
    cycles = {
        "cycle_id": ids,
        "patient_id": np.char.add("P", np.char.mod("%012x", cat_cycles("pid"))),
        "condition": _cat(cond, model.cond_ids),
        "hospital": _cat(hosp, model.hosp_codes),
        "department": _cat(cat_cycles("dept"), model.dept_codes),
        "index_date": _cat(cat_cycles("day") - _day0(), _DATE_STRINGS),
        "treatment": _cat(cat_cycles("treatment"), model.treatments),
    }
    for name in model.casemix_cols:
        v = cat_cycles(name)
        if STORED_CASEMIX[name] == "category":
            cycles[name] = _cat(np.where(np.isnan(v), -1, v).astype(np.int64), model.category_codes[name])
        elif name == "bmi":
            cycles[name] = v
        else:
            cycles[name] = pd.array(np.where(np.isnan(v), 0, v).astype(np.int64), dtype="Int64")
            cycles[name][np.isnan(v)] = pd.NA
    _to_csv(pd.DataFrame(cycles), handles[0], first, "%.1f")

    def gather(attr: str) -> dict[str, np.ndarray]:
        parts = [getattr(blk, attr) for blk in blocks]
        keys = next((p.cols.keys() for p in parts if p.cols), [])
        out = {}
        for k in keys:
            arrs = []
            for off, p in zip(offsets, parts, strict=True):
                if not p.cols:
                    continue
                arrs.append(p.cols[k] + off if k == "cycle" else p.cols[k])
            out[k] = np.concatenate(arrs)
        return out

    o = gather("outcomes")
    n_o = len(o.get("cycle", ()))
    if n_o:
        cond_of = cond[o["cycle"]]
        outcome_global = _local_to_global(model, cond_of, o["outcome_pos"], "outcomes")
        frame = pd.DataFrame(
            {
                "cycle_id": _cat(o["cycle"], ids),
                "outcome": _cat(outcome_global, model.outcome_ids),
                "value": o["value"],
                "date": _cat(o["day"] - _day0(), _DATE_STRINGS),
            }
        )
        _to_csv(frame, handles[1], first)
    elif first:
        handles[1].write("cycle_id,outcome,value,date\n")

    p = gather("proms")
    n_p = len(p.get("cycle", ()))
    if n_p:
        cond_of = cond[p["cycle"]]
        inst_global = _local_to_global(model, cond_of, p["inst_pos"], "proms")
        tp_global = _local_to_global(model, cond_of, p["tp_pos"], "timepoints")
        item_global = _item_global(model, inst_global, p["item_pos"])
        frame = pd.DataFrame(
            {
                "cycle_id": _cat(p["cycle"], ids),
                "instrument": _cat(inst_global, model.instrument_ids),
                "timepoint": _cat(tp_global, model.timepoint_ids),
                "item": _cat(item_global, model.item_ids),
                "value": p["value"],
                "completed_date": _cat(p["day"] - _day0(), _DATE_STRINGS),
            }
        )
        _to_csv(frame, handles[2], first)
    elif first:
        handles[2].write("cycle_id,instrument,timepoint,item,value,completed_date\n")

    c = gather("costs")
    n_c = len(c.get("cycle", ()))
    if n_c:
        cond_of = cond[c["cycle"]]
        act_global = _local_to_global(model, cond_of, c["act_pos"], "cost_activities")
        frame = pd.DataFrame(
            {
                "cycle_id": _cat(c["cycle"], ids),
                "activity": _cat(act_global, model.activity_ids),
                "quantity": c["quantity"],
                "unit_cost": c["unit_cost"],
            }
        )
        _to_csv(frame, handles[3], first, "%.2f")
    elif first:
        handles[3].write("cycle_id,activity,quantity,unit_cost\n")
    return {"care_cycles": n, "clinical_outcomes": n_o, "prom_responses": n_p, "costs": n_c}


def _day0() -> int:
    return int((_DATE0 - _EPOCH).astype(int))


def _to_csv(frame: pd.DataFrame, fh, header: bool, float_format: str | None = None) -> None:
    frame.to_csv(fh, index=False, header=header, lineterminator="\n", float_format=float_format)


def _local_to_global(model: _Model, cond_of: np.ndarray, pos: np.ndarray, what: str) -> np.ndarray:
    """Map a per-condition position (index into the condition's outcomes/proms/...) to the global vocabulary."""
    vocab = {
        "outcomes": model.outcome_ids,
        "proms": model.instrument_ids,
        "timepoints": model.timepoint_ids,
        "cost_activities": model.activity_ids,
    }[what]
    width = max(
        len(c.outcomes if what == "outcomes" else c.proms if what == "proms" else getattr(c, what)) for c in model.conds
    )
    table = np.zeros((len(model.conds), width), dtype=np.int64)
    for ci, c in enumerate(model.conds):
        if what == "outcomes":
            ids = [o.id for o in c.outcomes]
        elif what == "proms":
            ids = [u.instrument for u in c.proms]
        elif what == "timepoints":
            ids = [t.id for t in c.timepoints]
        else:
            ids = list(c.cost_activities)
        table[ci, : len(ids)] = [vocab.index(i) for i in ids]
    return table[cond_of, pos]


def _item_global(model: _Model, inst_global: np.ndarray, item_pos: np.ndarray) -> np.ndarray:
    width = max(len(model.cat.instruments[i].items) for i in model.instrument_ids)
    table = np.zeros((len(model.instrument_ids), width), dtype=np.int64)
    for k, inst in enumerate(model.instrument_ids):
        ids = [i.id for i in model.cat.instruments[inst].items]
        table[k, : len(ids)] = [model.item_ids.index(i) for i in ids]
    return table[inst_global, item_pos]


def _write_units(path: Path, model: _Model) -> int:
    """units.xlsx with one sheet "units"; fixed timestamps so the file is byte-identical on every run."""
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "units"
    ws.append(["hospital", "department", "hospital_name", "department_name", "division", "own_hospital"])
    n = 0
    for h in model.hosp:
        depts = sorted({d for (cond, code), d in model.dept.items() if code == h.code})
        for d in depts:
            name, division = DEPARTMENTS[d]
            ws.append([h.code, d, h.name, name, division, 1 if h.own else 0])
            n += 1
    fixed = datetime(2026, 6, 30, 0, 0, 0)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    wb.properties.creator = "vbhc demo"
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", b"2026-06-30T00:00:00Z", data)
            fixed_info = zipfile.ZipInfo(info.filename, date_time=(2026, 6, 30, 0, 0, 0))
            fixed_info.compress_type = zipfile.ZIP_DEFLATED
            fixed_info.external_attr = 0o644 << 16
            dst.writestr(fixed_info, data)
    return n


# --- truth.json ----------------------------------------------------------------------------------------


CHANCE_Z = 3.09  # two-sided 99.8 %
DETECTABLE_POWER = 0.9

# accumulator layouts (columns of _Acc arrays)
#   outcome / response: n, observed, sum p0, sum p1, sum p0(1-p0), sum p1(1-p1), sum p0(1-p0)(1-2p0)
#   stay: n, sum y, sum y^2, sum (y - mu0), sum planted shift, sum (y - mu1)^2
#   cost: n, sum cost, sum cost without planted effects, sum (cost without)^2
#   prom score/change: n, sum with, sum without, sum without^2; prom mic: n, reached with, reached without


def _z(num: float, var: float) -> float | None:
    return round(float(num / np.sqrt(var)), 2) if var > 0 else None


def _power(z_benchmark: float, sd_ratio: float = 1.0) -> float:
    """Probability that the unit falls outside the 99.8 % limit on the planted side (normal approximation;
    sd_ratio = sd of the z-score under the planted effect, e.g. sqrt(sum p1(1-p1) / sum p0(1-p0)))."""
    from scipy.stats import norm

    return round(float(norm.cdf((abs(z_benchmark) - CHANCE_Z) / max(sd_ratio, 1e-9))), 3)


def _logit_shift(a: np.ndarray) -> float:
    """The intercept shift d with which a model fitted on the whole benchmark (planted outliers included)
    reproduces the total observed count: sum expit(logit p0 + d) = O, to second order in d."""
    tot = a.sum(axis=0)
    obs, e0, v0, w0 = tot[1], tot[2], tot[4], tot[6]
    d = 0.0
    for _ in range(20):
        f = e0 + d * v0 + 0.5 * d * d * w0 - obs
        df = v0 + d * w0
        if df <= 0:
            break
        d -= f / df
    return d


class _Stat:
    """The statistics the generator knows for one (condition, indicator) across hospitals."""

    def __init__(self, model: _Model, c: Condition, ind):
        self.kind = ind.kind
        self.a: np.ndarray | None = None
        acc = model.acc
        if ind.kind == "proportion":
            self.a = acc.get((c.id, "outcome", ind.outcome))
        elif ind.kind == "response_rate":
            self.a = acc.get((c.id, "response", ind.timepoint))
        elif ind.kind == "mean" and ind.outcome == "length_of_stay":
            self.a = acc.get((c.id, "stay"))
        elif ind.kind == "cost":
            self.a = acc.get((c.id, "cost"))
        elif ind.kind in ("prom_score", "prom_change", "prom_mic"):
            what = {"prom_score": "score", "prom_change": "change", "prom_mic": "mic"}[ind.kind]
            self.a = acc.get((c.id, "prom", ind.instrument, ind.timepoint, what))
        self.binary = ind.kind in ("proportion", "response_rate")
        self.stay = ind.kind == "mean" and self.a is not None
        if self.a is not None and self.binary:
            self.d = _logit_shift(self.a)
        self.tot = self.a.sum(axis=0) if self.a is not None else None

    def n(self, hi: int) -> int:
        return int(self.a[hi, 0]) if self.a is not None else 0

    def share(self, hi: int) -> float:
        if self.a is None or self.tot[0] == 0:
            return 0.0
        return float(self.a[hi, 0] / self.tot[0])

    def oracle(self, hi: int) -> tuple[float | None, float | None]:
        """(oracle_z, benchmark_z): observed against the true no-effect expectation, and against that
        expectation recalibrated to the whole benchmark as a model fitted on all units would be."""
        if self.a is None:
            return None, None
        if self.binary:
            _, obs, e0, _, v0, _, w0 = self.a[hi]
            eb = e0 + self.d * v0 + 0.5 * self.d**2 * w0
            return _z(obs - e0, v0), _z(obs - eb, v0)
        if self.stay:
            n, _, _, dev0, _, r2 = self.a[hi]
            return _z(dev0, r2), _z(dev0 - n * self.tot[3] / self.tot[0], r2)
        return None, None

    def counts(self, hi: int) -> dict[str, Any]:
        """Yes/no indicators: the unit's observed events and its expected events under the TRUE no-effect
        probabilities (their ratio is the true O/E a perfect case-mix model would show); {} otherwise."""
        if self.a is None or not self.binary:
            return {}
        return {"observed": int(self.a[hi, 1]), "expected": round(float(self.a[hi, 2]), 3)}

    def crude(self, hi: int) -> tuple[float | None, float | None]:
        """(crude_z, expected_crude_z): the unit's crude rate or mean against the condition's overall."""
        if self.a is None:
            return None, None
        if self.binary:
            n, obs, e0 = self.a[hi, :3]
            rate, exp_rate = self.tot[1] / self.tot[0], self.tot[2] / self.tot[0]
            return (
                _z(obs - n * rate, n * rate * (1 - rate)),
                _z(e0 - n * exp_rate, n * exp_rate * (1 - exp_rate)),
            )
        if self.stay:
            n, sy, _, dev0, _, _ = self.a[hi]
            mean = self.tot[1] / self.tot[0]
            var = self.tot[2] / self.tot[0] - mean**2
            return _z(sy - n * mean, n * var), _z(sy - dev0 - n * mean, n * var)
        return None, None


def _build_truth(model: _Model, counts: dict[str, int]) -> dict[str, Any]:
    own = next(h.code for h in model.hosp if h.own)
    outliers: list[dict[str, Any]] = []
    casemix_only: list[dict[str, Any]] = []
    no_effect: list[dict[str, Any]] = []
    died_more = {(p.condition, p.hospital) for p in model.p_outcome.values() if p.outcome.startswith("mortality")}
    cmo = model.casemix_only

    for c in model.conds:
        for ind in c.indicators:
            if ind.kind == "volume" or ind.kind in SURVIVAL_KINDS:  # survival: PLANTED_SURVIVAL, write_follow_up
                continue
            st = _Stat(model, c, ind)
            for hi, h in enumerate(model.hosp):
                if (c.id, h.code) not in model.dept:
                    continue
                base = {"condition": c.id, "indicator": ind.id, "kind": ind.kind, "hospital": h.code,
                        "department": model.dept[(c.id, h.code)]}  # fmt: skip
                oracle_z, benchmark_z = st.oracle(hi)
                planted = _planted_entry(model, c, ind, h.code, st, hi)
                if planted is not None:
                    z = planted.get("expected_z")
                    zb = None if z is None else round(z * (1 - st.share(hi)), 2)
                    sd_ratio = planted.pop("sd_ratio", 1.0)
                    power = None if zb is None else _power(zb, sd_ratio)
                    outliers.append(
                        {**base, **planted, **st.counts(hi), "expected_z_benchmark": zb, "oracle_z": oracle_z,
                         "benchmark_z": benchmark_z, "power": power,
                         "detectable": power is not None and power >= DETECTABLE_POWER}
                    )  # fmt: skip
                    continue
                entry = {**base, "n": st.n(hi), **st.counts(hi), "oracle_z": oracle_z, "benchmark_z": benchmark_z}
                if ind.kind == "response_rate" and (c.id, h.code) in died_more:
                    entry["note"] = "no direct effect; more deaths at this unit leave fewer patients to respond"
                no_effect.append(entry)
                if (
                    cmo is not None
                    and (c.id, h.code) == (cmo.condition, cmo.hospital)
                    and ind.kind in ("proportion", "mean", "response_rate")
                ):
                    crude_z, expected_crude_z = st.crude(hi)
                    casemix_only.append(
                        {**base, "n": st.n(hi), "crude_z": crude_z, "expected_crude_z": expected_crude_z,
                         "crude_signal_expected": expected_crude_z is not None
                         and abs(expected_crude_z) > CHANCE_Z,
                         "oracle_z": oracle_z, "benchmark_z": benchmark_z, "note": cmo.note}
                    )  # fmt: skip
    false_signals = []
    for e in no_effect:
        if e["benchmark_z"] is not None and abs(e["benchmark_z"]) > CHANCE_Z:
            chance = e["oracle_z"] is not None and abs(e["oracle_z"]) > CHANCE_Z
            reason = "chance (binomial noise)" if chance else "benchmark pulled by planted outliers"
            false_signals.append({**e, "reason": reason})
    order = {h.code: i for i, h in enumerate(model.hosp)}
    outliers.sort(key=lambda e: (e["condition"], order[e["hospital"]], e["indicator"]))
    return {
        "generator": "vbhc.demo",
        "version": GENERATOR_VERSION,
        "synthetic": True,
        "seed": model.seed,
        "cycles": model.n_total,
        "as_of": AS_OF.isoformat(),
        "index_period": [FIRST_INDEX.isoformat(), LAST_INDEX.isoformat()],
        "own_hospital": own,
        "hospitals": [
            {
                "hospital": h.code,
                "name": h.name,
                "own": h.own,
                "conditions": {c.id: model.dept[(c.id, h.code)] for c in model.conds if (c.id, h.code) in model.dept},
            }
            for h in model.hosp
        ],
        "counts": counts,
        "definitions": {
            "effect": "odds_ratio: planted odds ratio on the unit's patients; mean_shift: difference of the "
            "unit's mean with and without the planted effect (same random numbers); share_difference: the same "
            "for a share",
            "expected_z": "planted effect / its standard error at this unit's size (proportions: "
            "(sum p1 - sum p0) / sqrt(sum p0(1-p0)) with the true case-mix probabilities)",
            "expected_z_benchmark": "expected_z x (1 - the unit's share of the condition): against a benchmark "
            "(model or overall mean) that includes the unit itself",
            "power": "probability that a correct analysis puts the unit outside the 99.8% limit on the planted "
            "side (normal approximation); detectable = power >= 0.9. Weak effects (e.g. the share reaching the "
            "MIC, where most patients already reach it) may or may not be flagged",
            "oracle_z": "observed minus the TRUE no-effect expectation (true case-mix probabilities), divided "
            "by its standard error; null where the generator cannot compute it (PROM scores, cost)",
            "benchmark_z": "the same against the true expectation recalibrated to the whole benchmark (as a "
            "model fitted on all units, planted outliers included, would be): what a perfect case-mix model "
            "shows",
            "crude_z": "unit's crude rate or mean against the condition's overall",
            "observed, expected": "yes/no indicators: the unit's events, and the sum of its cycles' TRUE no-effect "
            "probabilities (observed / expected is the O/E a perfect case-mix model shows)",
            "expected_false_signals": "no-effect units whose benchmark_z is beyond the 99.8% limit: by chance, "
            "or because planted outliers pull the benchmark (grows with the number of cycles); a correct "
            "analysis may flag them. PROM and cost indicators have no oracle and are not listed",
        },
        "outliers": outliers,
        "casemix_only": casemix_only,
        "expected_false_signals": false_signals,
        "no_effect": no_effect,
        "improvements": [
            {
                "condition": c.id,
                "indicator": ind.id,
                "hospital": p.hospital,
                "start": p.start.isoformat(),
                "odds_ratio_before": model.p_outcome[(c.id, p.outcome)].odds_ratio,
                "odds_ratio_after": p.odds_ratio,
                "note": p.note,
            }
            for c in model.conds
            for ind in c.indicators
            if ind.kind == "proportion"
            and (p := model.p_improvement.get((c.id, ind.outcome))) is not None
            and (c.id, p.outcome) in model.p_outcome
        ],
    }


def _planted_entry(model: _Model, c: Condition, ind, hosp: str, st: _Stat, hi: int) -> dict[str, Any] | None:
    """The truth entry of a planted effect on this indicator at this unit, or None."""
    lower = ind.direction == "lower"
    a = st.a

    def direction(effect: float, neutral: float) -> str:
        return "worse" if (effect > neutral) == lower else "better"

    if ind.kind in ("proportion", "response_rate"):
        if ind.kind == "proportion":
            p = model.p_outcome.get((c.id, ind.outcome))
        else:
            p = model.p_response.get((c.id, ind.timepoint))
        if p is None or p.hospital != hosp or a is None:
            return None
        n, _, e0, e1, v0, v1, _ = a[hi]
        return {"direction": direction(p.odds_ratio, 1.0), "effect": p.odds_ratio, "effect_type": "odds_ratio",
                "n": int(n), "expected_z": _z(e1 - e0, v0),
                "sd_ratio": float(np.sqrt(v1 / v0)) if v0 > 0 else 1.0, "note": p.note}  # fmt: skip
    if ind.kind == "mean":
        p = model.p_stay.get(c.id) if ind.outcome == "length_of_stay" else None
        if p is None or p.hospital != hosp or a is None:
            return None
        n, _, _, _, shift, r2 = a[hi]
        return {"direction": direction(p.days, 0.0), "effect": p.days, "effect_type": "mean_shift",
                "unit": "days", "n": int(n), "expected_z": _z(shift, r2), "note": p.note}  # fmt: skip
    if ind.kind == "cost":
        pc, ps = model.p_cost.get(c.id), model.p_stay.get(c.id)
        if a is None or not ((pc and pc.hospital == hosp) or (ps and ps.hospital == hosp)):
            return None
        n, s1, s0, _ = a[hi]
        sd = float(np.sqrt(max(st.tot[3] / st.tot[0] - (st.tot[2] / st.tot[0]) ** 2, 0.0)))
        effect = float((s1 - s0) / n) if n else 0.0
        notes = [x.note for x in (pc, ps) if x is not None and x.hospital == hosp]
        return {"direction": direction(effect, 0.0), "effect": round(effect, 2), "effect_type": "mean_shift",
                "unit": "EUR per care cycle", "n": int(n), "expected_z": _z(effect * n, n * sd**2),
                "note": "; ".join(notes)}  # fmt: skip
    if ind.kind in ("prom_score", "prom_change", "prom_mic"):
        p = next((x for x in model.p_prom.get((c.id, ind.instrument, ind.timepoint), ()) if x.hospital == hosp), None)
        if p is None:
            return None
        out: dict[str, Any] = {"latent_shift": p.latent_shift, "note": p.note}
        dirn = "worse" if p.latent_shift < 0 else "better"
        if a is None:
            return {"direction": dirn, "effect": None, "effect_type": "latent_shift", "expected_z": None, **out}
        n = a[hi, 0]
        if ind.kind == "prom_mic":
            _, m1, m0 = a[hi]
            p0 = m0 / n if n else 0.0
            p1 = m1 / n if n else 0.0
            effect = float(p1 - p0)
            z = _z(m1 - m0, n * p0 * (1 - p0))
            out["sd_ratio"] = float(np.sqrt(p1 * (1 - p1) / (p0 * (1 - p0)))) if 0 < p0 < 1 else 1.0
            kind, unit = "share_difference", "share"
        else:
            _, s1, s0, _ = a[hi]
            sd = float(np.sqrt(max(st.tot[3] / st.tot[0] - (st.tot[2] / st.tot[0]) ** 2, 0.0)))
            effect = float((s1 - s0) / n) if n else 0.0
            z = _z(effect * n, n * sd**2)
            kind, unit = "mean_shift", "points"
        return {"direction": dirn, "effect": round(effect, 3), "effect_type": kind, "unit": unit, "n": int(n),
                "expected_z": z, **out}  # fmt: skip
    return None


# --- vital status (survival follow-up) -------------------------------------------------------------------


def write_follow_up(out_dir: Path, seed: int = DEFAULT_SEED, catalog: Catalog | None = None) -> Path | None:
    """Write FOLLOW_UP_FILE: per care cycle of a condition with a survival indicator, its survival outcome
    (value 1 with the date of death, 0 with the date last known alive: AS_OF, or the date lost to follow-up).

    Read from the written care_cycles.csv and clinical_outcomes.csv with its own random stream, so it adds
    a file and changes no value of the others (their planted outliers and the tests on them stay); a death
    the registry already records (a mortality outcome) is the death date. None when no condition has one.

    Streamed, so memory does not grow with the registry (10,000,000 cycles, 300,000,000 PROM answers): the care
    cycles are read twice in chunks (first their numbers and each case-mix mean, then the rows to write), and of
    the other files only three days per followed cycle are kept (_recorded_days), found by the cycle's number.
    """
    catalog = catalog or default_catalog()
    out_dir = Path(out_dir)
    followed = {
        c.id: next(i.outcome for i in c.indicators if i.kind in SURVIVAL_KINDS)
        for c in catalog.conditions.values()
        if any(i.kind in SURVIVAL_KINDS for i in c.indicators)
    }
    if not followed:
        return None
    source = out_dir / "care_cycles.csv"
    # first pass: the followed cycles' numbers (file order) and, per condition and case-mix variable, the sum and
    # count of its known values: the demo writes them as whole numbers, so the sum is exact in any order and the
    # mean is the one np.nanmean gives over all the condition's rows at once
    numbers: list[np.ndarray] = []
    sums: dict[tuple[str, str], list[float]] = {}
    for chunk in _followed_chunks(source, followed, catalog):
        numbers.append(_cycle_numbers(chunk["cycle_id"]))
        for cid, part in chunk.groupby("condition", sort=False):
            for var, (x, _) in _survival_terms(catalog.condition(str(cid)), part).items():
                known = np.isfinite(x)
                total = sums.setdefault((str(cid), var), [0.0, 0])
                total[0] += float(np.sum(x[known]))
                total[1] += int(known.sum())
    number = np.concatenate(numbers) if numbers else np.zeros(0, dtype=np.int64)
    if np.any(np.diff(number) <= 0):
        raise ValueError(f"{source}: the cycle ids are not in ascending order")
    mean = {key: (s / k if k else None) for key, (s, k) in sums.items()}
    early, alive_until, seen = _recorded_days(out_dir, number)
    n = len(number)
    # draws for every cycle in file order, whatever its condition: the stream does not depend on the catalog.
    # One call of exponential(n), random(n), random(n) in a row, drawn chunk by chunk from three copies of the
    # stream, each first moved past the draws before its own (a chunk's draws are the same numbers)
    draws = _FollowUpDraws(seed, n)
    path = out_dir / FOLLOW_UP_FILE
    done = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        for chunk in _followed_chunks(source, followed, catalog):
            k = len(chunk)
            at = slice(done, done + k)
            frame = _vital_status(catalog, chunk, followed, mean, draws.take(k), early[at], alive_until[at], seen[at])
            _to_csv(frame, fh, done == 0)
            done += k
        if done == 0:
            fh.write("cycle_id,outcome,value,date\n")
    return path


def _followed_chunks(source: Path, followed: dict[str, str], catalog: Catalog):
    """The rows of care_cycles.csv of a followed condition, chunk by chunk (index from 0 within each chunk), with
    the columns the vital status reads."""
    wanted = {"cycle_id", "condition", "hospital", "index_date"} | {
        v.name for cid in followed for v in catalog.condition(cid).casemix
    }
    for chunk in pd.read_csv(
        source, dtype=str, keep_default_na=True, usecols=lambda name: name in wanted, chunksize=_READ_ROWS
    ):
        part = chunk[chunk["condition"].isin(list(followed))].reset_index(drop=True)
        if len(part):
            yield part


def _cycle_numbers(ids) -> np.ndarray:
    """The number in each demo cycle id ("C0000042" -> 42): the demo's ids are "C" and the cycle's number."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array(ids, type=pa.string()) if not isinstance(ids, pa.ChunkedArray | pa.Array) else ids
    return pc.cast(pc.utf8_slice_codeunits(text, 1), pa.int64()).to_numpy(zero_copy_only=False)


def _survival_terms(c: Condition, part: pd.DataFrame) -> dict[str, tuple[np.ndarray, float]]:
    """Per case-mix variable of `c` with a survival log hazard ratio: its value per row (NaN: unknown) and beta."""
    out: dict[str, tuple[np.ndarray, float]] = {}
    for var in c.casemix:
        if var.type == "category" and var.name == "stage":
            x = part[var.name].map({code: k for k, code in enumerate(var.codes)}).to_numpy(float)
            beta = SURVIVAL_LOG_HR["stage"]
        elif var.type == "category" and var.name == "sex":
            x, beta = (part[var.name] == "M").to_numpy(float), SURVIVAL_LOG_HR["sex_M"]
        elif var.name in SURVIVAL_LOG_HR:
            x, beta = pd.to_numeric(part[var.name], errors="coerce").to_numpy(float), SURVIVAL_LOG_HR[var.name]
        else:
            continue
        out[var.name] = (x, beta)
    return out


class _FollowUpDraws:
    """The vital status's random numbers, exponential(n) then random(n) twice from one stream, `take(k)` at a time."""

    def __init__(self, seed: int, n: int):
        def stream() -> np.random.Generator:
            return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_FOLLOW_UP_STREAM,)))

        self.time, self.lost, self.when = stream(), stream(), stream()
        for rest in range(n, 0, -_READ_ROWS):  # skipped a bounded piece at a time
            self.lost.exponential(size=min(rest, _READ_ROWS))
            self.when.exponential(size=min(rest, _READ_ROWS))
        for rest in range(n, 0, -_READ_ROWS):
            self.when.random(min(rest, _READ_ROWS))

    def take(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.time.exponential(size=k), self.lost.random(k), self.when.random(k)


def _vital_status(catalog, cycles, followed, mean, draws, early, alive_until, seen) -> pd.DataFrame:
    """The vital status rows of one chunk of followed cycles (the model as a whole registry at once: every
    operation is per row but the case-mix means, which come from the whole file)."""
    u_time, u_lost, u_when = draws
    n = len(cycles)
    start = (np.asarray(cycles["index_date"].to_numpy(str), dtype="datetime64[D]") - _EPOCH).astype(np.int64)
    lp = np.zeros(n)
    rate = np.full(n, DEFAULT_SURVIVAL_RATE)
    for cid, rows in cycles.groupby("condition").groups.items():
        c = catalog.condition(str(cid))
        idx = np.asarray(rows)
        rate[idx] = SURVIVAL_RATE.get(c.id, DEFAULT_SURVIVAL_RATE)
        part = cycles.loc[idx]
        for var, (x, beta) in _survival_terms(c, part).items():
            m = mean[(c.id, var)]
            centred = x - m if m is not None else np.zeros(len(idx))
            lp[idx] += beta * np.nan_to_num(centred)  # a missing value: the average patient
        for p in PLANTED_SURVIVAL:
            if p.condition == c.id:
                lp[idx] += np.where(part["hospital"] == p.hospital, np.log(p.hazard_ratio), 0.0)
    # a later death comes after the mortality outcomes' windows the registry records as survived
    survived = np.maximum(start + 30, alive_until)
    after = 1 + np.floor(u_time / (rate * np.exp(lp)) * DAYS_PER_YEAR).astype(np.int64)
    late = survived + after
    # and after the last day the files show the patient alive (a 12-month questionnaire answered, a long stay
    # ended): a death drawn before it comes as long after that day instead. A dead patient's questionnaire a
    # year later would be an impossible timeline; moving only these deaths, by the least, keeps the number of
    # deaths and the planted survival outlier as they were (redrawing the whole time from that day lost deaths)
    late = np.where(late > seen, late, seen + after)
    death = np.where(early < _NO_DAY, early, late)
    lost = u_lost < LOST_TO_FOLLOW_UP
    lost_day = start + np.floor(u_when * (_AS_OF_DAY - start)).astype(np.int64)
    end = np.where(lost, np.minimum(lost_day, _AS_OF_DAY), _AS_OF_DAY)
    died = death <= end
    day = np.where(died, death, end)
    return pd.DataFrame(
        {
            "cycle_id": cycles["cycle_id"],
            "outcome": cycles["condition"].map(followed),
            "value": died.astype(np.int64),
            "date": _DATE_STRINGS[day - _day0()],
        }
    )


#: rows per chunk when the demo reads back its own files
_READ_ROWS = 200_000
#: no recorded death
_NO_DAY = np.iinfo(np.int64).max
#: bytes of CSV per batch when the demo reads back its PROM answers and outcomes (pyarrow's streaming reader)
_READ_BYTES = 4 << 20  # larger blocks only raised the peak (32 MB: +700 MB at 1M cycles), and were no faster


def _recorded_days(out_dir: Path, number: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per followed cycle (`number`: the cycles' numbers, ascending; days since 1970): the first death a mortality
    outcome records (_NO_DAY: none), the last day a mortality outcome records the patient alive (0: none), and the
    last day of any clinical outcome or PROM answer written for it (0: none; the patient was alive then, so a death
    drawn for the vital status file comes later). Read batch by batch, keeping only these three numbers per cycle."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    early = np.full(len(number), _NO_DAY, dtype=np.int64)
    alive = np.zeros(len(number), dtype=np.int64)
    seen = np.zeros(len(number), dtype=np.int64)

    def batches(path: Path, columns: list[str]):
        return pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=_READ_BYTES, use_threads=False),
            convert_options=pacsv.ConvertOptions(
                include_columns=columns, column_types=dict.fromkeys(columns, pa.string()), strings_can_be_null=True
            ),
        )

    def where(ids) -> np.ndarray:
        """Position of each id's cycle in `number`, -1 when it is not followed."""
        num = _cycle_numbers(ids)
        pos = np.searchsorted(number, num)
        hit = pos < len(number)
        hit[hit] = number[pos[hit]] == num[hit]
        return np.where(hit, pos, -1)

    def days(iso) -> np.ndarray:
        """Days since 1970 of ISO dates; a missing date counts as NaT did (the smallest int64)."""
        parsed = pc.cast(
            pc.cast(pc.cast(pc.strptime(iso, format="%Y-%m-%d", unit="s"), pa.date32()), pa.int32()), pa.int64()
        )
        return pc.fill_null(parsed, np.iinfo(np.int64).min).to_numpy()

    for batch in batches(out_dir / "clinical_outcomes.csv", ["cycle_id", "outcome", "value", "date"]):
        at = where(batch.column("cycle_id"))
        keep = at >= 0
        if not keep.any():
            continue
        batch = batch.filter(pa.array(keep))
        at = at[keep]
        day = days(batch.column("date"))
        np.maximum.at(seen, at, day)
        mortality = pc.fill_null(pc.starts_with(batch.column("outcome"), "mortality"), False)
        rows = np.flatnonzero(mortality.to_numpy(zero_copy_only=False))
        if not len(rows):
            continue
        text = batch.column("value").take(pa.array(rows)).to_numpy(zero_copy_only=False)
        value = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(float)
        died, lived = rows[value == 1], rows[value == 0]
        np.minimum.at(early, at[died], day[died])
        np.maximum.at(alive, at[lived], day[lived])
    proms = out_dir / "prom_responses.csv"
    if proms.exists():
        for batch in batches(proms, ["cycle_id", "completed_date"]):
            batch = batch.filter(pc.is_valid(batch.column("completed_date")))
            at = where(batch.column("cycle_id"))
            keep = at >= 0
            np.maximum.at(seen, at[keep], days(batch.column("completed_date"))[keep])
    return early, alive, seen
