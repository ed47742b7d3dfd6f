"""Privacy of what the pages render (AppTest): text taken from the data is shown as typed, never interpreted as
markdown or HTML, and no table offers the grid's own (unaudited, formula-unsafe) CSV download."""

from __future__ import annotations

import re

import pytest
from streamlit import config
from streamlit.testing.v1 import AppTest

from tests import registry_files
from tests.apptest import run_on_page
from tests.shown import tables as shown_tables
from vbhc.ingest import import_files
from vbhc.safety import md_escape
from vbhc.settings import PROJECT_ROOT
from vbhc.store import get_engine

PAGES = [
    "views/overview.py",
    "views/condition_team.py",
    "views/proms.py",
    "views/compare.py",
    "views/cost_value.py",
    "views/data.py",
    "views/audit.py",
    "views/methods.py",
]
# hospital and department codes of a registry someone crafted: a link, an HTML tag, bold, code, LaTeX
HOSPITALS = {"H01": "[H67](https://evil.example)", "H02": "<img src=x onerror=alert(1)>"}
DEPARTMENTS = {"SUR": "**SUR**", "ORT": "`ORT` $x$"}
HOSTILE = [*HOSPITALS.values(), *DEPARTMENTS.values(), "https://evil.example", "<img", "**SUR**", "$x$"]
#: Elements whose text Streamlit renders as markdown, and the attribute holding it.
MARKDOWN_ELEMENTS = {
    "title": "value",
    "header": "value",
    "subheader": "value",
    "markdown": "value",
    "caption": "value",
    "info": "value",
    "warning": "value",
    "error": "value",
    "success": "value",
    "toast": "value",
    "metric": "label",
    "expander": "label",
    "tab": "label",
    "button": "label",
    "checkbox": "label",
}


pytestmark = pytest.mark.usefixtures("local_mode")  # tests/conftest.py; signed-in tests set VBHC_AUTH


@pytest.fixture(scope="module")
def hostile_registry(tmp_path_factory) -> str:
    """The small registry with every hospital and department code replaced by hostile markdown, built once for
    the module (the pages only read it; each page computes or reads its views once, not once per test).

    The importer refuses such codes (tests/test_import_trust.py); the pages must escape them all the same, for a
    database filled by other means, so the code check is lifted here.
    """
    from vbhc.ingest import validate

    folder = tmp_path_factory.mktemp("hostile")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(validate, "UNIT_CODE", r".+")
        mp.setattr(
            registry_files,
            "UNITS",
            [
                (HOSPITALS[h], DEPARTMENTS[d], f"{name} **bold** <b>x</b>", f"[{dep}](https://evil.example)", div, own)
                for h, d, name, dep, div, own in registry_files.UNITS
            ],
        )
        original = registry_files.cycles

        def cycles() -> list[dict[str, str]]:
            return [
                row | {"hospital": HOSPITALS[row["hospital"]], "department": DEPARTMENTS[row["department"]]}
                for row in original()
            ]

        mp.setattr(registry_files, "cycles", cycles)
        url = f"sqlite:///{folder / 'hostile.db'}"
        engine = get_engine(url)
        import_files(registry_files.write_small_registry(folder / "files"), engine, imported_by="**importer** <b>")
        engine.dispose()
        get_engine.cache_clear()
    return url


@pytest.fixture
def hostile_db(hostile_registry, monkeypatch):
    """The pages on the hostile registry (VBHC_DATABASE_URL), with the engine cache emptied before and after."""
    monkeypatch.setenv("VBHC_DATABASE_URL", hostile_registry)
    get_engine.cache_clear()
    yield hostile_registry
    get_engine.cache_clear()


def _rendered_markdown(at: AppTest) -> list[str]:
    texts = []
    for kind, attribute in MARKDOWN_ELEMENTS.items():
        for element in at.get(kind):
            value = getattr(element, attribute, None)
            if isinstance(value, str):
                texts.append(value)
    return texts


def _run(page: str, **state: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.query_params["lang"] = "en"
    for key, value in state.items():
        at.session_state[key] = value
    run_on_page(at, page)
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.parametrize("level", ["hospital", "department"])
@pytest.mark.parametrize("page", PAGES)
def test_hostile_unit_codes_are_shown_as_text_on_every_page(hostile_db, page, level):
    state = {"condition": "oesophageal_cancer", "level": level}
    unit = HOSPITALS["H01"] if level == "hospital" else f"{HOSPITALS['H01']}/{DEPARTMENTS['SUR']}"
    state[f"unit_{level}"] = unit
    at = _run(page, **state)
    texts = _rendered_markdown(at)
    assert texts, page
    for text in texts:
        for hostile in HOSTILE:
            assert hostile not in text, (page, text)
        assert not re.search(r"(?<!\\)\]\(", text), (page, text)  # no live markdown link
    for table in shown_tables(at):  # escaped HTML: the browser shows the text as typed, runs and links nothing
        assert table.tags <= {"style", "div", "table", "thead", "tbody", "tr", "th", "td"}, (page, table.tags)
        texts = [str(v) for v in [*table.value.columns, *table.value.to_numpy().ravel()]]
        for name in HOSPITALS.values() if level == "hospital" else DEPARTMENTS.values():
            # a hostile name is shown whole, as typed, or not at all (another unit's table)
            assert all(name in text for text in texts if name[:4] in text), (page, name)
    if page == "views/condition_team.py":  # the unit by its (hostile) name, shown as text, exactly as imported
        from vbhc.registry import unit_names, units

        name = unit_names(units(engine=get_engine(hostile_db)), level)[unit]
        assert at.title[0].value.endswith(f" · {md_escape(name)}")


def test_the_grid_download_is_switched_off_for_every_table(hostile_db):
    """Tables' own "Download as CSV" is neither role-checked, audited nor formula-safe: it is off in the shipped
    config, and the app switches it off itself when started without that config."""
    import tomllib

    shipped = tomllib.loads((PROJECT_ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert shipped["client"]["disableDataExport"] is True
    previous = config.get_option("client.disableDataExport")
    config.set_option("client.disableDataExport", False)
    try:
        at = _run("views/data.py")
        assert config.get_option("client.disableDataExport") is True
        assert at.dataframe  # tables are still shown
    finally:
        config.set_option("client.disableDataExport", previous)


def test_data_page_offers_the_audited_csv_of_the_import_batches(hostile_db):
    at = _run("views/data.py", condition="oesophageal_cancer")
    downloads = at.get("download_button")
    assert len(downloads) == 2  # the import batches and the completeness grid, both through export_table
    assert {d.proto.label for d in downloads} == {"Download table (CSV)"}


def _signed_in(monkeypatch, tmp_path, claims: dict, page: str, **state: str) -> AppTest:
    mapping = tmp_path / "access.toml"
    mapping.write_text(
        '[[grant]]\ngroup = "beheer"\nrole = "admin"\n\n[[grant]]\ngroup = "kwaliteit"\nrole = "quality"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(mapping))
    monkeypatch.setenv("VBHC_AUTH", "oidc")
    at = AppTest.from_file(str(PROJECT_ROOT / "streamlit_app.py"), default_timeout=180)
    at.secrets["auth"] = {"client_id": "x", "client_secret": "x", "server_metadata_url": "http://localhost/x"}
    at.user = {"is_logged_in": True, **claims}
    at.query_params["lang"] = "en"
    for key, value in state.items():
        at.session_state[key] = value
    run_on_page(at, page)
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_csv_downloads_follow_the_role_and_user_names_are_text(hostile_db, monkeypatch, tmp_path):
    name = "[Mallory](https://evil.example) <img src=x onerror=alert(1)>"
    admin = {"email": "beheer@example.org", "name": name, "groups": ["beheer"]}
    at = _signed_in(monkeypatch, tmp_path, admin, "views/data.py")
    assert at.dataframe and not at.get("download_button")  # admin: imports, but exports nothing
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert md_escape(name) in captions and name not in captions
    quality = {"email": "kwaliteit@example.org", "name": "Q", "groups": ["kwaliteit"]}
    at = _signed_in(monkeypatch, tmp_path, quality, "views/audit.py")
    assert [d.proto.label for d in at.get("download_button")] == ["Download as CSV"]
