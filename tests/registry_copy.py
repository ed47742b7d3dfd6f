"""A copy of a registry database file with its stored indicator views, as a copied data folder would be."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import Engine

from vbhc.results import ResultStore
from vbhc.store import get_engine


def copy_registry(engine: Engine, path: Path) -> Engine:
    """An engine on a copy of the SQLite database behind `engine` at `path`, with the views the source has in
    its results store (the store names its folder after the database file, so the copy gets them as its own): a
    test that writes to its copy does not compute every view again."""
    with (
        contextlib.closing(sqlite3.connect(engine.url.database)) as source,
        contextlib.closing(sqlite3.connect(path)) as copy,
    ):
        source.backup(copy)
    copied = get_engine(f"sqlite:///{path}")
    copy_results(ResultStore(engine).folder, ResultStore(copied))
    return copied


def copy_results(source: Path | None, store: ResultStore) -> None:
    """The stored views of another database (its store folder `source`) as `store`'s own."""
    if source is None or not source.is_dir() or not store.enabled or store.folder is None or store.folder.exists():
        return
    shutil.copytree(source, store.folder)
