"""Who is looking: Streamlit's OpenID Connect sign-in (production) or the single-user demo on localhost.

Sign-in only says who someone is; vbhc.access decides what they may see (roles mapping file), and the pages
call its guarded functions. Mode: VBHC_AUTH=oidc|local; by default OIDC when .streamlit/secrets.toml (or
--secrets.files) has an [auth] section, else local. Local mode refuses to run unless the server listens on
localhost only, so an unprotected dashboard is never reachable from the network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

import streamlit as st

from ui import data, filters
from vbhc import access, audit
from vbhc.access import Role, Viewer
from vbhc.i18n import t, t_md
from vbhc.settings import access_file, auth_mode

LOOPBACK = ("localhost", "127.0.0.1", "::1")
INDICATOR_PAGES = ("overview", "condition_team", "proms", "compare", "cost_value")
#: Pages of the outcome roles besides the indicator pages: the improvement meeting (a manager reads its status) and
#: the board's review of every team's improvement cycle (counts; a care team sees its own conditions).
OUTCOME_PAGES = (*INDICATOR_PAGES, "meeting", "board")


def _secrets_have_auth() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def mode() -> str:
    return auth_mode() or ("oidc" if _secrets_have_auth() else "local")


@st.cache_resource(show_spinner=False)
def _mapping(path: str, modified: float) -> access.AccessMapping:
    return access.load_access(path)


def _stop_with(message: str) -> None:
    st.title(t("app.title", filters.language()))
    st.error(message)
    st.stop()


def current_viewer() -> Viewer:
    """The signed-in viewer (stops the run with the sign-in screen, or a clear error, when there is none)."""
    lang = filters.language()
    if mode() == "local":
        address = str(st.get_option("server.address") or "")
        if address not in LOOPBACK:
            _stop_with(
                t_md("auth.local_not_loopback", lang, address=address)
                if address
                else t("auth.local_not_loopback", lang, address=t("auth.all_interfaces", lang))
            )
        st.sidebar.caption(t("auth.local_mode", lang))
        return access.local_viewer(t("auth.local_user", lang))
    if not _secrets_have_auth():
        _stop_with(t("auth.not_configured", lang))
    if not st.user.is_logged_in:
        st.title(t("app.title", lang))
        st.info(t("auth.sign_in_needed", lang), icon=":material/lock:")
        st.button(t("app.sign_in", lang), on_click=st.login, type="primary")
        st.stop()
    path = Path(access_file())
    try:
        # a missing file: load_access says so (nothing is cached for it, so a file put there later is read)
        mapping = _mapping(str(path), path.stat().st_mtime if path.is_file() else 0.0)
    except access.AccessConfigError as exc:
        # the mistake names the file's path on the server and the values written (people's e-mail addresses,
        # group names): the log gets it, every signed-in user only that no role can be given (no one has a role
        # while the mapping is wrong, so no one is known to keep it)
        _stop_with(access.config_problem(str(exc), lang, "auth.mapping_unreadable"))
    email = str(st.user.get("email") or st.user.get("sub") or "")
    viewer = access.viewer_for(email, str(st.user.get("name") or ""), st.user.get("groups") or [], mapping)
    if st.session_state.get("_signed_in_as") != email:
        audit.record(data.current_engine(), viewer, "sign_in")
        st.session_state["_signed_in_as"] = email
    roles = ", ".join(t(f"role.{r.value}", lang) for r in sorted(viewer.roles)) or "–"
    st.sidebar.caption(f"{t_md('app.signed_in_as', lang, user=viewer.name or email)} · {t('app.role', lang)}: {roles}")
    if st.sidebar.button(t("app.sign_out", lang)):
        audit.record(data.current_engine(), viewer, "sign_out")
        st.session_state.pop("_signed_in_as", None)
        st.logout()
    if not viewer.roles:
        _stop_with(t_md("auth.no_role", lang, user=email))
    return viewer


def page_allowed(viewer: Viewer, page: str) -> bool:
    """Which pages the viewer's navigation lists (the data behind each page is checked again in vbhc.access)."""
    if page in OUTCOME_PAGES:
        return bool(viewer.roles & {Role.CARE_TEAM, Role.QUALITY, Role.MANAGER})
    if page == "data":
        return access.may_import(viewer)
    if page == "audit":
        return access.may_read_audit(viewer)
    return True  # methods


def not_listed_page(title: str, home: st.Page, lang: str) -> Callable[[], None]:
    """A page the viewer's navigation does not list, drawn at its own address (a link from a colleague with
    another role): it says so in the viewer's language and links to the start page, showing nothing of the page."""

    def not_listed() -> None:
        st.title(title)
        st.info(t("app.page_not_listed", lang), icon=":material/block:")
        st.page_link(home, label=t("app.to_start_page", lang, page=home.title), icon=":material/arrow_forward:")

    return not_listed


def unknown_address_page(title: str, home: st.Page, lang: str) -> Callable[[], None]:
    """The page at an address that names no page of the app (a mistyped or outdated link): says so in the viewer's
    language and links to the start page, where Streamlit's browser code said "Page not found" in English."""

    def unknown() -> None:
        st.title(title)
        st.info(t("app.page_unknown", lang), icon=":material/link_off:")
        st.page_link(home, label=t("app.to_start_page", lang, page=home.title), icon=":material/arrow_forward:")

    return unknown


def to_start_page(home: st.Page) -> Callable[[], None]:
    """The page at "/" in a run asked for the start page's own address (which then serves the start page)."""

    def to_start() -> None:
        st.switch_page(home)

    return to_start


def address_name(url: str | None, base_path: str = "") -> str:
    """The page name an address asks for: the path of `url` (st.context.url, as the browser sent it) after the
    app's base path (server.baseUrlPath), without slashes at its ends; "" for the app's root or no address. A name
    holding a slash (/a/b) is returned as it is: no page of the app has one."""
    if not url:
        return ""
    path = urlsplit(url).path.strip("/")
    base = (base_path or "").strip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :].strip("/")
    return unquote(path).strip()  # " " (%20) would be an empty address, which no page may have


def current() -> Viewer:
    return st.session_state["_viewer"]
