"""Which database backends a test that uses the `engine` fixture runs on.

The `engine` fixture runs a test on SQLite and on the PostgreSQL server the suite starts. A test whose database work
does not depend on the backend (a file refused while it is read and validated, before any SQL beyond the audit
line) is marked `sqlite_only`: its PostgreSQL run added minutes to the suite and nothing to what is tested. Tests of
SQL paths (writes, upserts, referential checks against stored rows, type round trips, migrations) keep both.
"""

from __future__ import annotations

import pytest

#: run a test that uses `engine` (directly or through another fixture) on SQLite only
sqlite_only = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
