"""Dutch and English: catalogs in step, messages, language choice, and exact locale formatting (Babel)."""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from vbhc import i18n
from vbhc.catalog import INDICATOR_KINDS
from vbhc.i18n import (
    SUPPORTED,
    catalog,
    choose_language,
    fmt_ci,
    fmt_date,
    fmt_eur,
    fmt_int,
    fmt_number,
    fmt_percent,
    fmt_ratio,
    format_value,
    placeholders,
    plural_keys,
    t,
    t_value,
)

NBSP = "\u00a0"
DASH = "\u2013"


# ------------------------------------------------------------------------------------------- catalogs
def test_supported_languages():
    assert SUPPORTED == ("nl", "en")


def test_catalogs_have_the_same_keys():
    nl, en = set(catalog("nl")), set(catalog("en"))
    assert nl - en == set(), "keys only in nl.toml"
    assert en - nl == set(), "keys only in en.toml"
    assert 120 <= len(en) <= 2000  # a sanity range; ~1,300 with the import problems in both languages


@pytest.mark.parametrize("key", sorted(catalog("en")))
def test_placeholders_match_per_key(key):
    assert placeholders(catalog("nl")[key]) == placeholders(catalog("en")[key])


def test_placeholders_are_named_and_messages_not_empty():
    for lang in SUPPORTED:
        for key, text in catalog(lang).items():
            assert text.strip(), f"{lang}:{key} is empty"
            assert all(name.isidentifier() for name in placeholders(text)), f"{lang}:{key} {text!r}"
            text.format(**dict.fromkeys(placeholders(text), "x"))  # well-formed braces


def test_keys_are_lowercase_dotted():
    for key in catalog("en"):
        assert re.fullmatch(r"[a-z0-9_]+(\.[a-z0-9_]+)+", key), key


def test_dashboard_messages_present():
    en = catalog("en")
    for key in [
        "nav.overview",
        "nav.condition_team",
        "nav.proms",
        "nav.compare_departments",
        "nav.cost_value",
        "nav.data",
        "nav.methods",
        "filter.condition",
        "filter.unit_level",
        "filter.unit",
        "filter.period",
        "filter.comparison_group",
        "filter.language",
        "level.hospital",
        "level.department",
        "level.condition_team",
        "assessment.better",
        "assessment.worse",
        "assessment.as_expected",
        "assessment.too_few_cycles",
        "assessment.no_data",
        "position.title_95",
        "position.title_998",
        "column.oe",
        "column.ci95",
        "column.cost_per_cycle",
        "column.response_rate",
        "tier.1",
        "tier.2",
        "tier.3",
        "empty.database_empty",
        "warning.low_rankability",
        "model.c_statistic",
        "model.calibration_slope",
        "model.calibration_intercept",
        "model.r_squared",
        "model.cycles_used",
        "model.cycles_excluded",
        "data.import_batches",
        "data.completeness",
        "data.upload",
        *(f"error.{c}" for c in ("file", "sheet", "row", "column", "value", "rule")),
        *(
            f"methods.{s}_{p}"
            for s in ("casemix", "oe", "funnel", "overdispersion", "small_numbers", "cusum")
            for p in ("title", "text")
        ),
        *(f"kind.{k}" for k in INDICATOR_KINDS),
    ]:
        assert key in en, key


def test_methods_texts_are_two_to_four_sentences():
    for lang in SUPPORTED:
        for key, text in catalog(lang).items():
            if key.startswith("methods.") and key.endswith("_text"):
                sentences = [s for s in re.split(r"(?<=[.!?])\s+", text) if s]
                assert 2 <= len(sentences) <= 4, (lang, key, len(sentences))


def test_dutch_uses_clinical_dutch_words():
    nl = catalog("nl")
    assert nl["nav.overview"] == "Overzicht"
    assert nl["column.care_cycles"] == "Zorgtrajecten"
    assert nl["column.observed"] == "Waargenomen"
    assert nl["column.expected"] == "Verwacht"
    assert nl["filter.condition"] == "Aandoening"
    assert nl["level.department"] == "Afdeling"
    assert nl["tier.1"] == "Niveau 1: bereikte gezondheidstoestand"
    assert nl["position.title_998"] == "Positie (99,8%-grenzen)"  # decimal comma in Dutch text too
    assert "vbhc demo" in nl["empty.database_empty"] and "vbhc import" in nl["empty.database_empty"]
    assert "vbhc demo" in catalog("en")["empty.database_empty"]


def test_dutch_writes_one_word_one_way():
    """The team page's case-mix tab read "Wat de casemixcorrectie bijdraagt" over a table headed
    "Case-mixvariabelen" beside "Kwaliteit van het case-mixmodel", and the methods page named the "c-statistic"
    and "shrinkage" in a Dutch sentence: one term, one spelling (casemix, as the Dutch registries write it), and
    the Dutch word where the catalog has one."""
    nl = catalog("nl")
    hyphenated = sorted(key for key, text in nl.items() if "case-mix" in text.lower())
    assert not hyphenated, hyphenated
    english = sorted(key for key, text in nl.items() if re.search(r"\bc-statistic\b|\bshrinkage\b(?!\))", text))
    assert not english, english


def test_catalog_returns_a_copy():
    catalog("en")["nav.overview"] = "changed"
    assert t("nav.overview") == "Overview"


# ------------------------------------------------------------------------------------------- t()
def test_t_plain_and_default_language():
    assert t("nav.overview") == "Overview"
    assert t("nav.overview", "en") == "Overview"
    assert t("nav.overview", "nl") == "Overzicht"
    assert t("tier.1", "en") == "Tier 1: health status achieved"
    assert t("assessment.better", "nl") == "Beter dan verwacht"


def test_t_fills_placeholders():
    assert t("warning.low_rankability", "en", rankability="0.31") == (
        "At these volumes this indicator cannot reliably tell units apart (rankability 0.31)."
    )
    assert t("warning.low_rankability", "nl", rankability=fmt_ratio(0.31, "nl")) == (
        "Bij deze aantallen kan deze indicator eenheden niet betrouwbaar van elkaar onderscheiden "
        "(rangschikbaarheid 0,31)."
    )
    assert t("model.reason_missing", "nl", variable="ASA") == "ASA ontbreekt"


def test_t_missing_placeholder_value_names_it():
    with pytest.raises(KeyError, match="rankability"):
        t("warning.low_rankability", "en")


def test_t_unknown_key_names_the_key():
    with pytest.raises(KeyError, match=r"nav\.nonexistent"):
        t("nav.nonexistent", "en")
    with pytest.raises(KeyError, match="nav"):
        t("nav", "nl")  # a section is not a message


@pytest.mark.parametrize("lang", ["de", "NL", "", "nl_NL", None])
def test_t_unknown_language(lang):
    with pytest.raises(ValueError, match="language"):
        t("nav.overview", lang)
    with pytest.raises(ValueError):
        fmt_number(1.0, lang)
    with pytest.raises(ValueError):
        catalog(lang)


def test_t_value_translates_analysis_labels():
    assert t_value("assessment", "as expected", "nl") == "Zoals verwacht"
    assert t_value("assessment", "too few cycles", "en") == "Too few care cycles"
    assert t_value("position", "above", "nl") == "Boven de bovengrens"
    assert t_value("position", "no data", "nl") == "Geen gegevens"
    assert t_value("quadrant", "better outcome, lower cost", "nl") == "Betere uitkomst, lagere kosten"
    assert t_value("level", "condition_team", "en") == "Condition team"
    assert t_value("tier", 2, "nl") == "Niveau 2: herstelproces"
    assert t_value("assessment", None, "nl") == DASH
    assert t_value("assessment", float("nan"), "en") == DASH
    with pytest.raises(KeyError):
        t_value("assessment", "excellent", "en")


def test_benchmark_labels_all_translate():
    from vbhc import benchmark

    for raw in ("better", "worse", "as expected", benchmark.TOO_FEW, benchmark.NO_DATA):
        for lang in SUPPORTED:
            assert t_value("assessment", raw, lang)
    for raw in ("above", "below", "within", benchmark.TOO_FEW, benchmark.NO_DATA):
        for lang in SUPPORTED:
            assert t_value("position", raw, lang)


# ------------------------------------------------------------------------------------ choose_language
@pytest.mark.parametrize(
    ("query", "browser", "expected"),
    [
        ("en", "nl-NL", "en"),  # the URL wins
        ("nl", "en-US", "nl"),
        ("EN", None, "en"),
        (" en ", None, "en"),
        ("en-GB", None, "en"),
        ("de", "en-US", "en"),  # invalid URL value: the browser decides
        ("", "en_GB", "en"),
        (None, "en", "en"),
        (None, "nl-BE", "nl"),
        (None, "de-DE", "nl"),  # unsupported browser language: Dutch
        (None, None, "nl"),
        (None, "", "nl"),
        ("xx", "fr", "nl"),
        (None, "de-DE,en;q=0.8,nl;q=0.5", "en"),  # Accept-Language: best supported by q
        (None, "nl;q=0.3,en;q=0.9", "en"),
        (None, "en;q=0,fr", "nl"),  # q=0 means "not acceptable"
    ],
)
def test_choose_language(query, browser, expected):
    assert choose_language(query, browser) == expected


# ------------------------------------------------------------------------------------------ formatting
# Exact strings as Babel (CLDR) produces them for nl_NL and en_GB; Dutch: decimal comma, dot thousands.
@pytest.mark.parametrize(
    ("value", "decimals", "nl", "en"),
    [
        (12345.678, 1, "12.345,7", "12,345.7"),
        (1234567.891, 2, "1.234.567,89", "1,234,567.89"),
        (3.14159, 1, "3,1", "3.1"),
        (2.25, 1, "2,3", "2.3"),  # half up, as by hand
        (-2.25, 1, "\u22122,3", "\u22122.3"),  # the minus sign, as the charts write it
        (0.5, 0, "1", "1"),
        (-0.04, 1, "0,0", "0.0"),  # no negative zero
        (7, 1, "7,0", "7.0"),
        (Decimal("1.05"), 1, "1,1", "1.1"),
        (np.float64(12.34), 1, "12,3", "12.3"),
    ],
)
def test_fmt_number(value, decimals, nl, en):
    assert fmt_number(value, "nl", decimals) == nl
    assert fmt_number(value, "en", decimals) == en


def test_fmt_number_rejects_text_and_negative_decimals():
    with pytest.raises(TypeError):
        fmt_number("12.3", "nl")
    with pytest.raises(ValueError):
        fmt_number(1.0, "nl", -1)


@pytest.mark.parametrize(
    ("value", "nl", "en"),
    [
        (12345, "12.345", "12,345"),
        (1234, "1.234", "1,234"),
        (999, "999", "999"),
        (0, "0", "0"),
        (1234567, "1.234.567", "1,234,567"),
        (np.int64(5000), "5.000", "5,000"),
        (12.6, "13", "13"),
    ],
)
def test_fmt_int(value, nl, en):
    assert fmt_int(value, "nl") == nl
    assert fmt_int(value, "en") == en


@pytest.mark.parametrize(
    ("value", "decimals", "nl", "en"),
    [
        (0.123, 1, "12,3%", "12.3%"),
        (0.0005, 1, "0,1%", "0.1%"),
        (1.0, 1, "100,0%", "100.0%"),
        (0.0, 1, "0,0%", "0.0%"),
        (0.12345, 2, "12,35%", "12.35%"),
        (0.125, 0, "13%", "13%"),
        (12.345, 1, "1.234,5%", "1,234.5%"),
    ],
)
def test_fmt_percent(value, decimals, nl, en):
    assert fmt_percent(value, "nl", decimals) == nl
    assert fmt_percent(value, "en", decimals) == en


@pytest.mark.parametrize(
    ("value", "decimals", "nl", "en"),
    [
        (12345, 0, f"€{NBSP}12.345", "€12,345"),
        (12345.5, 0, f"€{NBSP}12.346", "€12,346"),
        (1234.5, 2, f"€{NBSP}1.234,50", "€1,234.50"),
        (-12345, 0, f"€{NBSP}\u221212.345", "\u2212€12,345"),
        (0, 0, f"€{NBSP}0", "€0"),
    ],
)
def test_fmt_eur(value, decimals, nl, en):
    assert fmt_eur(value, "nl", decimals) == nl
    assert fmt_eur(value, "en", decimals) == en


@pytest.mark.parametrize(
    ("value", "nl", "en"),
    [(1.234, "1,23", "1.23"), (1.005, "1,01", "1.01"), (0.8, "0,80", "0.80"), (12345.6789, "12.345,68", "12,345.68")],
)
def test_fmt_ratio(value, nl, en):
    assert fmt_ratio(value, "nl") == nl
    assert fmt_ratio(value, "en") == en


@pytest.mark.parametrize(
    ("value", "nl", "en"),
    [
        (dt.date(2026, 11, 24), "24 nov 2026", "24 Nov 2026"),
        (dt.date(2026, 3, 1), "1 mrt 2026", "1 Mar 2026"),
        (dt.date(2026, 5, 5), "5 mei 2026", "5 May 2026"),
        (dt.datetime(2026, 11, 24, 23, 59), "24 nov 2026", "24 Nov 2026"),
        (pd.Timestamp("2026-01-05"), "5 jan 2026", "5 Jan 2026"),
        (np.datetime64("2026-10-31"), "31 okt 2026", "31 Oct 2026"),
        ("2026-11-24", "24 nov 2026", "24 Nov 2026"),
    ],
)
def test_fmt_date(value, nl, en):
    assert fmt_date(value, "nl") == nl
    assert fmt_date(value, "en") == en


def test_fmt_date_rejects_non_dates():
    with pytest.raises(TypeError):
        fmt_date(12.5, "nl")


@pytest.mark.parametrize(
    ("lo", "hi", "kind", "nl", "en"),
    [
        (0.123, 0.15, "proportion", "12,3–15,0%", "12.3–15.0%"),
        (0.5, 0.75, "response_rate", "50,0–75,0%", "50.0–75.0%"),
        (0.85, 1.214, "oe", "0,85–1,21", "0.85–1.21"),
        (4.25, 6.0, "mean", "4,3–6,0", "4.3–6.0"),
        (11900, 13400, "cost", f"€{NBSP}11.900–€{NBSP}13.400", "€11,900–€13,400"),
        (-3.2, -1.0, "prom_change", "\u22123,2 – \u22121,0", "\u22123.2 – \u22121.0"),
        (-0.5, 2.0, "prom_change", "\u22120,5 – 2,0", "\u22120.5 – 2.0"),
        (1000, 2500, "volume", "1.000–2.500", "1,000–2,500"),
    ],
)
def test_fmt_ci(lo, hi, kind, nl, en):
    assert fmt_ci(lo, hi, kind, "nl") == nl
    assert fmt_ci(lo, hi, kind, "en") == en


def test_fmt_ci_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        fmt_ci(0.1, 0.2, "score", "nl")


@pytest.mark.parametrize(
    ("kind", "value", "nl", "en"),
    [
        ("proportion", 0.123, "12,3%", "12.3%"),
        ("prom_mic", 0.6, "60,0%", "60.0%"),
        ("response_rate", 0.8765, "87,7%", "87.7%"),
        ("mean", 5.25, "5,3", "5.3"),
        ("prom_score", 0.812, "0,8", "0.8"),
        ("prom_change", -4.44, "\u22124,4", "\u22124.4"),
        ("cost", 12345.4, f"€{NBSP}12.345", "€12,345"),
        ("volume", 12345, "12.345", "12,345"),
        ("oe", 1.234, "1,23", "1.23"),
    ],
)
def test_format_value(kind, value, nl, en):
    assert format_value(value, kind, "nl") == nl
    assert format_value(value, kind, "en") == en


def test_format_value_covers_every_indicator_kind():
    assert set(INDICATOR_KINDS) | {"oe"} == set(i18n.KIND_FORMAT)
    with pytest.raises(ValueError, match="kind"):
        format_value(1.0, "ratio", "en")


MISSING_VALUES = [None, float("nan"), np.nan, math.inf, -math.inf, pd.NA, np.float64("nan"), Decimal("NaN")]


@pytest.mark.parametrize("value", MISSING_VALUES)
@pytest.mark.parametrize("lang", SUPPORTED)
def test_missing_values_give_an_en_dash(value, lang):
    assert fmt_number(value, lang) == DASH
    assert fmt_int(value, lang) == DASH
    assert fmt_percent(value, lang) == DASH
    assert fmt_eur(value, lang) == DASH
    assert fmt_ratio(value, lang) == DASH
    for kind in i18n.KIND_FORMAT:
        assert format_value(value, kind, lang) == DASH
        assert fmt_ci(value, 0.5, kind, lang) == DASH
        assert fmt_ci(0.5, value, kind, lang) == DASH


@pytest.mark.parametrize("value", [None, pd.NaT, np.datetime64("NaT"), float("nan"), pd.NA])
def test_missing_dates_give_an_en_dash(value):
    assert fmt_date(value, "nl") == DASH
    assert fmt_date(value, "en") == DASH


def test_no_process_global_locale():
    # the same value in both languages in any order: nothing leaks from one call to the next
    assert [fmt_number(1234.5, lang) for lang in ("nl", "en", "nl")] == ["1.234,5", "1,234.5", "1.234,5"]
    assert [t("nav.data", lang) for lang in ("en", "nl", "en")] == ["Data", "Gegevens", "Data"]


def test_i18n_does_not_import_streamlit():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(i18n))
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not any(name.split(".")[0] == "streamlit" for name in names)


def test_fmt_datetime_in_both_locales():
    from vbhc.i18n import fmt_datetime

    moment = dt.datetime(2026, 11, 24, 14, 3, 59)
    assert fmt_datetime(moment, "nl") == "24 nov 2026, 14:03"
    assert fmt_datetime(moment, "en") == "24 Nov 2026, 14:03"
    assert fmt_datetime(pd.Timestamp("2026-11-24 14:03:00+00:00"), "nl") == "24 nov 2026, 14:03"
    assert fmt_datetime("2026-11-24T14:03:00", "nl") == "24 nov 2026, 14:03"
    assert fmt_datetime(dt.date(2026, 11, 24), "nl") == "24 nov 2026"
    for missing in (None, math.nan, pd.NaT, "not a date"):
        assert fmt_datetime(missing, "nl") == DASH


def test_unit_label_names_anonymised_units_and_condition_teams():
    from vbhc.access import OTHER_UNIT
    from vbhc.i18n import unit_label

    assert unit_label("H01", "nl") == "H01" and unit_label("H01/SUR", "nl") == "H01/SUR"
    assert unit_label(f"{OTHER_UNIT} 3", "nl") == "Andere eenheid 3"
    assert unit_label(f"{OTHER_UNIT} 3", "en") == "Other unit 3"
    # a name, never the internal id itself (English showed "other unit 3", vbhc.access's id, in a manager's tables)
    assert all(unit_label(f"{OTHER_UNIT} 3", lang) != f"{OTHER_UNIT} 3" for lang in SUPPORTED)
    assert unit_label("colorectal_cancer@H01", "nl") == "Zorgteam Darmkanker H01"
    assert unit_label("colorectal_cancer@H01", "en") == "Colorectal cancer team H01"
    assert unit_label(None, "nl") == DASH


def test_every_audit_action_and_import_table_has_a_message():
    from vbhc.audit import ACTIONS, COLUMNS
    from vbhc.ingest.tables import TABLE_ORDER

    for lang in SUPPORTED:
        assert all(t(f"audit.action_{a}", lang) for a in ACTIONS)
        assert all(t(f"import_table.{name}", lang) for name in TABLE_ORDER)
        assert all(t(f"audit.col_{c}", lang) for c in COLUMNS)


def test_every_model_warning_has_a_message():
    from vbhc.casemix import WARNINGS

    for code, english in WARNINGS.items():
        for lang in SUPPORTED:
            key = f"model.warning_{code}"
            forms = plural_keys(lang).get(key)  # a counting warning counts its parameters (ui.render.model_warning)
            for message in forms.values() if forms else [catalog(lang)[key]]:
                assert placeholders(message) - {"count"} <= placeholders(english) - {"error"}


# ------------------------------------------------------------------------------------------- one message source
#: A choice between languages in code: `lang == "nl"`, `"label_nl" if ...`, `x.label_nl if ... else x.label_en`.
LANGUAGE_BRANCH = re.compile(r"""==\s*["'](?:nl|en)["']|["'](?:nl|en)["']\s*==|label_(?:nl|en)["']?\s+if\s""")


def test_no_language_branches_outside_i18n():
    """Texts come from vbhc.i18n (t) or a catalog object's label(lang), numbers and dates from Babel: no module
    outside vbhc/i18n picks a language itself (one language branch is how half-Dutch pages came about)."""
    from vbhc.settings import PROJECT_ROOT

    found = []
    for folder in ("vbhc", "ui", "views"):
        for path in sorted((PROJECT_ROOT / folder).rglob("*.py")):
            if "i18n" in path.relative_to(PROJECT_ROOT).parts:
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if LANGUAGE_BRANCH.search(line.split("#")[0]):
                    found.append(f"{path.relative_to(PROJECT_ROOT)}:{number}: {line.strip()}")
    assert not found, "language branches:\n" + "\n".join(found)


# ------------------------------------------------------------------------------------------- counting messages
#: Nouns a number counts in the messages; a message with a placeholder right before one (an adjective may come
#: between: "{count} care cycles", "{min} other units") must be a counting message with singular and plural.
COUNTED_NOUNS = {
    "en": "cycles|units|problems|figures|events|periods|days|hospitals|decisions|characters|parameters|views|rows"
    "|patients|indicators|teams|signals|actions|items|files|meetings|quarters|responses|months|weeks|years|versions"
    "|answers|respondents|sheets",
    "nl": "zorgtrajecten|eenheden|problemen|cijfers|gebeurtenissen|perioden|dagen|ziekenhuizen|besluiten|tekens"
    "|modelparameters|weergaven|rijen|patiënten|indicatoren|teams|signalen|acties|items|bestanden|overleggen"
    "|kwartalen|antwoorden|maanden|weken|jaren|versies|respondenten|werkbladen|tabbladen",
}


def test_counting_messages_have_the_same_forms_in_both_languages():
    en, nl = plural_keys("en"), plural_keys("nl")
    assert set(en) == set(nl) and len(en) >= 20
    for key in en:
        assert set(en[key]) == set(nl[key]) == {"one", "other"}, key
        for lang, forms in (("en", en[key]), ("nl", nl[key])):
            assert all("{count}" in text for text in forms.values()), (lang, key)
            assert forms["one"] != forms["other"], (lang, key)


@pytest.mark.parametrize("lang", SUPPORTED)
def test_no_number_counts_a_noun_outside_a_counting_message(lang):
    """ "1 problems found" came from a count filled into a plural text: every number before a counted noun is a
    counting message's count, so the language's plural rule picks the form."""
    counted = re.compile(r"\{\w+\}\)? (?:[\w-]+ )?(?:" + COUNTED_NOUNS[lang] + r")\b")
    forms = {f"{key}.{form}" for key, texts in plural_keys(lang).items() for form in texts}
    found = [f"{key}: {text}" for key, text in catalog(lang).items() if key not in forms and counted.search(text)]
    assert found == []


@pytest.mark.parametrize("key", sorted(plural_keys("en")))
def test_every_counting_message_is_singular_for_one_and_plural_for_two(key):
    for lang in SUPPORTED:
        forms = plural_keys(lang)[key]
        values = dict.fromkeys(set().union(*(placeholders(f) for f in forms.values())) - {"count"}, "X")
        one, two = t(key, lang, count=1, **values), t(key, lang, count=2, **values)
        assert one == forms["one"].format(**{**values, "count": "1"}), (lang, key, one)
        assert two == forms["other"].format(**{**values, "count": "2"}), (lang, key, two)
        # the singular form: no plural noun follows the count ("1 problems", "1 zorgtrajecten")
        after_count = re.compile(r"\b1 (?:[\w-]+ )?(?:" + COUNTED_NOUNS[lang] + r")\b")
        assert not after_count.search(one), (lang, key, one)
        assert re.compile(r"\b2 (?:[\w-]+ )?(?:" + COUNTED_NOUNS[lang] + r")\b").search(two), (lang, key, two)


def test_a_count_is_formatted_in_the_language_and_chooses_the_form_by_its_value():
    # one file or several: the batch is refused as a whole ("a.csv, b.csv is niet geïmporteerd" read wrong)
    assert t("data.import_failed", "nl", file="a.csv", count=1).startswith(
        "Niet geïmporteerd: 1 probleem gevonden in a.csv."
    )
    assert t("data.import_failed", "en", file="a.csv", count=1).startswith("Not imported: 1 problem found in a.csv.")
    assert "0 problems found" in t("data.import_failed", "en", file="a.csv", count=0)
    assert "1.234 problemen" in t("data.import_failed", "nl", file="a.csv", count=1234)
    assert "1,234 problems" in t("data.import_failed", "en", file="a.csv", count=np.int64(1234))
    # a whole count held as a float (a table's n column) reads as the whole number, in the whole number's form
    assert t("data.import_failed", "en", file="a.csv", count=1.0).startswith("Not imported: 1 problem found")
    assert "1 probleem " in t("data.import_failed", "nl", file="a.csv", count=np.float64(1.0))


def test_a_counting_message_refuses_a_count_given_as_text_or_missing():
    with pytest.raises(TypeError, match="count as a number"):
        t("audit.rows", "en", count="1")
    with pytest.raises(KeyError, match="count"):
        t("audit.rows", "en")
