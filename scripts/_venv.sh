# Shared by scripts/dashboard and scripts/test: a project virtual environment with the package installed.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python 3.11 or newer is needed (found: $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
VENV="${VBHC_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating virtual environment in $VENV"
  "$PYTHON" -m venv "$VENV"
  # the pip a Python 3.11+ venv brings (23+) installs the project as it is; an older one is upgraded first
  if ! "$VENV/bin/python" -c 'import sys, pip; sys.exit(int(pip.__version__.split(".")[0]) < 23)'; then
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
  fi
fi
# The installer: uv (https://docs.astral.sh/uv/, a wheel on PyPI: parallel downloads and installs, several times
# faster than pip on the first run) when it can be had, else pip. uv does not read pip's settings, so a package
# index chosen for pip (PIP_INDEX_URL, index-url in pip.conf) keeps pip; VBHC_INSTALLER=pip chooses pip outright.
_uv() {  # prints the uv command to install with; fails when pip is to install
  [ "${VBHC_INSTALLER:-uv}" != pip ] || return 1
  [ -z "${PIP_INDEX_URL:-}" ] || return 1
  if "$VENV/bin/python" -m pip config list 2>/dev/null | grep -Eq '^[^=]*[.:]index-url='; then
    return 1
  fi
  if [ -x "$VENV/bin/uv" ]; then
    echo "$VENV/bin/uv"
  elif command -v uv >/dev/null 2>&1; then
    command -v uv
  elif "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "uv>=0.5,<1" >/dev/null 2>&1 &&
    [ -x "$VENV/bin/uv" ]; then
    echo "$VENV/bin/uv"
  else
    return 1
  fi
}
INSTALLED_NOW=0  # 1 once install_extras has installed (scripts/dashboard then compiles the server's libraries)
install_extras() {  # $1: extras, e.g. "" or "[test]"
  local stamp="$VENV/.installed$1" uv
  # no bytecode compiled at install (~7,000 modules, most never imported): Python compiles a module on its first
  # import, scripts/dashboard the server's libraries beside the demo (scripts/_bytecode.py);
  # VBHC_COMPILE_BYTECODE=1 compiles them all here
  # (scalars, not arrays: an empty array is an unbound variable under set -u in macOS's bash 3.2)
  local uv_compile="" pip_compile="--no-compile"
  if [ "${VBHC_COMPILE_BYTECODE:-}" = 1 ]; then
    uv_compile="--compile-bytecode" pip_compile=""
  fi
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "Installing the project$1 into $VENV"
    if uv="$(_uv)" && "$uv" pip install --quiet --python "$VENV/bin/python" $uv_compile -e ".$1"; then
      :
    else
      [ -z "${uv:-}" ] || echo "uv could not install the project; installing with pip"
      "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check $pip_compile -e ".$1"
    fi
    touch "$stamp"
    INSTALLED_NOW=1
  fi
}
