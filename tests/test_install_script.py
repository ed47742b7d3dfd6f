"""scripts/_venv.sh chooses the installer as the README says: uv when it can be had (on PATH, or bootstrapped into
the virtual environment with pip), pip when uv is refused or fails, and a re-install only when pyproject.toml
changed. The virtual environment's python and uv are stand-ins that log their arguments: nothing is downloaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: the venv's python: logs its arguments; `-m pip install ... uv...` puts a uv stand-in into the venv
FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $*" >> "$INSTALL_LOG"
if [ "$1 $2 $3" = "-m pip install" ] && [[ "$*" == *" uv>="* ]]; then
  printf '#!/usr/bin/env bash\\necho "venv-uv $*" >> "$INSTALL_LOG"\\nexit "${FAKE_UV_EXIT:-0}"\\n' \
    > "$(dirname "$0")/uv"
  chmod +x "$(dirname "$0")/uv"
fi
"""

#: a uv on PATH
FAKE_UV = """#!/usr/bin/env bash
echo "path-uv $*" >> "$INSTALL_LOG"
exit "${FAKE_UV_EXIT:-0}"
"""

#: the commands _venv.sh and the stand-ins use, and nothing else (a real uv on this host's PATH stays out)
TOOLS = ("bash", "dirname", "grep", "touch", "chmod", "cat")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with scripts/_venv.sh, a pyproject.toml and a venv whose python is the stand-in."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(FAKE_PYTHON, encoding="utf-8")
    (venv_bin / "python").chmod(0o755)
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed for this test"
        (tools / tool).symlink_to(found)
    return tmp_path


def _install(project: Path, *, uv_on_path: bool = False, **env: str) -> list[str]:
    """Run install_extras "" as scripts/dashboard does; the logged commands, one per line."""
    path = str(project / "tools")
    if uv_on_path:
        (project / "uvbin").mkdir(exist_ok=True)
        (project / "uvbin" / "uv").write_text(FAKE_UV, encoding="utf-8")
        (project / "uvbin" / "uv").chmod(0o755)
        path = f"{project / 'uvbin'}:{path}"
    log = project / "install.log"
    log.unlink(missing_ok=True)
    done = subprocess.run(
        ["bash", "-c", 'source scripts/_venv.sh; install_extras ""'],
        cwd=project,
        env={"PATH": path, "PYTHON": sys.executable, "INSTALL_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return [*done.stdout.splitlines(), *(log.read_text(encoding="utf-8").splitlines() if log.exists() else [])]


def test_uv_is_bootstrapped_into_the_venv_and_installs_without_compiling(project: Path) -> None:
    lines = _install(project)
    venv_python = str(project / ".venv" / "bin" / "python")
    assert any(line.startswith("python -m pip install") and "uv>=" in line for line in lines), lines
    assert f"venv-uv pip install --quiet --python {venv_python} -e ." in lines
    assert not any(line.startswith("python -m pip install") and "-e ." in line for line in lines), lines
    assert (project / ".venv" / ".installed").exists()


def test_a_uv_on_path_is_used_and_bytecode_compiled_when_asked(project: Path) -> None:
    lines = _install(project, uv_on_path=True, VBHC_COMPILE_BYTECODE="1")
    assert any(line.startswith("path-uv pip install") and "--compile-bytecode -e ." in line for line in lines), lines
    assert not any("uv>=" in line for line in lines), "uv on PATH: nothing bootstrapped"


def test_pip_installs_when_uv_fails(project: Path) -> None:
    lines = _install(project, uv_on_path=True, FAKE_UV_EXIT="1")
    assert "uv could not install the project; installing with pip" in lines
    assert "python -m pip install --quiet --disable-pip-version-check --no-compile -e ." in lines
    assert (project / ".venv" / ".installed").exists()


@pytest.mark.parametrize("env", [{"VBHC_INSTALLER": "pip"}, {"PIP_INDEX_URL": "https://mirror.example/simple"}])
def test_pip_installs_when_uv_is_refused(project: Path, env: dict[str, str]) -> None:
    lines = _install(project, uv_on_path=True, **env)
    assert not any("uv " in line for line in lines), lines
    assert "python -m pip install --quiet --disable-pip-version-check --no-compile -e ." in lines


def test_reinstalls_only_when_pyproject_changed(project: Path) -> None:
    assert any("pip install" in line and "-e ." in line for line in _install(project, uv_on_path=True))
    assert _install(project, uv_on_path=True) == []
    later = time.time() + 5
    os.utime(project / "pyproject.toml", (later, later))
    assert any("pip install" in line and "-e ." in line for line in _install(project, uv_on_path=True))


def _dashboard(project: Path, *, background: bool) -> list[str]:
    """Run scripts/dashboard (its vbhc a stand-in); the logged commands (with `background`, once the bytecode job
    started in the background has logged too)."""
    shutil.copy(ROOT / "scripts" / "dashboard", project / "scripts" / "dashboard")
    if not (project / "tools" / "nice").exists():
        (project / "tools" / "nice").symlink_to(shutil.which("nice"))
    vbhc = project / ".venv" / "bin" / "vbhc"
    vbhc.write_text('#!/usr/bin/env bash\necho "vbhc $*" >> "$INSTALL_LOG"\n', encoding="utf-8")
    vbhc.chmod(0o755)
    log = project / "install.log"
    log.unlink(missing_ok=True)
    env = {"PATH": f"{project / 'uvbin'}:{project / 'tools'}", "PYTHON": sys.executable, "INSTALL_LOG": str(log)}
    done = subprocess.run(["bash", "scripts/dashboard", "--headless"], cwd=project, env=env, timeout=60)
    assert done.returncode == 0
    deadline = time.monotonic() + (10 if background else 1)
    while time.monotonic() < deadline and "_bytecode.py" not in log.read_text(encoding="utf-8"):
        time.sleep(0.1)  # the bytecode job runs in the background
    return log.read_text(encoding="utf-8").splitlines()


def test_dashboard_compiles_the_servers_libraries_after_an_install_only(project: Path) -> None:
    _install(project, uv_on_path=True)  # puts uv on PATH
    (project / ".venv" / ".installed").unlink()
    first = _dashboard(project, background=True)
    assert "vbhc serve --headless" in first
    assert any(line.startswith("python ") and line.endswith("scripts/_bytecode.py") for line in first), first
    second = _dashboard(project, background=False)
    assert second == ["vbhc serve --headless"], "installed already: neither an install nor the bytecode job"


def test_bytecode_job_compiles_only_this_environments_library_modules() -> None:
    spec = importlib.util.spec_from_file_location("_bytecode", ROOT / "scripts" / "_bytecode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import pandas

    files = module.library_files()
    assert Path(pandas.__file__).resolve() in files
    assert not [f for f in files if f.is_relative_to(ROOT) and ".venv" not in f.parts], "the checkout's own modules"


def test_bytecode_job_leaves_a_busy_host_alone(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    spec = importlib.util.spec_from_file_location("_bytecode", ROOT / "scripts" / "_bytecode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)  # main() sets these: restored after
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(module.os, "getloadavg", lambda: (1.5, 1.0, 1.0))
    compiled = []
    monkeypatch.setattr(module.py_compile, "compile", lambda *a, **k: compiled.append(a))
    assert module.main() == 0
    assert compiled == [] and "no core free" in capsys.readouterr().out
    monkeypatch.setattr(module.os, "getloadavg", lambda: (0.3, 1.0, 1.0))
    monkeypatch.setattr(module, "MODULES", ())  # what is imported already: this test's own libraries
    assert module.main() == 0
    assert compiled, "a core free: the imported library modules compiled"


def test_the_test_script_compiles_the_checkouts_modules_before_the_suite(project: Path) -> None:
    """With PYTHONDONTWRITEBYTECODE set (as in CI) every process the suite starts compiled vbhc, ui and views again
    (0.2-0.6 s of CPU each): scripts/test compiles them once, before pytest starts its workers."""
    _install(project)  # installed: scripts/test then only runs the venv's python
    shutil.copy(ROOT / "scripts" / "test", project / "scripts" / "test")
    for tool in ("ls", "id"):
        if not (project / "tools" / tool).exists():
            (project / "tools" / tool).symlink_to(shutil.which(tool))
    initdb = project / "pg" / "initdb"  # the PostgreSQL check finds a server on PATH
    initdb.parent.mkdir()
    initdb.write_text("#!/usr/bin/env bash\n", encoding="utf-8")
    initdb.chmod(0o755)
    log = project / "install.log"
    log.unlink(missing_ok=True)
    env = {
        "PATH": f"{initdb.parent}:{project / 'tools'}",
        "PYTHON": sys.executable,
        "INSTALL_LOG": str(log),
        "VBHC_TEST_SKIP_BROWSER": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    done = subprocess.run(["bash", "scripts/test", "-k", "x"], cwd=project, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = log.read_text(encoding="utf-8").splitlines()
    compiled = [i for i, line in enumerate(lines) if line.startswith("python -m compileall")]
    suite = [i for i, line in enumerate(lines) if line.startswith("python -m pytest")]
    assert compiled and suite and compiled[0] < suite[0], lines
    assert lines[compiled[0]].split()[-4:] == ["vbhc", "ui", "views", "streamlit_app.py"], lines
