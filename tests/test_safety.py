from hypothesis import given
from hypothesis import strategies as st

from vbhc.safety import FORMULA_TRIGGERS, neutralise_formula


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
