"""Sign-in through a real OpenID Connect provider on localhost (oidc-provider-mock), as three users with
different roles, in headless Chromium: what each may see and download, and what the audit log recorded."""

from __future__ import annotations

import hashlib
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.e2e.conftest import StreamlitServer
from tests.e2e.test_browser import (
    BAD_CARE_CYCLES,
    RUN_TIMEOUT_MS,
    assert_no_exception,
    screenshot,
    wait_for_run,
    wait_for_title,
)
from vbhc.i18n import t

TEAM_TITLE = "Colorectal cancer · Universitair Medisch Centrum Veenmeer"


#: (server, user) -> the browser's cookies after that user signed in through the provider. A later test of the same
#: user on the same server starts signed in: one page load instead of three (the sign-in page with its script run,
#: the provider's page, the callback; ~4 s of a loaded machine's wall each, five times in the suite). Each user's
#: first sign-in on a server goes through the provider, and the server keeps no session of it (the cookie is all).
SIGNED_IN: dict[tuple[str, str], list] = {}


def sign_in(page: Page, url: str, sub: str, path: str = "") -> None:
    """`sub` signed in on the server at `url`, the page at `path` (e.g. "/audit?lang=nl"; "": the start page)
    drawn: through the provider the first time (which lands on the start page: `path` is then loaded after it),
    with the cookies of that sign-in after it (SIGNED_IN), and then `path` is the one page load (loading the start
    page first and then `path` drew a page, with its script run, for nothing)."""
    cookies = SIGNED_IN.get((url, sub))
    if cookies is None:
        page.goto(url)
        # a first page after the start may be slow
        page.get_by_role("button", name="Sign in").click(timeout=RUN_TIMEOUT_MS)
        page.get_by_role("button", name=sub, exact=True).click()  # the provider's button for a predefined user
        page.get_by_test_id("stSidebarNav").wait_for(timeout=RUN_TIMEOUT_MS)
        wait_for_run(page)
        SIGNED_IN[(url, sub)] = page.context.cookies()
        if not path:
            return
    else:
        page.context.add_cookies(cookies)
    page.goto(url + path)
    page.get_by_test_id("stSidebarNav").wait_for(timeout=RUN_TIMEOUT_MS)
    wait_for_run(page)


def nav_labels(page: Page) -> list[str]:
    links = page.get_by_test_id("stSidebarNav").get_by_role("link").all_inner_texts()
    return [text.strip().splitlines()[-1].strip() for text in links]  # the icon's name comes first


def audit_events(database_url: str):
    from vbhc import audit
    from vbhc.store import get_engine

    return audit.read(get_engine(database_url))


def test_signed_out_request_sees_only_the_sign_in_screen(page: Page, signed_app: StreamlitServer) -> None:
    for path in ("", "/condition_team", "/audit"):
        page.goto(signed_app.url + path)
        expect(page.get_by_role("button", name="Sign in")).to_be_visible(timeout=RUN_TIMEOUT_MS)
        wait_for_run(page)
        assert page.get_by_test_id("stSidebarNav").count() == 0
        assert page.get_by_test_id("stDataFrame").count() == 0
        assert page.get_by_role("combobox").count() == 0  # no filters, so no condition or unit names


def test_quality_directorate_downloads_the_workbook_imports_and_reads_the_audit_log(
    page: Page, signed_app: StreamlitServer, artifacts: Path, tmp_path: Path
) -> None:
    sign_in(page, signed_app.url, "quality", "/condition_team?condition=colorectal_cancer")
    assert {"Overview", "Condition team", "Data", "Audit log"} <= set(nav_labels(page))
    wait_for_title(page, TEAM_TITLE)
    assert_no_exception(page)
    with page.expect_download(timeout=RUN_TIMEOUT_MS) as info:
        page.get_by_role("button", name="Download Excel workbook").click()
    download = info.value
    path = artifacts / "e2e-quality-workbook.xlsx"
    download.save_as(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.read_bytes()[:2] == b"PK"
    events = audit_events(signed_app.database_url)
    exports = events[(events["action"] == "export") & (events["user_id"] == "quality@example.org")]
    assert digest in set(exports["sha256"])  # who exported what, with the file's SHA-256
    # an import (refused: a bad value) is recorded too, with the file's SHA-256 and without its values
    bad = tmp_path / "care_cycles.csv"
    bad.write_text(BAD_CARE_CYCLES, encoding="utf-8")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Data").click()
    wait_for_title(page, "Data")
    from tests.e2e.test_pages import upload_and_click  # test_pages signs in with this module's sign_in

    uploader = page.locator(".st-key-upload_files").locator("input[type=file]")
    upload_and_click(page, uploader, bad, page.get_by_role("button", name="Import", exact=True), "import")
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text("Not imported:", timeout=RUN_TIMEOUT_MS)
    events = audit_events(signed_app.database_url)
    refused = events[(events["action"] == "import_refused") & (events["user_id"] == "quality@example.org")]
    assert len(refused) == 1 and refused.iloc[0]["sha256"] == hashlib.sha256(bad.read_bytes()).hexdigest()
    assert "abc" not in refused.iloc[0]["detail"]
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Audit log").click()
    wait_for_title(page, "Audit log")
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    screenshot(page, artifacts / "e2e-audit-log.png")


def test_care_team_sees_its_condition_and_patient_rows_but_not_the_audit_log(
    page: Page, signed_app: StreamlitServer, artifacts: Path
) -> None:
    sign_in(page, signed_app.url, "care", "/condition_team?condition=colorectal_cancer")
    labels = nav_labels(page)
    assert "Condition team" in labels and "Audit log" not in labels and "Data" not in labels
    wait_for_title(page, TEAM_TITLE)
    expect(page.get_by_role("button", name="Download PDF report")).to_be_visible()
    page.get_by_role("tab", name="Cases to discuss").click()
    expect(page.get_by_text("Patient-level care cycles are only shown")).to_have_count(0)
    expect(page.get_by_text("Care cycles of Universitair Medisch Centrum Veenmeer with an unwanted")).to_be_visible()
    page.get_by_role("combobox", name="Condition", exact=True).click()
    assert [o.strip() for o in page.get_by_role("option").all_inner_texts()] == ["Colorectal cancer"]
    page.keyboard.press("Escape")
    screenshot(page, artifacts / "e2e-care-team.png")
    for lang in ("nl", "en"):  # a deep link to a page the role does not have: said in the reader's language
        page.goto(f"{signed_app.url}/audit?lang={lang}")
        wait_for_title(page, t("nav.audit", lang))
        expect(page.get_by_text(t("app.page_not_listed", lang))).to_be_visible()
        assert page.get_by_role("dialog").count() == 0  # not Streamlit's English "Page not found" over the start page
        assert page.get_by_test_id("stDataFrame").count() == 0


def test_manager_sees_own_units_without_patient_rows_or_downloads(
    page: Page, signed_app: StreamlitServer, artifacts: Path
) -> None:
    sign_in(page, signed_app.url, "manager", "/condition_team?condition=colorectal_cancer")
    assert "Audit log" not in nav_labels(page)
    wait_for_title(page, TEAM_TITLE)
    assert page.get_by_role("button", name="Download Excel workbook").count() == 0
    page.get_by_role("tab", name="Cases to discuss").click()
    expect(page.get_by_text("Patient-level care cycles are only shown")).to_be_visible()
    page.get_by_role("combobox", name="Unit", exact=True).click()
    options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    assert options == ["Universitair Medisch Centrum Veenmeer"]
    page.keyboard.press("Escape")
    screenshot(page, artifacts / "e2e-manager.png")
    events = audit_events(signed_app.database_url)
    mine = events[events["user_id"] == "manager@example.org"]
    assert {"sign_in", "view"} <= set(mine["action"])
    viewed = set(mine.loc[mine["action"] == "view", "condition"].dropna())
    assert "colorectal_cancer" in viewed


def test_a_care_team_limited_to_its_hospital_keeps_its_own_unit_and_sets_its_goal(
    page: Page, signed_app: StreamlitServer, artifacts: Path
) -> None:
    """The care team limited to H01 (tests/roles.py `care_h01`) in Dutch: a link that puts another hospital in focus
    shows its own hospital, the unit list holds its own hospital only, and the meeting page's goal form sets its
    unit's goal (vbhc.access.focus_units, may_edit_improvement), clicked as the team would."""
    from tests.e2e.test_meeting import _choose_in_form, _form, _saved, _submit
    from tests.e2e.test_pages import OWN, assert_clean, main, team_title
    from vbhc import improvement
    from vbhc.access import Role, Scope, Viewer
    from vbhc.catalog import default_catalog
    from vbhc.i18n import t
    from vbhc.store import get_engine

    lang, condition = "nl", "colorectal_cancer"
    sign_in(page, signed_app.url, "care_h01", f"/condition_team?lang={lang}&condition={condition}&unit_hospital=H02")
    wait_for_title(page, team_title(condition, OWN, lang))
    assert_clean(page)
    page.get_by_role("combobox", name=t("filter.unit", lang), exact=True).click()
    assert [o.strip() for o in page.get_by_role("option").all_inner_texts()] == [OWN]
    page.keyboard.press("Escape")

    page.goto(f"{signed_app.url}/meeting?lang={lang}&condition={condition}")
    wait_for_title(page, t("agenda.title", lang))
    assert_clean(page)
    form = _form(page, "agenda.form_goal")
    leak = default_catalog().condition(condition).indicator("anastomotic_leak").label(lang)
    _choose_in_form(page, form.get_by_role("combobox").first, leak)
    form.get_by_label(t("agenda.field_value", lang)).fill("7")
    _submit(page, form, "agenda.submit_goal")
    _saved(page)
    expect(main(page).get_by_test_id("stAlertContentSuccess").first).to_contain_text(f"{leak} · {OWN}")
    screenshot(page, artifacts / "e2e-care-team-h01-meeting.png")
    engine = get_engine(signed_app.database_url)
    reader = Viewer("e2e", "e2e", (Scope(Role.QUALITY),))
    goals = [g for g in improvement.targets(engine, reader, condition) if g.changed_by == "care-h01@example.org"]
    assert [(g.unit, g.indicator, g.value) for g in goals] == [("H01", "anastomotic_leak", 0.07)]
    assert main(page).get_by_test_id("stException").count() == 0
