"""The Data page's upload of external benchmark figures (AppTest, on an empty database): an accepted file is
stored and listed with its source, a bad one refused with one line naming file, row, column and value."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import run_on_page
from vbhc.i18n import t
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

pytestmark = pytest.mark.usefixtures("local_mode")  # tests/conftest.py: the single-user mode, every role

HEADER = "source,published,period,condition,indicator,definition_version,unit,n,observed,expected"
GOOD = f"{HEADER}\nnational registry,2025-03-01,2024,colorectal_cancer,mortality_30d,1,X01,120,6,5.2\n".encode()
BAD = GOOD.replace(b",120,6,", b",5,6,")


@pytest.fixture
def empty_db(tmp_path, monkeypatch):
    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_engine.cache_clear()
    yield
    get_engine.cache_clear()


def _upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.file_uploader(key="external_upload").set_value((name, content, "text/csv"))
    if at.button(key="external_import").disabled:  # the button comes alive with a file, as in the browser
        at.run()
    at.button(key="external_import").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_the_data_page_imports_external_figures_and_refuses_a_bad_file(empty_db):
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "nl"
    run_on_page(at, "views/data.py")
    assert t("data.external_title", "nl") in [s.value for s in at.subheader]
    _upload(at, "terugkoppeling.csv", BAD)
    errors = [e.value.replace("\\", "") for e in at.error]  # shown as escaped markdown
    assert (
        len(errors) == 1
        and "terugkoppeling.csv rij 2 kolom 'observed': waarde '6': observed is groter dan n (5)" in errors[0]
    ), errors
    assert "\n" not in errors[0]
    _upload(at, "terugkoppeling.csv", GOOD)
    assert any("1 cijfer opgeslagen" in s.value for s in at.success), [s.value for s in at.success]
    listed = at.dataframe[-1].value  # the last table on the page
    assert list(listed[t("data.external_source", "nl")]) == ["national registry"]


def test_a_refused_upload_lists_its_problems_in_a_table_whose_rules_wrap(empty_db):
    """The Dutch data page showed a refused upload's problems in a grid that cut the rule, the one cell that says
    what to fix, at its right edge ("... geef elk bestand een eigen naam, zodat ell"): now a static table whose
    rule column wraps, every rule read whole, in the reader's language."""
    from tests.shown import tables as shown_tables

    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "nl"
    run_on_page(at, "views/data.py")
    content = b"care_cycle_id,activity,quantity\nC1,ok_time,1\n"
    at.file_uploader(key="upload_files").set_value([("costs.csv", content, "text/csv")] * 2)
    at.run()
    next(b for b in at.button if b.label == t("data.import_button", "nl")).click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error, "the upload was not refused"
    rule = t("error.rule", "nl")
    (problems,) = [table for table in shown_tables(at) if rule in table.value.columns]
    assert len(problems.value) >= 1 and all(len(text) > 20 for text in problems.value[rule]), problems.value
    assert "max-width:420px" in problems.html  # the rule wraps at its column's width, never cut
    assert not [df for df in at.dataframe if rule in df.value.columns]


@pytest.mark.parametrize(
    ("setting", "shown", "widget"),
    [("5", "5 MB", 6), ("0.5", "0,5 MB", 2), (None, "200 MB", 220), ("500", "220 MB", 220)],
)
def test_the_uploaders_say_and_apply_the_importers_size_limit(empty_db, monkeypatch, setting, shown, widget):
    """Before: every uploader said 'at most 200 MB per file' (Streamlit's server.maxUploadSize) where the
    importers refuse a file above VBHC_MAX_UPLOAD_MB, so with VBHC_MAX_UPLOAD_MB=5 a 60 MB file was sent in full
    and then refused. Now the size line, the help and the widget's own limit follow the importers' setting
    (within Streamlit's; the widget counts whole megabytes, the importer refuses above the exact limit). The
    widget's own limit lies a tenth above the importers': a file just above their limit was refused by the widget
    in English ('File must be 200.0MB or smaller') on a Dutch page, and now reaches the importer, which refuses it
    in the reader's language."""
    if setting is None:
        monkeypatch.delenv("VBHC_MAX_UPLOAD_MB", raising=False)
    else:
        monkeypatch.setenv("VBHC_MAX_UPLOAD_MB", setting)
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "nl"
    run_on_page(at, "views/data.py")
    assert not at.exception, [e.value for e in at.exception]
    registry = at.file_uploader(key="upload_files")
    assert f"{shown} per bestand" in registry.help, registry.help
    assert f"{shown} per bestand" in "".join(h.proto.body for h in at.get("html"))  # the widget's own size line
    for key in ("upload_files", "external_upload", "model_upload"):
        assert at.file_uploader(key=key).proto.max_upload_size_mb == widget
