"""A manager on a registry of more than ten hospitals picks a comparison group in the compare page's sidebar among
the published groups offered to them (vbhc.access.offered_groups) and nothing else, in Dutch and English: a group
whose atom with another would be one hospital, and one whose hospital codes are written in another case (it holds
none of the registry's hospitals), are not offered.

The registry: the browser tests' demo generator (ten hospitals) with H02-H10 each split in two (H11-H19 take every
other care cycle), nineteen hospitals treating hip osteoarthritis, imported as `vbhc import` does (hip
osteoarthritis's care cycles only: _split_demo)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import StreamlitServer, demo_files, signed_in_server
from tests.e2e.test_browser import RUN_TIMEOUT_MS, SETTLED_MS, assert_no_exception, wait_for_run
from tests.e2e.test_sign_in import sign_in
from vbhc.i18n import t

CONDITION = "hip_osteoarthritis"
GROUPS = {  # name -> hospitals, in the file's order
    "Groep A": [f"H{i:02d}" for i in range(2, 8)],
    "Groep B": [f"H{i:02d}" for i in range(8, 14)],
    "Groep A plus H08": [f"H{i:02d}" for i in range(2, 9)],  # differs from A by H08 alone: not offered
    "kleine letters": [f"h{i:02d}" for i in range(14, 20)],  # no hospital of the registry: not offered
}
OFFERED = ["Groep A", "Groep B"]


def _split_demo(demo: list[Path], folder: Path) -> list[Path]:
    """The demo's files (`demo`: the browser tests' demo registry's, tests.e2e.conftest.demo_files) with every
    hospital but the own one split in two (H02 -> H02 and H11, ..., H10 -> H19), and of CONDITION only, written into
    `folder`: the test reads no other condition, and the import's precomputation and the server's preparation of
    the other six conditions' views were most of the test's CPU. CONDITION's rows are the same as in the whole
    demo's files (the same care cycles, split alike). The files are the shared registry's, not generated again: the
    generator wrote the same files a second time (the same cycles and seed): 1.2-1.4 s of CPU in a process that
    has generated them once, 3.7 s in a fresh one (a run of this module alone), against 0.3 s for the split."""
    from vbhc.demo import TABLES

    units_file, *table_files = demo
    read = dict(zip(TABLES[1:], table_files, strict=True))
    folder.mkdir(parents=True, exist_ok=True)
    units = pd.read_excel(units_file, sheet_name="units")
    twins = {f"H{i:02d}": f"H{i + 9:02d}" for i in range(2, 11)}
    copies = units[units["hospital"].isin(list(twins))].copy()
    copies["hospital_name"] = copies["hospital_name"] + " Zuid"
    copies["hospital"] = copies["hospital"].map(twins)
    pd.concat([units, copies], ignore_index=True).to_excel(folder / "units.xlsx", sheet_name="units", index=False)
    cycles = pd.read_csv(read[TABLES[1]], dtype=str, keep_default_na=False)
    moved = cycles["hospital"].isin(list(twins)) & (pd.Series(range(len(cycles))) % 2 == 1)
    cycles.loc[moved, "hospital"] = cycles.loc[moved, "hospital"].map(twins)
    cycles = cycles[cycles["condition"] == CONDITION]
    cycles.to_csv(folder / f"{TABLES[1]}.csv", index=False)
    for table in TABLES[2:]:  # the outcomes, PROMs and costs of CONDITION's care cycles
        rows = pd.read_csv(read[table], dtype=str, keep_default_na=False)
        rows[rows["cycle_id"].isin(cycles["cycle_id"])].to_csv(folder / f"{table}.csv", index=False)
    return [folder / "units.xlsx", *(folder / f"{table}.csv" for table in TABLES[1:])]


@pytest.fixture(scope="module")
def many_hospitals(oidc_provider: str, _servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StreamlitServer]:
    """The dashboard in production mode (OIDC sign-in, tests/roles.py's mapping) on the nineteen hospitals, with
    the published groups of GROUPS."""
    from vbhc import cli
    from vbhc.store import get_engine

    folder = tmp_path_factory.mktemp("many-hospitals")
    database_url = f"sqlite:///{folder / 'vbhc.db'}"
    files = _split_demo(demo_files(_servers[0].database_url), folder / "files")
    groups = folder / "comparison_groups.toml"
    groups.write_text(
        "".join(f'[[group]]\nname = "{name}"\nhospitals = {hospitals!r}\n\n' for name, hospitals in GROUPS.items()),
        encoding="utf-8",
    )
    # boots while the registry is imported: nothing touches the database before a page is requested
    server = signed_in_server(database_url, folder, oidc_provider, env={"VBHC_COMPARISON_GROUPS_FILE": str(groups)})
    try:
        get_engine.cache_clear()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("VBHC_DATABASE_URL", database_url)
            env.setenv("VBHC_REPORT_CHARTS", "0")  # no PDF report is made here (~20 s of CPU)
            try:
                assert cli.main(["import", *map(str, files)]) == 0
            finally:
                get_engine().dispose()
                get_engine.cache_clear()
        server.wait_until_healthy()
        yield server
    finally:
        server.stop()


def _options(page: Page, box) -> list[str]:
    """The options of a selectbox, read once its list is open (a click during a run drawing the sidebar again may
    leave it closed: clicked again)."""
    for _ in range(3):
        box.click()
        try:
            page.get_by_role("option").first.wait_for(timeout=SETTLED_MS)
        except PlaywrightTimeoutError:
            page.keyboard.press("Escape")
            wait_for_run(page)
            continue
        options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
        page.keyboard.press("Escape")
        return options
    raise AssertionError("the comparison group's list does not open")


def test_a_manager_is_offered_the_published_groups_and_nothing_else(page: Page, many_hospitals: StreamlitServer):
    sign_in(page, many_hospitals.url, "manager")
    for lang in ("nl", "en"):
        page.goto(f"{many_hospitals.url}/compare?condition={CONDITION}&lang={lang}")
        box = page.get_by_role("combobox", name=t("filter.comparison_group", lang), exact=True)
        box.wait_for(timeout=RUN_TIMEOUT_MS)
        wait_for_run(page)
        assert_no_exception(page)
        options = _options(page, box)
        assert options == [t("comparison.all_units", lang), *OFFERED], (lang, options)
