"""Dashboard entry point: sign-in, page setup, navigation by role, and the global filters (mirrored in the URL)."""

import os

import streamlit as st

from ui import preload

preload.wait()  # a restarted server's background imports (ui.serve) finish before this run imports anything

from ui import auth, data, filters, guard  # noqa: E402
from ui.run_timing import RunTiming  # noqa: E402
from vbhc.i18n import t  # noqa: E402
from vbhc.safety import css_text  # noqa: E402
from vbhc.settings import database_url  # noqa: E402

_timing = RunTiming()
data.begin_run()
st.set_page_config(page_title="VBHC", page_icon=":bar_chart:", layout="wide")
lang = filters.language()
# a meeting screen (1440x900) has no height to spare: less empty space above the title, one-line titles
st.html(
    "<style>"
    ".stMainBlockContainer{padding-top:4rem}"
    "[data-testid=stMain] h1{font-size:2rem;padding-top:0.25rem}"
    "@media (max-width: 640px){[data-testid=stMain] h1{font-size:1.5rem}}"
    # a chart wider than the screen (facets, fixed widths) scrolls sideways in its own box, not the whole page
    "[data-testid=stVegaLiteChart]{max-width:100%;overflow-x:auto}"
    # the file uploader's own texts are English in Streamlit's browser code with no option to change them: the
    # button and the size line show the catalog's texts instead (CSS generated content, read by screen readers)
    "[data-testid=stFileUploaderDropzone] button [data-testid=stMarkdownContainer] p,"
    "[data-testid=stFileUploaderDropzoneInstructions] span{font-size:0}"
    "[data-testid=stFileUploaderDropzone] button [data-testid=stMarkdownContainer] p::after"
    f"{{content:{css_text(t('data.upload_button', lang))};font-size:0.875rem}}"
    "[data-testid=stFileUploaderDropzoneInstructions] span::after"
    f"{{content:{css_text(t('data.upload_size', lang, limit=guard.upload_limit_text(lang)))};"
    "font-size:0.875rem}"
    "</style>"
)
# a VBHC_* setting the operator got wrong, or a database that cannot be reached: one line, not an error box
guard.check_setup(lang)
with guard.database_reachable(lang):
    # who is looking: stops here with the sign-in screen until someone is signed in (OIDC), or in local mode when
    # the server is reachable from the network
    viewer = auth.current_viewer()
    st.session_state["_viewer"] = viewer
    _warm_up = data.start_warm_up(database_url(), data.version())

    # VBHC_START_PAGE lets benchmarks/page_speed.py time a page on its own (default: the overview)
    start = os.environ.get("VBHC_START_PAGE", "overview")
    PAGES = [
        ("overview", "nav.overview", ":material/dashboard:"),
        ("condition_team", "nav.condition_team", ":material/groups:"),
        ("meeting", "nav.meeting", ":material/event:"),
        ("board", "nav.board", ":material/leaderboard:"),
        ("proms", "nav.proms", ":material/assignment:"),
        ("compare", "nav.compare_departments", ":material/compare_arrows:"),
        ("cost_value", "nav.cost_value", ":material/euro:"),
        ("data", "nav.data", ":material/database:"),
        ("audit", "nav.audit", ":material/policy:"),
        ("methods", "nav.methods", ":material/menu_book:"),
    ]
    allowed = [(name, key, icon) for name, key, icon in PAGES if auth.page_allowed(viewer, name)]
    default = start if any(name == start for name, _, _ in allowed) else allowed[0][0]
    # every address answers in the viewer's language, where Streamlit's browser code says "Page not found" in
    # English over the start page. The start page is served at "/" and keeps its own name (its identity, and its
    # widgets' states, do not change with the start page); its own address (/data for the admin, a colleague's
    # link) names it, so in a run asked for that address a hidden page stands at "/" instead and the start page
    # answers at its own address. A page the viewer's role does not open, and an address that names no page,
    # get a hidden page at that address saying so and linking to the start page.
    asked = auth.address_name(st.context.url, st.get_option("server.baseUrlPath"))
    at_own_address = asked == default
    pages = [
        st.Page(f"views/{name}.py", title=t(key, lang), icon=icon, default=name == default and not at_own_address)
        for name, key, icon in allowed
    ]
    home = pages[[name for name, _, _ in allowed].index(default)]
    listed = {name for name, _, _ in allowed}
    pages += [
        st.Page(auth.not_listed_page(t(key, lang), home, lang), title=t(key, lang), url_path=name, visibility="hidden")
        for name, key, _ in PAGES
        if name not in listed
    ]
    known = {name for name, _, _ in PAGES}
    if at_own_address:  # "/" is not asked for in this run: were it, it goes to the start page's own address
        pages.append(
            st.Page(auth.to_start_page(home), title=home.title, url_path="_start", visibility="hidden", default=True)
        )
    elif asked and asked not in known and "/" not in asked:
        unknown = auth.unknown_address_page(t("app.page_unknown_title", lang), home, lang)
        pages.append(st.Page(unknown, title=t("app.page_unknown_title", lang), url_path=asked, visibility="hidden"))
    page = st.navigation(pages)
    if not st.get_option("client.disableDataExport"):
        # started without .streamlit/config.toml (another working directory, a --client option): the tables' own
        # CSV download is neither role-checked, audited nor formula-safe, so it is switched off here, and the run
        # starts again so the browser gets the setting before any table is drawn (after st.navigation, so the
        # rerun stays on the page that was asked for)
        st.set_option("client.disableDataExport", True)
        st.rerun()
    data.hold_wait_place()  # what the run waits for shows at the top of the page (held in every run)
    # the filters live here, not in the pages, so they survive page switches; pages read filters.current()
    st.session_state["_filters"] = filters.sidebar(viewer)
    page.run()
data.end_run()
# server-side time of this run, read by benchmarks/page_speed.py (and browser_speed.py's opt-in log)
st.session_state["_run_seconds"] = _timing.finish(page.url_path, bool(getattr(_warm_up, "is_alive", bool)()))
