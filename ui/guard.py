"""What a viewer sees when the dashboard cannot work at all: a setting it cannot use, or a database it cannot
reach. One line in the viewer's language instead of Streamlit's error box; the details go to the server's log."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import streamlit as st
from sqlalchemy.exc import InterfaceError, OperationalError

from vbhc.i18n import t
from vbhc.settings import SettingError, check_settings

log = logging.getLogger(__name__)


def check_setup(lang: str) -> None:
    """Stop the run with one line when a VBHC_* setting has a value the dashboard cannot use. The page names the
    setting, not its value (a database address may carry a user name); the log names both."""
    try:
        check_settings()
    except SettingError as exc:
        log.error("%s", exc)
        st.error(t("setting.page", lang, name=exc.name))
        st.stop()


@contextlib.contextmanager
def database_reachable(lang: str) -> Iterator[None]:
    """Stop the run with one line when the database cannot be reached (a server down, a file gone, a lock held
    too long). Only the driver's own message is logged: a statement's parameters may hold patient values."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        log.error("the database cannot be reached: %s: %s", type(exc.orig).__name__, exc.orig)
        st.error(t("setting.database_unreachable", lang))
        st.stop()
