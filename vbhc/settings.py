"""Configuration from the environment, with defaults that make a fresh clone work without any setup."""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


class SettingError(ValueError):
    """An environment setting whose value cannot be used: one line naming the setting and the value, in the
    reader's language (the command line prints the English line; a page shows `text(lang)`). Raised where the
    setting is read, so a server or command stops before it works on a wrong limit."""

    def __init__(self, rule: str, name: str, value: object) -> None:
        self.rule, self.name, self.value = rule, name, str(value)
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        from vbhc.i18n import t

        return t(f"setting.{self.rule}", lang, name=self.name, value=self.value[:300])


#: The folder above the package: the repository's root when running from a checkout (editable install or
#: PYTHONPATH), site-packages when installed from a wheel. Use `in_checkout()` before relying on it.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def in_checkout() -> bool:
    """True when the package runs from a source checkout (streamlit_app.py and pyproject.toml beside it)."""
    return (PROJECT_ROOT / "pyproject.toml").is_file() and (PROJECT_ROOT / "streamlit_app.py").is_file()


def package_data(*parts: str) -> Path:
    """A file or folder shipped inside the package (vbhc/data/..., fonts, migrations), found through
    importlib.resources so an installed wheel finds it as well as a checkout. Wheels install as plain files, so the
    resource is a real path on disk."""
    return Path(str(resources.files("vbhc").joinpath(*parts)))


def data_dir() -> Path:
    """Folder for the embedded SQLite database and generated demo files (VBHC_DATA_DIR).

    Default: the repository's data/ folder when running from a checkout (what `bash scripts/dashboard` uses),
    otherwise ./data in the current directory, never inside site-packages.
    """
    env = os.environ.get("VBHC_DATA_DIR")
    if env:
        return Path(env)
    return PROJECT_ROOT / "data" if in_checkout() else Path.cwd() / "data"


def catalog_dir() -> Path:
    """Folder with the condition catalog (VBHC_CATALOG_DIR; default: the catalog shipped in vbhc/data/catalog)."""
    env = os.environ.get("VBHC_CATALOG_DIR")
    return Path(env) if env else package_data("data", "catalog")


def reference_dir() -> Path:
    """Folder with the PROM value sets and score tables shipped in vbhc/data/reference."""
    return package_data("data", "reference")


def database_url() -> str:
    """SQLAlchemy URL of the registry database: VBHC_DATABASE_URL, else a SQLite file in the data folder."""
    url = os.environ.get("VBHC_DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{data_dir() / 'vbhc.db'}"
    return _checked_url(url)


@functools.lru_cache(maxsize=8)
def _checked_url(url: str) -> str:
    """database_url's check of a URL, once per URL: a page run asks for the URL some 40 times (every cache key),
    and parsing it each time was a few ms of each run's CPU. A wrong URL is not kept: it is refused every time."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        raise SettingError("not_a_database_url", "VBHC_DATABASE_URL", _without_password(url)) from None
    if backend not in ("sqlite", "postgresql"):
        raise SettingError("not_a_database_url", "VBHC_DATABASE_URL", _without_password(url))
    return url


def _without_password(url: str) -> str:
    """The URL as it may be printed: a password (between "://user:" and "@") replaced by ***."""
    head, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{head}{sep}{user}{':***' if colon else ''}{at}{host}"


def import_chunk_rows() -> int:
    """Rows read and written per chunk during import; bounds memory for very large files."""
    return whole_setting("VBHC_IMPORT_CHUNK_ROWS", 200_000, least=1)


#: Import problems listed in full before the rest are only counted.
MAX_REPORTED_PROBLEMS = 50


def access_file() -> Path:
    """The roles mapping (users/OIDC groups -> roles and scopes), VBHC_ACCESS_FILE; see config/access.example.toml."""
    return Path(os.environ.get("VBHC_ACCESS_FILE", PROJECT_ROOT / "config" / "access.toml"))


def comparison_groups_file() -> Path:
    """The published comparison groups a manager may pick (VBHC_COMPARISON_GROUPS_FILE, default
    config/comparison_groups.toml; see config/comparison_groups.example.toml). No file: no group for managers."""
    return Path(os.environ.get("VBHC_COMPARISON_GROUPS_FILE", PROJECT_ROOT / "config" / "comparison_groups.toml"))


def auth_mode() -> str | None:
    """How viewers sign in, VBHC_AUTH: "oidc" or "local"; None when not set (the dashboard then signs in through
    OpenID Connect when .streamlit/secrets.toml configures it, else runs in local mode)."""
    chosen = os.environ.get("VBHC_AUTH", "").strip().lower()
    if chosen and chosen not in ("oidc", "local"):
        raise SettingError("not_an_auth_mode", "VBHC_AUTH", chosen)
    return chosen or None


def _positive(name: str, default: float) -> float:
    """A limit above 0 (`inf` switches it off); NaN, which passes every comparison, is refused."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError("not_a_number", name, raw) from None
    if not value > 0:  # also NaN
        raise SettingError("not_positive", name, raw)
    return value


def whole_setting(name: str, default: int, *, least: int) -> int:
    """A whole number of at least `least`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError("not_whole", name, raw) from None
    if value < least:
        raise SettingError("not_positive" if least > 0 else "negative", name, raw)
    return value


def signal_explain_days() -> float:
    """Days a new signal may wait for its explanation before it is overdue (VBHC_SIGNAL_EXPLAIN_DAYS, default 30:
    one monthly meeting plus a margin)."""
    return _positive("VBHC_SIGNAL_EXPLAIN_DAYS", 30)


def max_upload_mb() -> float:
    """Largest file the importer reads (VBHC_MAX_UPLOAD_MB, default 200 MB), checked before reading it."""
    return _positive("VBHC_MAX_UPLOAD_MB", 200)


def max_cell_chars() -> int:
    """Longest cell the importer accepts (VBHC_MAX_CELL_CHARS; default 32,767, Excel's own limit)."""
    return int(_positive("VBHC_MAX_CELL_CHARS", 32_767))


def max_unpacked_mb() -> float:
    """Largest total unpacked size of an XLSX workbook's parts (VBHC_MAX_UNPACKED_MB, default 100 MB).

    Reading a workbook costs about a second per 1.5 MB unpacked: the limit bounds that work before it starts
    (about 500,000 rows of a registry table; larger tables belong in CSV files).
    """
    return _positive("VBHC_MAX_UNPACKED_MB", 100)


def max_zip_ratio() -> float:
    """Largest unpacked/packed ratio of one XLSX part above 1 MB (VBHC_MAX_ZIP_RATIO, default 200): zip bombs."""
    return _positive("VBHC_MAX_ZIP_RATIO", 200)


#: Default small-number threshold for exports (counts below it are suppressed).
DEFAULT_SUPPRESS_BELOW = 10


def suppress_below() -> int:
    """Exports withhold a unit × indicator based on fewer care cycles than this (VBHC_SUPPRESS_BELOW, default 10).

    0 switches suppression off (for internal use only; the file then says so).
    """
    return whole_setting("VBHC_SUPPRESS_BELOW", DEFAULT_SUPPRESS_BELOW, least=0)


def max_import_mb() -> float:
    """Largest file a trusted command-line import reads (VBHC_MAX_IMPORT_MB, default 50,000 MB).

    Uploads through the dashboard have their own, smaller limit (max_upload_mb); the command line is run by
    whoever operates the server and imports national-size registries.
    """
    return _positive("VBHC_MAX_IMPORT_MB", 50_000)


def max_columns() -> int:
    """Most columns a file may have (VBHC_MAX_COLUMNS, default 200; the widest registry table has 16)."""
    return int(_positive("VBHC_MAX_COLUMNS", 200))


def max_rows() -> int:
    """Most data rows one file or sheet may have (VBHC_MAX_ROWS, default 1,000,000,000).

    Why this many: the limit guards against a file of endless rows, not against a large registry. A national
    registry's PROM file holds ~30 item rows per care cycle (~305,000,000 rows at 10,000,000 cycles, 13 GB, well
    within VBHC_MAX_IMPORT_MB); the old default of 100,000,000 refused the demo's own file at that size after
    reading a third of it. Uploads stay bounded by their size (VBHC_MAX_UPLOAD_MB)."""
    return int(_positive("VBHC_MAX_ROWS", 1_000_000_000))


def results_group_mb() -> float:
    """Disk the results store may use per dataset version for views of a chosen comparison group
    (VBHC_RESULTS_GROUP_MB, default 512 MB). Viewers can pick any group, so these views are unbounded in number;
    the least recently used are removed beyond this. The default views (every condition, level and period for all
    units) are bounded by the catalog and always kept."""
    return _positive("VBHC_RESULTS_GROUP_MB", 512)


def warm_up_years_up_to() -> int:
    """Registries up to this many care cycles also get every year precomputed (VBHC_WARM_UP_YEARS_UP_TO, default
    200,000; 0: only the default views)."""
    return whole_setting("VBHC_WARM_UP_YEARS_UP_TO", 200_000, least=0)


def report_charts_at_import() -> bool:
    """Whether `vbhc import`, `vbhc precompute` and a server's warm-up render the charts of `vbhc report --all
    --format pdf` ahead of the first report (VBHC_REPORT_CHARTS, default on; "0" or "off": the first PDF after an
    import renders them, ~20 s of CPU on the default demo)."""
    return os.environ.get("VBHC_REPORT_CHARTS", "1").strip().lower() not in ("0", "off", "false", "no")


def results_dir(url: str | None = None) -> Path | None:
    """Folder of the persisted indicator results (vbhc.results), VBHC_RESULTS_DIR; "off" switches the store off.

    Default: beside a SQLite database file (`vbhc.db` -> `vbhc.db.results`), so a copy of the data folder takes
    its results along; `<data dir>/results` for a server database (PostgreSQL), where the store keeps one
    folder per database; None (no store) for an in-memory database.
    """
    raw = os.environ.get("VBHC_RESULTS_DIR", "").strip()
    if raw.lower() in ("off", "none", "0", "false"):
        return None
    if raw:
        return Path(raw)
    from sqlalchemy.engine import make_url

    parsed = make_url(url or database_url())
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        return None if path is None else path.resolve().parent / f"{path.name}.results"
    return data_dir() / "results"


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL, also of a URI filename (`sqlite:///file:/data/vbhc.db?mode=ro&uri=true`, the
    way to open a database read-only); None for an in-memory database. Taking the URI text for a path would
    create folders named `file:` beside the program."""
    database = url.database
    if not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        if str(url.query.get("uri", "")).lower() not in ("true", "1"):
            return Path(database)  # without uri=true SQLite takes the text as a plain file name
        uri = urlsplit(database)
        mode = dict(parse_qsl(uri.query)).get("mode") or url.query.get("mode")
        if mode == "memory" or not uri.path or uri.path == ":memory:":
            return None
        return Path(unquote(uri.path))
    return Path(database)


def check_settings() -> None:
    """Read every setting once: a server or command refuses to start on the first one it cannot use
    (SettingError), instead of failing later on a page or half-way through an import."""
    database_url()
    auth_mode()
    for read in (
        import_chunk_rows,
        signal_explain_days,
        max_upload_mb,
        max_cell_chars,
        max_unpacked_mb,
        max_zip_ratio,
        suppress_below,
        max_import_mb,
        max_columns,
        max_rows,
        results_group_mb,
        warm_up_years_up_to,
    ):
        read()
    from vbhc.catalog import CatalogError, default_catalog

    try:
        default_catalog()  # VBHC_CATALOG_DIR: a folder that is missing or a file that is malformed
    except CatalogError as exc:
        raise SettingError("catalog_unusable", "VBHC_CATALOG_DIR", exc) from None
