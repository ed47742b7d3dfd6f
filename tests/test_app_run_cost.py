"""What a script run of the team page does again that an earlier run of the same view already did (issue 13 item 2).

Why: ten viewers opening the team page at once share one interpreter lock, so every run waits for the CPU of the
others' runs; a run should draw what the process has already finished, not derive it again. Counted, not timed."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from vbhc.i18n import fmt_date, t
from vbhc.settings import PROJECT_ROOT

pytestmark = pytest.mark.usefixtures("local_mode")  # tests/conftest.py


def _team_page(unit: str = "H01") -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "en"
    at.session_state["condition"] = "colorectal_cancer"
    at.session_state["unit_hospital"] = unit
    run_on_page(at, "views/condition_team.py")
    assert not at.exception, [e.value for e in at.exception]
    return at


def _since_heading(at: AppTest) -> str:
    """The "since the last meeting" heading the run drew."""
    prefix = t("meeting.title", "en", date="")
    found = [h.value for h in at.subheader if h.value.startswith(prefix.strip()[:12])]
    assert len(found) == 1, [h.value for h in at.subheader]
    return found[0]


def test_the_team_pages_since_last_meeting_is_finished_once_per_view_unit_and_meeting_date(small_demo_db, monkeypatch):
    """A second run of the same view (another viewer, a rerun) draws "since the last meeting" from the finished
    table: it neither reads the view's data for its complete-until date nor builds the table's HTML again. The date
    it compares with is still read on every run: a meeting recorded since moves it, and the table follows."""
    from ui import render
    from vbhc import meeting, minutes

    at = _team_page()
    first = _since_heading(at)
    complete, built = [], []
    until, html = meeting.data_complete_until, render.table_html
    monkeypatch.setattr(meeting, "data_complete_until", lambda *a, **k: complete.append(1) or until(*a, **k))
    previous = t("meeting.column_previous", "en")  # a column of the since-the-last-meeting table only
    monkeypatch.setattr(render, "table_html", lambda *a, **k: built.append(previous in a[0].columns) or html(*a, **k))

    other = _team_page()  # a second session on the same view
    assert _since_heading(other) == first
    assert complete == []
    assert not any(built)

    # a meeting recorded since the first run: the next run compares with it (read again, table built for it)
    held = dt.date.today() - dt.timedelta(days=40)
    monkeypatch.setattr(minutes, "last_meeting_date", lambda *a, **k: held)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert _since_heading(at) == t("meeting.title", "en", date=fmt_date(held, "en"))
    assert _since_heading(at) != first
    assert any(built)  # the table of the new date was built


def test_a_run_reads_the_published_groups_file_and_decides_the_comparison_group_once(small_demo_db, monkeypatch):
    """Within one run the published groups' file is looked at once (the run's snapshot; a change shows on the next
    run), and a view's comparison-group decision, the same for every viewer of the same scope, is not decided
    again by a later run: every run asked both several times over (a stat of the file, the group's atoms checked
    on copies of the registry tables)."""
    from ui import data
    from vbhc import access

    _team_page()  # the view's decisions are made once
    looked, decided = [], []
    groups_file, refusal = data.comparison_groups_file, access.GroupChoice.refusal
    monkeypatch.setattr(data, "comparison_groups_file", lambda: looked.append(1) or groups_file())
    monkeypatch.setattr(access.GroupChoice, "refusal", lambda self: decided.append(1) or refusal(self))
    at = _team_page()  # another viewer (the same scope) on the same view
    assert len(looked) == 1
    assert decided == []
    assert len(at.title) == 1


def test_the_database_url_is_checked_once_per_url_and_a_wrong_one_every_time(monkeypatch):
    """settings.database_url parses VBHC_DATABASE_URL once per URL (a run asks for it some 40 times); a URL it
    refuses is refused on every ask, never kept as if it were good."""
    from sqlalchemy.engine import url as sa_url

    from vbhc import settings

    parsed = []
    make_url = sa_url.make_url
    monkeypatch.setattr(sa_url, "make_url", lambda *a, **k: parsed.append(a[0]) or make_url(*a, **k))
    monkeypatch.setattr("sqlalchemy.engine.make_url", sa_url.make_url)
    good = "sqlite:////tmp/vbhc-run-cost-test-only.db"
    monkeypatch.setenv("VBHC_DATABASE_URL", good)
    assert [settings.database_url() for _ in range(3)] == [good] * 3
    assert parsed.count(good) == 1
    monkeypatch.setenv("VBHC_DATABASE_URL", "mysql://someone@somewhere/db")
    for _ in range(2):
        with pytest.raises(settings.SettingError):
            settings.database_url()


def test_a_care_teams_visit_reads_its_conditions_units_from_the_cache_not_the_care_cycles(signed_in_db, monkeypatch):
    """A care team's visit of the team page asks which units treat its conditions (may it see patient experience,
    which departments show its condition team's) from the dashboard's cached condition units: each ask was a
    GROUP BY over the condition's care cycles on every visit (vbhc.registry.condition_units)."""
    from tests.test_app_roles import _app as signed_in_app
    from vbhc import registry

    team = {"condition": "colorectal_cancer", "level": "condition_team"}
    signed_in_app("care", "views/condition_team.py", **team)  # the first visit fills the caches
    grouped = []
    condition_units = registry.condition_units
    monkeypatch.setattr(registry, "condition_units", lambda *a, **k: grouped.append(a[0]) or condition_units(*a, **k))
    at = signed_in_app("care", "views/condition_team.py", **team)  # the team's next visit
    assert t("prem.title", "en") in [s.value for s in at.subheader]  # the patient experience is shown
    assert grouped == []


def test_a_run_unpickles_each_value_from_streamlits_data_cache_once(small_demo_db, monkeypatch):
    """Streamlit's data cache hands out a new unpickled copy on every call: a team page's run asked for the units
    table twice and for the unit names once per unit it named, each a copy. Within a run each registry table and
    name mapping is read from the cache once (the run shares that copy; callers only read it)."""
    import pickle

    from streamlit.runtime.caching import cache_data_api

    _team_page()  # the caches are filled
    loaded: list[tuple] = []
    loads = pickle.loads

    def counted(*a, **k):
        out = loads(*a, **k)
        value = getattr(out, "value", None)
        if isinstance(value, pd.DataFrame):
            loaded.append(("frame", tuple(value.columns), int(pd.util.hash_pandas_object(value).sum())))
        elif isinstance(value, dict):
            loaded.append(("mapping", hash(frozenset((str(k), str(v)) for k, v in value.items()))))
        return out

    monkeypatch.setattr(cache_data_api.pickle, "loads", counted)
    at = _team_page()
    assert len(at.title) == 1
    assert any(v[0] == "frame" for v in loaded) and any(v[0] == "mapping" for v in loaded)
    again = {value[:2]: loaded.count(value) for value in set(loaded) if loaded.count(value) > 1}
    assert again == {}


def test_runs_asking_for_the_same_chart_at_once_build_it_once():
    """Viewers opening the same page together (a team after a restart) each built the same charts and tables: every
    run then waited for all the others' CPU. One run builds, the others wait for it and read it; a failed build is
    built by the next asker; runs building two values that need each other never wait for each other."""
    import threading
    import time

    from ui import kept

    cache = kept.Kept(size=8)
    building, release = threading.Event(), threading.Event()
    builds: list[str] = []

    def build(name: str, fail: bool = False):
        def run():
            builds.append(name)
            building.set()
            release.wait(10)
            if fail:
                raise RuntimeError("this build failed")
            return {"built": name}

        return run

    def ask(key: str, build, into: list) -> threading.Thread:
        def target():
            try:
                into.append(cache.get(key, build))
            except RuntimeError as e:
                into.append(str(e))

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    got: list = []
    first = ask("chart", build("first"), got)
    assert building.wait(10)
    second = ask("chart", build("second"), got)
    time.sleep(0.3)  # the second asks while the first builds
    release.set()
    first.join(10), second.join(10)
    assert builds == ["first"]
    assert got == [{"built": "first"}] * 2

    building.clear(), release.clear()
    builds.clear(), got.clear()
    failing = ask("table", build("failing", fail=True), got)
    assert building.wait(10)
    waiting = ask("table", build("after"), got)
    time.sleep(0.3)
    release.set()
    failing.join(10), waiting.join(10)
    assert builds == ["failing", "after"]
    assert sorted(map(str, got)) == sorted(["this build failed", str({"built": "after"})])

    # two runs, each building a value that needs the other's: neither waits for the other
    both = threading.Barrier(2)

    def needs(other: str):
        def run():
            both.wait(10)
            return {"with": cache.get(other, lambda: {"built": other})}

        return run

    got.clear()
    one, two = ask("a", needs("b"), got), ask("b", needs("a"), got)
    one.join(10), two.join(10)
    assert not one.is_alive() and not two.is_alive()
    assert len(got) == 2


def test_runs_opening_the_same_patient_experience_at_once_build_its_tables_once(monkeypatch):
    """The team page's patient-experience tables, kept per view and scope: viewers opening the page together each
    built them too. One run builds them; the others wait, read them, and still record their own view."""
    import threading
    import time

    from ui import data
    from ui import prems as ui_prems
    from vbhc import access, external, prems

    building, release = threading.Event(), threading.Event()
    built: list[int] = []
    seen = (("rows", "result"),)

    def sections(*_args):
        built.append(1)
        building.set()
        release.wait(10)
        return ui_prems._Sections((("label", None, "<table></table>"),), seen)

    recorded: list[str] = []
    monkeypatch.setattr(ui_prems, "_sections", sections)
    monkeypatch.setattr(ui_prems, "_show_sections", lambda kept, _lang: bool(kept.tables))
    monkeypatch.setattr(ui_prems, "database_url", lambda: "sqlite:////tmp/vbhc-run-cost-test-only.db")
    monkeypatch.setattr(data, "current_engine", lambda: None)
    monkeypatch.setattr(data, "version", lambda **_: "test-only")
    monkeypatch.setattr(prems, "may_view_prems", lambda *a, **k: True)
    monkeypatch.setattr(prems, "record_prem_view", lambda viewer, *a, **k: recorded.append(viewer.user_id))
    monkeypatch.setattr(external, "stored_levels", lambda *a: set())
    monkeypatch.setattr("ui.filters.current", lambda: None)
    ui_prems._kept.clear()
    viewer = access.local_viewer()
    shown: list[bool] = []

    def visit() -> threading.Thread:
        thread = threading.Thread(target=lambda: shown.append(ui_prems.show(viewer, "hospital", ["H01"], "", "en")))
        thread.start()
        return thread

    first = visit()
    assert building.wait(10)
    second = visit()
    time.sleep(0.3)  # the second opens the page while the first builds
    release.set()
    first.join(10), second.join(10)
    assert shown == [True, True]
    assert built == [1]
    assert recorded == [viewer.user_id]  # the view of the run that read the kept tables (the builder's is its own)
    ui_prems._kept.clear()


def test_a_report_built_on_a_download_click_reads_the_dataset_version_once(small_demo_db, monkeypatch):
    """Streamlit builds a download's file in a worker thread outside any script run, where every ask read the
    dataset version from the database again (~200 times for the workbook of every condition): one read per file."""
    import threading

    from ui import data, render
    from vbhc import registry
    from vbhc.access import Role, Scope, Viewer

    results = [data.result(condition, "hospital", "") for condition in ("colorectal_cancer", "breast_cancer")]
    reads: list[str] = []
    read = registry.dataset_version
    monkeypatch.setattr(registry, "dataset_version", lambda engine: reads.append("version") or read(engine))
    built: list[bytes] = []

    quality = Viewer("quality@example.org", "", (Scope(Role.QUALITY),))

    def click() -> None:  # as Streamlit's worker thread runs the button's callable
        built.append(render.report_workbook(quality, results, "en"))
        built.append(render.report_pdf(quality, results[0], "H01", "en"))

    thread = threading.Thread(target=click)
    thread.start()
    thread.join(300)
    assert len(built) == 2 and all(built)
    assert reads == ["version", "version"]  # one per file
    assert data.version() and len(reads) == 3  # outside a file's build, read as before
