"""A page that must wait says what it is waiting for (issue 13, item 3): the patient-experience tables of a period
the server has not prepared yet are computed in the page's own run (at 1,000,000 care cycles a year's read every
answer of the year from the registry: tens of seconds), and the page says so meanwhile. Counted, not timed."""

from __future__ import annotations

import pytest
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from vbhc import results
from vbhc.i18n import t
from vbhc.settings import PROJECT_ROOT

pytestmark = pytest.mark.usefixtures("local_mode")  # tests/conftest.py


def test_the_team_page_says_it_prepares_a_periods_patient_experience_not_yet_prepared(small_demo_db, monkeypatch):
    """A year whose PREM tables are neither in memory nor stored: the run shows what it prepares while it computes
    them, and clears it; a later run, which reads them, shows nothing of it."""
    from ui import data

    engine, _ = small_demo_db
    year = str(data.registry.condition_volumes(engine=engine)["last_index_date"].max().year)
    monkeypatch.setattr(data, "_prems_ready", set(), raising=False)  # nothing in this process's memory
    stored = results.ResultStore.has_prem
    monkeypatch.setattr(
        results.ResultStore, "has_prem", lambda self, key, v: key.period != year and stored(self, key, v)
    )
    shown: list[str] = []
    info = DeltaGenerator.info
    monkeypatch.setattr(
        DeltaGenerator, "info", lambda self, body, *a, **k: shown.append(body) or info(self, body, *a, **k)
    )

    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "en"
    at.session_state["condition"] = "colorectal_cancer"
    at.session_state["unit_hospital"] = "H01"
    at.session_state["period"] = year
    run_on_page(at, "views/condition_team.py")
    assert not at.exception, [e.value for e in at.exception]
    waiting = t("wait.preparing_prems", "en", level=t("level.hospital", "en"), period=year)
    assert shown.count(waiting) == 1
    assert t("prem.title", "en") in [h.value for h in at.subheader]  # the tables it waited for are drawn
    assert waiting not in [i.value for i in at.info]  # and the message is gone

    shown.clear()
    at.run()  # the tables are in memory now: nothing to wait for
    assert not at.exception, [e.value for e in at.exception]
    assert waiting not in shown


def test_the_team_page_draws_its_outcomes_while_a_periods_patient_experience_is_computed_beside_it(
    small_demo_db, monkeypatch
):
    """On a server (background work on) the PREM tables of a year not prepared yet are computed outside the page's
    run: the run draws the outcomes and says where the tables will be and what it waits for, and a later run draws
    them (at 1,000,000 care cycles the tables held the page's run for ~6 CPU s, 18-24 s at a load of 8)."""
    import threading
    import time

    from ui import data

    engine, _ = small_demo_db
    year = str(data.registry.condition_volumes(engine=engine)["last_index_date"].max().year)
    monkeypatch.setattr(data, "background_work", True)
    for name in ("_prems_ready", "_prems_pending", "_prems_failed"):
        monkeypatch.setattr(data, name, set(), raising=False)
    stored = results.ResultStore.has_prem
    monkeypatch.setattr(
        results.ResultStore, "has_prem", lambda self, key, v: key.period != year and stored(self, key, v)
    )
    data.prem_result.clear()
    released = threading.Event()
    computed_in: list[str] = []
    prem = results.ResultStore.prem

    def held(self, key, *args, **kwargs):  # held until the first run is checked, so that run cannot find them ready
        if key.period == year:
            computed_in.append(threading.current_thread().name)
            released.wait(timeout=5)
        return prem(self, key, *args, **kwargs)

    monkeypatch.setattr(results.ResultStore, "prem", held)

    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "en"
    at.session_state["condition"] = "colorectal_cancer"
    at.session_state["unit_hospital"] = "H01"
    at.session_state["period"] = year
    try:
        run_on_page(at, "views/condition_team.py")
        assert not at.exception, [e.value for e in at.exception]
        assert t("prem.title", "en") not in [h.value for h in at.subheader]  # not drawn in this run
        assert at.title and at.caption  # the outcomes are
        waiting = t("wait.preparing_prems", "en", level=t("level.hospital", "en"), period=year)
        assert f"{waiting} {t('wait.prems_follow', 'en')}" in [i.value for i in at.info]  # and what it waits for
    finally:
        released.set()
        deadline = time.monotonic() + 120
        while data._prems_pending:
            assert time.monotonic() < deadline, data._prems_pending
            time.sleep(0.1)
    assert computed_in and all(name.startswith("vbhc-prems") for name in computed_in), computed_in

    at.run()  # what the page's follow-up asks for once they are ready: the tables, nothing left to wait for
    assert not at.exception, [e.value for e in at.exception]
    assert t("prem.title", "en") in [h.value for h in at.subheader]
    assert not any(waiting in i.value for i in at.info)
    for pool in (data._signals_pool, data._writer):  # no background work outlives the test
        pool.submit(lambda: None).result(timeout=120)


def _element_types(block) -> list:
    """The element types of an AppTest block in the order drawn, nested blocks as lists: what Streamlit's browser
    side tells elements without a key apart by (their place in their block)."""
    out = []
    for _, node in sorted(block.children.items()):
        out.append(_element_types(node) if hasattr(node, "children") else node.type)
    return out


def test_a_run_after_a_view_was_computed_keeps_every_element_in_its_place(small_demo_db, monkeypatch):
    """The overview of a year not prepared computes its views in its run, showing a progress bar meanwhile (ui.data
    _wait_for); the next run reads them. Both runs draw the same elements in the same places: before, each progress
    bar stayed an (empty) element where its view was asked for, the next run drew none, and every element below the
    first moved, so the browser mounted them anew (31 of the overview's 36 elements, every table and chart, on the
    click after the views were computed)."""
    from ui import data

    engine, _ = small_demo_db
    year = str(data.registry.condition_volumes(engine=engine)["last_index_date"].max().year)
    computed = {"now": True}  # the first run finds no view in memory or stored, the second finds them stored
    monkeypatch.setattr(data, "_ready", set())
    monkeypatch.setattr(data, "_on_disk", lambda *args: not computed["now"])
    waited = []
    wait_for = data._wait_for
    monkeypatch.setattr(data, "_wait_for", lambda args: waited.append(args) or wait_for(args))

    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "en"
    at.session_state["period"] = year
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert waited, "the first run computed no view: it tests nothing"
    first = _element_types(at.main)

    computed["now"], waited[:] = False, []
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert not waited
    assert _element_types(at.main) == first
