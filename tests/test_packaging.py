"""The wheel works outside the repository: built from the sources, installed into a fresh virtual environment, and
run from a temporary folder (`vbhc demo --cycles 500`, then `vbhc report` as PDF and as Excel workbook).

The fresh environment (python -m venv, not --system-site-packages) gets the wheel itself with --no-deps. Its
dependencies (pandas, scipy, statsmodels, streamlit, pyarrow, vl-convert, ...) are taken from the environment
running this test through a .pth file that adds that environment's site-packages at the end of sys.path:
installing them from the package registry costs minutes and a network, and they are the same versions the rest
of the suite has just tested. A .pth line only appends a folder: the .pth files inside it (among them the
editable install of the checkout) are not run, so the package can only come from the wheel, which the test
checks. VBHC_TEST_WHEEL_DEPS=registry installs the dependencies from the registry instead (slow, needs the index).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what the wheel is built from (the rest of the checkout is not copied)
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "vbhc")

pytestmark = [pytest.mark.packaging, pytest.mark.slow]


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


def _clean_env(home: Path) -> dict[str, str]:
    """The environment without anything that points back into the checkout or this test's environment."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VBHC_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE")) and k != "PYTEST_CURRENT_TEST"
    }
    env["HOME"] = str(home)
    return env


def _build_requirements_met(pyproject: Path) -> bool:
    """Whether this environment holds every package pyproject.toml's [build-system] requires, in a version it
    allows: then the wheel is built here, without pip installing them into an isolated environment first."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement

    for spec in tomllib.loads(pyproject.read_text(encoding="utf-8"))["build-system"]["requires"]:
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            return False
        if not requirement.specifier.contains(version, prereleases=True):
            return False
    return True


def _build_wheel(tmp: Path, env: dict[str, str]) -> Path:
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, source / name)
    dist = tmp / "dist"
    # built by this environment's backend where it is the one pyproject.toml's [build-system] asks for (the test
    # extras install it): an isolated build first installed setuptools into a fresh environment from the package
    # index, every run
    isolation = ["--no-build-isolation"] if _build_requirements_met(source / "pyproject.toml") else []
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *isolation]
    _run([*pip, "--wheel-dir", str(dist), str(source)], cwd=tmp, env=env)
    wheels = list(dist.glob("vbhc_dashboard-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def test_wheel_installs_into_a_fresh_venv_and_runs_demo_and_report_outside_the_repo(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = _clean_env(home)
    wheel = _build_wheel(tmp_path, env)

    # the wheel carries the data the package reads through importlib.resources
    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in (
        "vbhc/data/catalog/colorectal_cancer.toml",
        "vbhc/data/catalog/instruments.toml",
        "vbhc/data/reference/eq5d5l_nl_value_set.csv",
        "vbhc/data/reference/promis10_global_health_tscores.csv",
        "vbhc/reports/fonts/DejaVuSans.ttf",
        "vbhc/migrations/script.py.mako",
        "vbhc/migrations/env.py",
        "vbhc/i18n/nl.toml",
    ):
        assert expected in names, f"{expected} is not in {wheel.name}"
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)

    target = tmp_path / "venv"
    venv.create(target, with_pip=False, system_site_packages=False)
    python = target / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    )
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-warn-script-location"]
    if os.environ.get("VBHC_TEST_WHEEL_DEPS") == "registry":
        _run([*pip, str(wheel)], cwd=tmp_path, env=env, timeout=1800)
    else:
        (site / "zz_vbhc_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
        _run([*pip, "--no-deps", str(wheel)], cwd=tmp_path, env=env)

    work = tmp_path / "elsewhere"  # a folder outside the repository, as a user's would be
    work.mkdir()
    assert ROOT not in work.parents
    where = _run(
        [str(python), "-c", "import vbhc, vbhc.settings as s; print(vbhc.__file__); print(s.data_dir())"],
        cwd=work,
        env=env,
    )
    package_file, data_dir = where.stdout.split()
    assert Path(package_file).is_relative_to(site), f"vbhc imported from {package_file}, not from the wheel"
    assert Path(data_dir) == work / "data", "outside a checkout the data folder is ./data"

    vbhc = str(target / "bin" / "vbhc")
    demo = _run([vbhc, "demo", "--cycles", "500"], cwd=work, env=env)
    assert (work / "data" / "vbhc.db").is_file(), demo.stdout + demo.stderr
    assert (work / "data" / "demo" / "truth.json").is_file()
    status = _run([vbhc, "status"], cwd=work, env=env)
    assert "500" in status.stdout

    pdf, xlsx = work / "report.pdf", work / "report.xlsx"
    # one condition as PDF (charts, fonts, the catalog's names; --all would add a minute of chart rendering) and
    # two as workbook (--all computed every condition's year views for its small cells, ~7 s, as
    # tests/test_reports_cli.py's --all workbook does from the checkout)
    _run(
        [vbhc, "report", "--condition", "colorectal_cancer", "--format", "pdf", "--lang", "en", "--out", str(pdf)],
        cwd=work,
        env=env,
    )
    two = ["--condition", "colorectal_cancer", "--condition", "breast_cancer"]
    _run([vbhc, "report", *two, "--format", "xlsx", "--lang", "nl", "--out", str(xlsx)], cwd=work, env=env)

    from openpyxl import load_workbook
    from pypdf import PdfReader

    reader = PdfReader(pdf)
    assert len(reader.pages) >= 2
    first = reader.pages[0].extract_text()
    assert "Outcome meeting report" in first and "Colorectal cancer" in first, first[:500]
    workbook = load_workbook(xlsx, read_only=True)
    assert len(workbook.sheetnames) >= 2, workbook.sheetnames
    text = " ".join(str(c) for ws in workbook.worksheets for row in ws.iter_rows(values_only=True) for c in row if c)
    workbook.close()
    assert "Darmkanker" in text and "Borstkanker" in text, text[:500]

    # nothing was written into the installed package
    written = [p for p in (site / "vbhc").rglob("*") if p.suffix in (".db", ".csv", ".xlsx", ".pdf", ".json")]
    assert not [p for p in written if "data/reference" not in p.as_posix()], written
