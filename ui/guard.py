"""What a viewer sees when the dashboard cannot work at all: a setting it cannot use, or a database it cannot
reach. One line in the viewer's language instead of Streamlit's error box; the details go to the server's log."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator

import streamlit as st
from sqlalchemy.exc import InterfaceError, OperationalError

from vbhc.i18n import fmt_number, t
from vbhc.settings import SettingError, check_settings, max_upload_mb

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


def upload_limit_mb() -> float:
    """The largest file a dashboard upload takes, as its importer refuses it: VBHC_MAX_UPLOAD_MB (every importer
    checks it), within Streamlit's own server.maxUploadSize (the widget refuses a larger file before it is sent).
    The uploader's size line said the Streamlit option alone: 200 MB where VBHC_MAX_UPLOAD_MB=50 refused a 60 MB
    file after it was sent. An unusable setting counts as unset here; check_setup says it."""
    streamlit_mb = float(st.get_option("server.maxUploadSize"))
    try:
        return min(max_upload_mb(), streamlit_mb)
    except SettingError:
        return streamlit_mb


def upload_widget_mb() -> int:
    """The file uploader's own limit (whole megabytes, Streamlit's max_upload_size): above upload_limit_mb by a
    tenth (at least 1 MB), within Streamlit's server.maxUploadSize. The widget refuses a larger file in its own
    English words ('File must be 200.0MB or smaller') on a Dutch page; with the margin a file just above the
    limit reaches the importer, which refuses it in the reader's language naming the limit (read.file_too_large),
    and the widget's English is met only by a file far above it."""
    limit = upload_limit_mb()
    streamlit_mb = float(st.get_option("server.maxUploadSize"))
    return max(1, math.floor(min(streamlit_mb, math.ceil(limit) + max(1, math.ceil(limit / 10)))))


def upload_limit_text(lang: str) -> str:
    """upload_limit_mb as the reader's language writes it (200, or 0,5 for half a megabyte)."""
    limit = upload_limit_mb()
    return fmt_number(limit, lang, 0 if float(limit).is_integer() else 1)
