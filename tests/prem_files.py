"""A small, hand-written, valid file of PREM responses for the units of tests/registry_files.py."""

from __future__ import annotations

from pathlib import Path

from tests.registry_files import write_csv

PREM_COLUMNS = [
    "response_id",
    "questionnaire",
    "hospital",
    "department",
    "visit_date",
    "visit_type",
    "item",
    "answer",
    "age_band",
    "education",
    "self_rated_health",
]


def prem_rows() -> list[dict[str, str]]:
    """Six clinical responses (H01/H02, SUR/ORT) with a few items each, and two outpatient ones."""
    rows = []
    bands, education, health = ["35-54", "55-64", "65-74", "75+"], ["low", "middle", "high"], ["good", "fair"]
    for i in range(1, 7):
        hospital, department = ("H01" if i % 2 else "H02"), ("SUR" if i <= 3 else "ORT")
        respondent = {
            "response_id": f"R{i:04d}",
            "questionnaire": "prem_clinical",
            "hospital": hospital,
            "department": department,
            "visit_date": f"2024-0{i}-1{i}",
            "visit_type": "clinical",
            "age_band": bands[i % 4],
            "education": education[i % 3],
            "self_rated_health": health[i % 2] if i != 5 else "",
        }
        answers = {"doc_listen": str(1 + i % 4), "doc_explain": "4", "overall": str(5 + i % 6), "recommend": "9"}
        answers["ort_mobilise" if department == "ORT" else "onc_contact"] = str(1 + i % 3)
        rows += [respondent | {"item": item, "answer": answer} for item, answer in answers.items()]
    for i in (7, 8):
        respondent = {
            "response_id": f"R{i:04d}",
            "questionnaire": "prem_outpatient",
            "hospital": "H01",
            "department": "ORT",
            "visit_date": "2024-09-02",
            "visit_type": "outpatient",
            "age_band": "16-34",
            "education": "high",
            "self_rated_health": "excellent",
        }
        rows += [respondent | {"item": "wait_room", "answer": "3"}, respondent | {"item": "overall", "answer": "8"}]
    return rows


def write_prems(path: Path, rows: list[dict[str, str]] | None = None) -> Path:
    return write_csv(path, rows if rows is not None else prem_rows(), PREM_COLUMNS)
