"""Database engine and schema: one engine per URL, schema always brought to the latest Alembic revision."""

from __future__ import annotations

from functools import cache

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, func, inspect, select
from sqlalchemy.engine import make_url

from vbhc import models
from vbhc.settings import database_url, package_data, sqlite_file

MIGRATIONS_DIR = package_data("migrations")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; WAL lets the dashboard read while an import writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # an import's staging tables are temporary tables: on disk, so a large import does not hold them in memory
    cursor.execute("PRAGMA temp_store=FILE")
    cursor.execute("PRAGMA cache_size=-200000")
    cursor.close()


@cache
def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default: settings.database_url()), created once per process."""
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True)
    return engine


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # configparser treats '%' specially; URLs with socket paths contain %2F
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade_schema(engine: Engine | None = None) -> None:
    """Create the schema or upgrade an existing database in place to the latest revision."""
    engine = engine or get_engine()
    command.upgrade(alembic_config(engine), "head")


def schema_is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision() == head


def row_counts(engine: Engine | None = None) -> dict[str, int]:
    """Rows per registry table; used by the CLI summary and by tests that check nothing changed."""
    engine = engine or get_engine()
    tables = [
        models.ImportBatch,
        models.Hospital,
        models.Department,
        models.CareCycle,
        models.ClinicalOutcome,
        models.PromResponse,
        models.CostLine,
        models.PremResponse,
    ]
    existing = set(inspect(engine).get_table_names())
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for model in tables:
            name = model.__tablename__
            counts[name] = (
                conn.execute(select(func.count()).select_from(model.__table__)).scalar_one() if name in existing else 0
            )
    return counts
