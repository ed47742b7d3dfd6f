"""The demo generator writes patient-experience answers for every unit with one planted department (truth.json),
`vbhc demo`'s import takes them, and the indicators find the planted department and no other."""

from __future__ import annotations

import json

import pytest

from vbhc.demo import generate_demo
from vbhc.demo_prems import PREM_FILE
from vbhc.ingest import import_files
from vbhc.prems import prem_indicator_table
from vbhc.store import get_engine, row_counts, upgrade_schema


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("prem_demo")
    result = generate_demo(folder / "files", cycles=20_000)
    engine = get_engine(f"sqlite:///{folder / 'demo.db'}")
    upgrade_schema(engine)
    import_files([result.files[0], result.prems], engine, imported_by="test")  # units, then the answers
    yield result, json.loads(result.truth_path.read_text(encoding="utf-8")), engine
    engine.dispose()


def test_the_demo_writes_prem_answers_with_their_truth(demo):
    result, truth, engine = demo
    assert result.prems is not None and result.prems.name == PREM_FILE
    assert result.import_order()[-1] == result.prems  # `vbhc demo` imports them with the registry
    prem = truth["prem"]
    assert len(prem["planted"]) == 1 and prem["planted"][0]["shift"] < 0
    rates = list(prem["response_rate"].values())
    assert all(0.25 <= r <= 0.5 for r in rates), "plausible response rates"
    respondents = sum(n for per_q in prem["respondents"].values() for n in per_q.values())
    assert respondents == pytest.approx(20_000 * 0.5, rel=0.05)
    assert row_counts(engine)["prem_responses"] == result.prem_rows


def test_determinism(tmp_path):
    a = generate_demo(tmp_path / "a", cycles=300)
    b = generate_demo(tmp_path / "b", cycles=300)
    c = generate_demo(tmp_path / "c", cycles=300, seed=11)
    assert a.prems.read_bytes() == b.prems.read_bytes() != c.prems.read_bytes()


@pytest.mark.parametrize("questionnaire", ["prem_clinical", "prem_outpatient"])
def test_the_planted_department_is_found(demo, questionnaire):
    _, truth, engine = demo
    planted = {p["unit"] for p in truth["prem"]["planted"]}
    table = prem_indicator_table(questionnaire, "department", engine=engine).table
    rating = table[table["indicator"] == "prem_rating"].set_index("unit")
    assert set(rating.index[rating["position_998"] == "below"]) == planted
    assert (rating["position_998"] != "above").all()
    # and the department's own hospital as a whole is not singled out at 99.8 % for it
    worse = table[(table["position_998"] == "below") & (table["kind"] != "volume")]
    assert set(worse["unit"]) == planted
