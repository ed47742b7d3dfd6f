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
