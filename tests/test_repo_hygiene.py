"""What must never reach git: the sign-in secrets (OIDC client secret, cookie secret) in .streamlit/secrets.toml."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from vbhc.settings import PROJECT_ROOT


@pytest.mark.parametrize("path", [".streamlit/secrets.toml", ".streamlit/secrets.production.toml"])
def test_streamlit_secrets_are_ignored_by_git(path: str) -> None:
    git = shutil.which("git")
    if git is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # --no-index: also true when someone has already added the file by mistake (then git rm --cached it)
    done = subprocess.run(
        [git, "check-ignore", "--no-index", "-q", path], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, f"{path} is not in .gitignore: {done.stderr}"
