"""The dashboard's file uploaders accept any file: the readers refuse a wrong one in the reader's language.

Streamlit's `type=` makes its browser code refuse another file type itself, in English and before any of our code
runs ("application/pdf files are not allowed."), on a Dutch page too. Every reader behind an uploader (the
registry import, external figures, case-mix models, the targets/actions workbooks) judges a file by its content
and refuses it with one line from the catalog (tests/test_import_fuzz.py, tests/test_external.py,
tests/test_improvement_sheets.py); the browser test tests/e2e/test_upload.py shows it on the page.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _uploader_calls() -> list[tuple[str, int, list[str]]]:
    calls = []
    pages = [ROOT / "streamlit_app.py", *sorted((ROOT / "views").rglob("*.py")), *sorted((ROOT / "ui").rglob("*.py"))]
    for path in pages:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node, "func", None)
            if isinstance(node, ast.Call) and getattr(name, "attr", getattr(name, "id", "")) == "file_uploader":
                calls.append((path.relative_to(ROOT).as_posix(), node.lineno, [k.arg for k in node.keywords]))
    return calls


def test_no_file_uploader_lets_streamlit_refuse_a_file_type_in_english() -> None:
    calls = _uploader_calls()
    assert len(calls) >= 5  # the Data page's three, the meeting's workbook, the team page's model check
    typed = [f"{file}:{line}" for file, line, keywords in calls if "type" in keywords]
    assert typed == [], f"file_uploader with type= (Streamlit refuses other types in English): {typed}"
