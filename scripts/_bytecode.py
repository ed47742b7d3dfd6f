"""Bytecode for the libraries the dashboard's server imports, written in the background during the first run.

scripts/_venv.sh installs without compiling bytecode: most of the dependencies' ~7,000 modules are never
imported, and compiling them all took ~30 s of a fresh clone's first run. Python then compiles a module on its
first import (and, with PYTHONDONTWRITEBYTECODE set, on every start: ~5 s of the server's). After an install,
scripts/dashboard runs this beside the demo's generation and import, which leave the second core free (only
when a core is free: core_free): it imports what the server imports, writing nothing, and compiles the imported
modules of the virtual environment, so the server starts from their bytecode. The checkout's own modules are
left to Python, as before.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import py_compile
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what the server process imports up to its first page (the schema check, the case-mix fits of a view that is
#: not stored yet) and in its background preparation (ui.data.start_warm_up); the modules of the libraries that
#: vbhc imports inside functions are named here
MODULES = (
    "streamlit.web.cli",
    "streamlit.web.server",
    "ui.serve",
    "ui.data",
    "ui.render",
    "vbhc.store",
    "alembic.command",
    "alembic.runtime.migration",
    "alembic.script",
    "vbhc.results",
    "statsmodels.api",
    "statsmodels.stats.proportion",
    "statsmodels.duration.hazard_regression",
    "statsmodels.imputation.mice",
    "vbhc.charts",
    "altair",
    "scipy.stats",
    "vbhc.reports.excel",
    "vbhc.reports.pdf",
    "docx",
)


def library_files() -> list[Path]:
    """The source files of the imported modules that belong to this environment's site-packages."""
    roots = {Path(sysconfig.get_path(kind)).resolve() for kind in ("purelib", "platlib")}
    files = []
    for module in list(sys.modules.values()):
        name = getattr(module, "__file__", None)
        if name and name.endswith(".py"):
            path = Path(name).resolve()
            if any(path.is_relative_to(root) for root in roots):
                files.append(path)
    return files


def core_free() -> bool:
    """Whether a core is left beside the demo: on a busy host (load average above the cores less one) this would
    take CPU from the demo's generation and import, which the first page waits for, and cost twice what the
    server's own imports spend compiling (measured: the demo phase ~35 s -> ~85 s at load 4 on 2 cores)."""
    return os.getloadavg()[0] <= (os.cpu_count() or 1) - 1


def main() -> int:
    """Import MODULES without writing bytecode, then compile the library files they loaded; never fails (the
    server compiles whatever is missing)."""
    if not core_free():
        print("no core free beside the demo: the server compiles what it imports")
        return 0
    sys.dont_write_bytecode = True  # the checkout's modules: as the user's PYTHONDONTWRITEBYTECODE says
    sys.path.insert(0, str(ROOT))
    for name in MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    compiled = 0
    for path in library_files():
        with contextlib.suppress(Exception):
            py_compile.compile(str(path), doraise=True)
            compiled += 1
    print(f"bytecode written for {compiled:,} library modules")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
