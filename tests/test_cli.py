"""The `vbhc` command end to end: demo, re-import adds nothing, a bad file is refused with its location."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from vbhc import improvement, models, results
from vbhc.cli import main
from vbhc.demo_history import DEMO_VIEWER
from vbhc.registry import condition_volumes
from vbhc.store import get_engine, row_counts

FILES = ["units.xlsx", "care_cycles.csv", "clinical_outcomes.csv", "prom_responses.csv", "costs.csv"]


@pytest.fixture
def cli_db(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VBHC_DATABASE_URL", url)
    get_engine.cache_clear()
    yield get_engine(url)
    get_engine.cache_clear()


def _detections(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(models.SignalDetection)).scalar_one()


@pytest.mark.slow  # a demo registry generated, imported and computed (tests/conftest.py: _start_order)
def test_demo_then_reimport_adds_zero_rows(cli_db, tmp_path, capsys, monkeypatch):
    # Left out: what the pages read beside the views (every unit's signals and SPC charts, the PROM, cost and PREM
    # tables: vbhc.results.prepare_pages), two thirds of this test's time, of which it checks nothing. The signals
    # and the demo's history read the stored views. `vbhc import` preparing them is checked by
    # tests/test_results.py::test_cli_import_precomputes_the_default_views.
    monkeypatch.setattr(results, "prepare_pages", lambda engine, views=None, *, progress=None: 0)
    out = tmp_path / "demo"
    assert main(["demo", "--cycles", "2000", "--out", str(out)]) == 0
    counts = row_counts(cli_db)
    assert counts["care_cycles"] == 2000
    assert counts["prom_responses"] > 10_000
    assert (out / "truth.json").exists()
    printed = capsys.readouterr().out
    assert "new signal(s)" in printed  # the stored results were turned into signals
    assert "Improvement history: " in printed  # vbhc.demo_history: targets, explanations and two actions
    # one action under way per planted worse outlier of the own hospital, and one done action without effect
    truth = json.loads((out / "truth.json").read_text(encoding="utf-8"))
    own_worse = [o for o in truth["outliers"] if o["hospital"] == truth["own_hospital"] and o["direction"] == "worse"]
    assert len(own_worse) >= 2  # the planted improvements of two condition teams
    actions = improvement.actions(cli_db, DEMO_VIEWER)
    assert len(actions) == 1 + len(own_worse) and improvement.targets(cli_db, DEMO_VIEWER)
    runs = _detections(cli_db)
    assert runs == len(condition_volumes(engine=cli_db))

    files = [str(out / f) for f in FILES]
    assert main(["import", *files]) == 0
    assert "Nothing new to import" in capsys.readouterr().out
    assert row_counts(cli_db) == counts
    assert _detections(cli_db) == runs  # the same dataset version: detection adds nothing

    assert main(["import", "--force", *files]) == 0
    assert row_counts(cli_db) == counts


def test_bad_file_exits_non_zero_and_names_the_location(cli_db, tmp_path, capsys):
    """A refused file writes nothing (the demo is only imported to have rows to compare: no views computed)."""
    out = tmp_path / "demo"
    assert main(["demo", "--cycles", "500", "--no-precompute", "--out", str(out)]) == 0
    counts = row_counts(cli_db)
    lines = (out / "care_cycles.csv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("age")] = "abc"
    lines[3] = ",".join(cells)
    (out / "care_cycles.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["import", str(out / "care_cycles.csv")]) == 2
    err = capsys.readouterr().err
    assert "care_cycles.csv row 4 column 'age': value 'abc': not a number" in err
    assert row_counts(cli_db) == counts


def test_init_and_status(cli_db, capsys):
    assert main(["init"]) == 0
    assert main(["status"]) == 0
    assert "care_cycles: 0" in capsys.readouterr().out


def test_the_command_lines_own_process_leaves_its_objects_out_of_the_exits_collections(tmp_path):
    """`vbhc ...` (main() reading the process's command line) freezes the garbage collector's objects as it returns,
    so the interpreter's exit does not traverse them again and again (~0.5 s of CPU per command); main([...])
    called from a program that goes on (tests, benchmarks) leaves its collector alone."""
    from tests.fresh_process import run_json

    code = (
        "import atexit, gc, json, sys\n"
        "from vbhc.cli import main\n"
        "assert main(['init']) == 0\n"
        "called = gc.get_freeze_count()\n"
        "atexit.register(lambda: print(json.dumps([called, gc.get_freeze_count()]), flush=True))\n"
        "sys.argv = ['vbhc', 'status']\n"
        "sys.exit(main())\n"
    )
    called, exiting = run_json(code, env={"VBHC_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"})
    assert called == 0
    assert exiting > 50_000  # the modules' objects: pandas, SQLAlchemy, the models, ...


@pytest.mark.parametrize(
    ("variable", "text", "named"),
    [
        ("VBHC_ACCESS_FILE", '[[grant]]\nuser = "jan@example.org"\nrole = "boss"\n', ["grant 1", "'role'", "'boss'"]),
        ("VBHC_ACCESS_FILE", "[[grant]\n", ["not valid TOML"]),
        ("VBHC_COMPARISON_GROUPS_FILE", '[[group]]\nname = "A"\nhospitals = []\n', ["group 1", "'hospitals'"]),
        ("VBHC_COMPARISON_GROUPS_FILE", '[[group]]\nname = "A"\nmembers = ["H01"]\n', ["group 1", "'members'"]),
    ],
)
def test_serve_refuses_to_start_with_a_broken_roles_or_groups_file(
    cli_db, tmp_path, capsys, monkeypatch, variable, text, named
):
    """`vbhc serve` checks the roles mapping and the published groups before it starts: a mistake is one line on
    stderr naming the file, the entry and key, and the problem, and no server runs (every page would otherwise say
    only that no role can be given, or that no group can be chosen)."""
    import subprocess

    broken = tmp_path / "broken.toml"
    broken.write_text(text, encoding="utf-8")
    monkeypatch.setenv(variable, str(broken))
    monkeypatch.setenv("VBHC_AUTH", "local")
    started: list[object] = []
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: started.append(a) or 0)
    assert main(["serve", "--no-demo"]) == 2
    err = capsys.readouterr().err.strip()
    assert not started
    assert len(err.splitlines()) == 1 and err.startswith("vbhc serve: ")
    assert str(broken) in err and all(part in err for part in named), err
    assert "Traceback" not in err


def test_serve_needs_the_roles_mapping_only_when_viewers_sign_in(cli_db, tmp_path, capsys, monkeypatch):
    """Without a roles mapping the local demo starts (it signs nobody in); a server signing in through OpenID
    Connect refuses, naming the missing file; a valid mapping and groups file start it."""
    import subprocess

    missing = tmp_path / "nowhere" / "access.toml"
    monkeypatch.setenv("VBHC_ACCESS_FILE", str(missing))
    monkeypatch.setenv("VBHC_COMPARISON_GROUPS_FILE", str(tmp_path / "no-groups.toml"))
    started: list[object] = []
    monkeypatch.setattr(subprocess, "call", lambda *a, **k: started.append(a) or 0)
    monkeypatch.setenv("VBHC_AUTH", "local")
    assert main(["serve", "--no-demo"]) == 0 and len(started) == 1
    monkeypatch.setenv("VBHC_AUTH", "oidc")
    assert main(["serve", "--no-demo"]) == 2 and len(started) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(missing) in err and "not found" in err
    missing.parent.mkdir()
    missing.write_text('[[grant]]\nuser = "jan@example.org"\nrole = "quality"\n', encoding="utf-8")
    (tmp_path / "no-groups.toml").write_text('[[group]]\nname = "A"\nhospitals = ["H01"]\n', encoding="utf-8")
    assert main(["serve", "--no-demo"]) == 0 and len(started) == 2
