"""Synthetic patient-experience answers (PREMs) for the demo registry, with one planted department.

Every unit (hospital x department) of the demo gets answers to the clinical and the outpatient questionnaire of
the catalog (prems.toml) over the demo's visit years. Respondents are a share of the patients invited (the
response rate differs per hospital, about 30-45 %, recorded in truth.json), their case-mix (age band, education,
self-rated health) differs per hospital and moves the answers as CQI studies report (older and less educated
respondents answer more positively, respondents in poor health less), so crude and adjusted results differ.
Every unit has zero true effect except PLANTED_EXPERIENCE: one department whose patients' experience is worse.

A respondent's answers come from one latent experience score (unit effect + case-mix + N(0, 1)): ordinal items by
thresholds (plus item noise), the 0-10 rating and recommend question by a rounded linear map, a few answers
skipped. Deterministic: one random stream per seed, independent of the care cycles' streams.
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from vbhc.catalog import PREM_CASEMIX, Catalog, PremQuestionnaire, default_catalog
from vbhc.registry import hospital_of

PREM_FILE = "prem_responses.csv"
#: respondents per care cycle of the demo (both questionnaires together)
RESPONDENTS_PER_CYCLE = 0.5
#: share of respondents answering the clinical questionnaire (the rest: outpatient)
CLINICAL_SHARE = 0.45
RESPONSE_RATE_RANGE = (0.30, 0.45)
ITEM_SKIP = 0.03
CASEMIX_MISSING = 0.02
_STREAM = 2**31 - 3  #: spawn key of the PREM random stream (the registry's blocks use 0.., see vbhc.demo)

#: case-mix codes, their population shares and their effect on the latent experience (SD units)
CASEMIX: dict[str, tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]] = {
    "age_band": (
        ("16-34", "35-54", "55-64", "65-74", "75+"),
        (0.10, 0.22, 0.22, 0.26, 0.20),
        (-0.35, -0.2, 0, 0.1, 0.2),
    ),
    "education": (("low", "middle", "high"), (0.30, 0.42, 0.28), (0.2, 0.0, -0.25)),
    "self_rated_health": (
        ("excellent", "very_good", "good", "fair", "poor"),
        (0.08, 0.20, 0.40, 0.24, 0.08),
        (0.35, 0.2, 0.0, -0.3, -0.6),
    ),
}
#: thresholds on latent + item noise for answer 2, 3, 4 (never-always) and 2, 3 (no-yes)
THRESHOLDS = {"never_always": (-1.9, -0.9, 0.1), "no_yes": (-1.2, -0.1)}
ITEM_NOISE = 0.8


@dataclass(frozen=True)
class PlantedExperience:
    hospital: str
    department: str
    shift: float  # latent experience, SD units
    what: str


PLANTED_EXPERIENCE = (
    PlantedExperience("H06", "CAR", -0.6, "worse patient experience in cardiology (both questionnaires)"),
)
#: one hospital whose respondents are older, less educated and in better health (crude results better, no effect)
CASEMIX_SHIFT = {"H02": {"age_band": 0.6, "education": -0.5, "self_rated_health": -0.4}}


def _visit_days(rng: np.random.Generator, n: int, first: date, last: date) -> np.ndarray:
    start = np.datetime64(first.isoformat(), "D")
    span = int((np.datetime64(last.isoformat(), "D") - start).astype(int)) + 1
    return start + rng.integers(0, span, size=n)


def _casemix(rng: np.random.Generator, n: int, hospital: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    codes, effect = {}, np.zeros(n)
    for name, (levels, shares, effects) in CASEMIX.items():
        tilt = CASEMIX_SHIFT.get(hospital, {}).get(name, 0.0)
        w = np.array(shares) * np.exp(tilt * np.linspace(-1, 1, len(levels)))
        pick = rng.choice(len(levels), size=n, p=w / w.sum())
        effect += np.array(effects)[pick]
        values = np.array(levels, dtype=object)[pick]
        values[rng.random(n) < CASEMIX_MISSING] = ""
        codes[name] = values
    return codes, effect


def _answers(
    rng: np.random.Generator, q: PremQuestionnaire, department: str, latent: np.ndarray
) -> dict[str, np.ndarray]:
    """Answer per item (NaN: skipped or not asked of this department)."""
    n = len(latent)
    out: dict[str, np.ndarray] = {}
    for k, item in enumerate(q.items):
        if item.departments and department not in item.departments:
            continue
        noise = rng.normal(0, ITEM_NOISE, n)
        difficulty = 0.15 * ((k * 7) % 5 - 2)  # fixed per item: some questions get "always" more easily
        if item.scale in THRESHOLDS:
            answer = 1.0 + (latent[:, None] + difficulty + noise[:, None] > np.array(THRESHOLDS[item.scale])).sum(1)
        elif item.id == "recommend":
            answer = np.clip(np.rint(8.4 + 1.2 * latent + 0.8 * noise), 0, 10)
        else:
            answer = np.clip(np.rint(7.9 + 0.9 * latent + 0.6 * noise), 0, 10)
        answer[rng.random(n) < ITEM_SKIP] = np.nan
        out[item.id] = answer
    return out


def write_prem_responses(
    out_dir: Path,
    units: list[tuple[str, str, float]],
    respondents: int,
    seed: int,
    first: date,
    last: date,
    catalog: Catalog | None = None,
) -> tuple[Path, int, dict[str, Any]]:
    """Write prem_responses.csv for `units` ((hospital, department, relative volume)); returns the path, the
    number of rows and the truth (planted department, response rates, respondents per questionnaire)."""
    catalog = catalog or default_catalog()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_STREAM,)))
    hospitals = sorted({h for h, _, _ in units})
    rate_of = dict(zip(hospitals, rng.uniform(*RESPONSE_RATE_RANGE, len(hospitals)).round(3).tolist(), strict=True))
    weight = np.array([w for _, _, w in units], dtype=float)
    planted = {(p.hospital, p.department): p for p in PLANTED_EXPERIENCE}
    path = Path(out_dir) / PREM_FILE
    rows = 0
    counter = 0
    truth_units: dict[str, dict[str, int]] = {}
    columns = ["response_id", "questionnaire", "hospital", "department", "visit_date", "visit_type", "item", "answer"]
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*columns, *PREM_CASEMIX])
        for q in catalog.prems.values():
            share = CLINICAL_SHARE if q.visit_type == "clinical" else 1 - CLINICAL_SHARE
            expected = respondents * share * weight / weight.sum()
            for (hospital, department, _), mean in zip(units, expected, strict=True):
                n = int(rng.poisson(mean))
                if n == 0:
                    continue
                codes, effect = _casemix(rng, n, hospital)
                shift = planted[(hospital, department)].shift if (hospital, department) in planted else 0.0
                latent = shift + effect + rng.normal(0, 1, n)
                answers = _answers(rng, q, department, latent)
                days = np.sort(_visit_days(rng, n, first, last)).astype(str)
                unit = f"{hospital}/{department}"
                truth_units.setdefault(unit, {})[q.id] = n
                for i in range(n):
                    counter += 1
                    rid = f"PR{counter:07d}"
                    head = [rid, q.id, hospital, department, days[i], q.visit_type]
                    tail = [codes[name][i] for name in PREM_CASEMIX]
                    for item_id, values in answers.items():
                        if not np.isnan(values[i]):
                            writer.writerow([*head, item_id, int(values[i]), *tail])
                            rows += 1
    truth = {
        "planted": [asdict(p) | {"unit": f"{p.hospital}/{p.department}"} for p in PLANTED_EXPERIENCE],
        "casemix_only": sorted(CASEMIX_SHIFT),
        "response_rate": rate_of,
        "respondents": truth_units,
        "invited": {
            unit: {qid: round(n / rate_of[hospital_of(unit)]) for qid, n in per_q.items()}
            for unit, per_q in truth_units.items()
        },
        "indicators_worse": [i.id for q in catalog.prems.values() for i in q.indicators if i.kind != "volume"],
    }
    return path, rows, truth
