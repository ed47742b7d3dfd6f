"""A small, hand-written, valid registry (two hospitals, two conditions) for import and registry tests."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from typing import Any

UNITS = [
    # hospital, department, hospital_name, department_name, division, own_hospital
    ("H01", "SUR", "Testziekenhuis Noord", "Heelkunde", "Snijdende specialismen", "1"),
    ("H01", "ORT", "Testziekenhuis Noord", "Orthopedie", "Snijdende specialismen", "1"),
    ("H02", "SUR", "Testkliniek Zuid", "Heelkunde", "Snijdende specialismen", "0"),
    ("H02", "ORT", "Testkliniek Zuid", "Orthopedie", "Snijdende specialismen", "0"),
]
CYCLE_COLUMNS = [
    "cycle_id",
    "patient_id",
    "condition",
    "hospital",
    "department",
    "index_date",
    "treatment",
    "age",
    "sex",
    "asa",
    "charlson",
    "bmi",
    "stage",
    "smoking",
]


def cycles() -> list[dict[str, str]]:
    rows = []
    for i in range(1, 13):
        oeso = i <= 6
        rows.append(
            {
                "cycle_id": f"C{i:04d}",
                "patient_id": f"P{i:04d}x",
                "condition": "oesophageal_cancer" if oeso else "hip_osteoarthritis",
                "hospital": "H01" if i % 2 else "H02",
                "department": "SUR" if oeso else "ORT",
                "index_date": f"202{3 + (i % 2)}-0{1 + i % 9}-15",
                "treatment": "oesophagectomy" if oeso else "total_hip_arthroplasty",
                "age": str(55 + i),
                "sex": "M" if i % 3 else "F",
                "asa": str(1 + i % 3),
                "charlson": str(i % 4),
                "bmi": f"{22 + i * 0.5:.1f}",
                "stage": ["I", "II", "III"][i % 3] if oeso else "",
                "smoking": "" if oeso else ["never", "former", "current"][i % 3],
            }
        )
    return rows


def outcomes() -> list[dict[str, str]]:
    rows = []
    for c in cycles():
        if c["condition"] == "oesophageal_cancer":
            rows.append(
                {
                    "cycle_id": c["cycle_id"],
                    "outcome": "mortality_30d",
                    "value": str(int(c["cycle_id"][-1]) % 2),
                    "date": c["index_date"],
                }
            )
            rows.append({"cycle_id": c["cycle_id"], "outcome": "length_of_stay", "value": "12", "date": ""})
        else:
            rows.append({"cycle_id": c["cycle_id"], "outcome": "revision_1y", "value": "0", "date": ""})
    return rows


def proms() -> list[dict[str, str]]:
    rows = []
    for c in cycles():
        for tp in ("baseline", "12m"):
            for item, value in zip(["MO", "SC", "UA", "PD", "AD", "VAS"], ["1", "2", "3", "2", "1", "70"], strict=True):
                rows.append(
                    {
                        "cycle_id": c["cycle_id"],
                        "instrument": "eq5d5l",
                        "timepoint": tp,
                        "item": item,
                        "value": value,
                        # a follow-up after every index date (2023-2024), a baseline on it
                        "completed_date": c["index_date"] if tp == "baseline" else "2025-06-01",
                    }
                )
    return rows


def costs() -> list[dict[str, str]]:
    return [
        {"cycle_id": c["cycle_id"], "activity": act, "quantity": q, "unit_cost": uc}
        for c in cycles()
        for act, q, uc in [("outpatient_visit", "3", "160.00"), ("ward_day", "5", "680.50")]
    ]


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None, sep: str = ",") -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, delimiter=sep)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_units(path: Path) -> Path:
    cols = ["hospital", "department", "hospital_name", "department_name", "division", "own_hospital"]
    return write_csv(path, [dict(zip(cols, u, strict=True)) for u in UNITS], cols)


def write_small_registry(folder: Path) -> list[Path]:
    """units, care_cycles, clinical_outcomes, prom_responses, costs as CSV; returns the paths in import order."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_units(folder / "units.csv"),
        write_csv(folder / "care_cycles.csv", cycles(), CYCLE_COLUMNS),
        write_csv(folder / "clinical_outcomes.csv", outcomes()),
        write_csv(folder / "prom_responses.csv", proms()),
        write_csv(folder / "costs.csv", costs()),
    ]


def store_units(engine: Any, more_hospitals: tuple[str, ...] = ()) -> Any:
    """UNITS stored directly in the units tables (H01 and H02, each with SUR and ORT; `more_hospitals` without
    departments), without an import and its audit events: what a test of the improvement cycle needs for its
    targets, actions, signals and meetings to name a unit (vbhc.improvement refuses a unit the registry does not
    hold)."""
    from sqlalchemy import insert

    from vbhc import models

    with engine.begin() as conn:
        batch = conn.execute(
            insert(models.ImportBatch).values(
                file_name="units.csv", table_name="units", sha256="0" * 64, imported_at=dt.datetime.now(dt.UTC)
            )
        ).inserted_primary_key[0]
        hospitals = {u[0]: (u[2], u[5] == "1") for u in UNITS} | {
            code: (f"Hospital {code}", False) for code in more_hospitals
        }
        for code, (name, own) in hospitals.items():
            conn.execute(insert(models.Hospital).values(code=code, name=name, own_hospital=own, batch_id=batch))
        for hospital, code, _, name, division, _ in UNITS:
            values = {"hospital": hospital, "code": code, "name": name, "division": division, "batch_id": batch}
            conn.execute(insert(models.Department).values(**values))
    return engine
