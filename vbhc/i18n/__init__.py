"""Dutch and English for the dashboard: messages, language choice and locale-aware number/date formatting.

Pure functions, no Streamlit and no process-global locale: every call gets the language ("nl" or "en").
Messages live as data in en.toml and nl.toml next to this file; sections are flattened to dotted keys
(``[nav] overview = "Overview"`` is ``t("nav.overview")``) and use str.format placeholders. Values passed
to placeholders are inserted as given, so format numbers first (``t(key, lang, rate=fmt_percent(r, lang))``).

A message that counts something has plural forms: a table with ``one`` and ``other`` (the CLDR plural categories
of the language) instead of a text, e.g. ``[data.import_failed] one = "... {count} problem found" other = "...
{count} problems found"``. t() picks the form by the number passed as ``count`` (a number, not text: it is
formatted with fmt_int) so "1 problems found" cannot happen; catalog() lists the forms as ``key.one`` and
``key.other``. A message with two counts names the second through a counting message of its own.

Numbers and dates are formatted with Babel in nl_NL and en_GB. Rounding is half up (12,35 -> 12,4), as a
reader would do by hand, and a value that rounds to zero never shows a minus sign. Missing values (None,
NaN, NaT, pandas NA, infinity) are shown as an en dash.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import re
import string
import tomllib
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from importlib import resources
from typing import Any

from babel import Locale
from babel.dates import format_date, format_time
from babel.numbers import NumberPattern, format_currency, format_decimal, format_percent, parse_pattern

__all__ = [
    "BABEL_LOCALES",
    "DATE_INPUT_FORMAT",
    "DEFAULT_LANGUAGE",
    "KIND_FORMAT",
    "MINUS",
    "MISSING",
    "SUPPORTED",
    "catalog",
    "choose_language",
    "fmt_ci",
    "fmt_date",
    "fmt_datetime",
    "fmt_difference",
    "fmt_eur",
    "fmt_int",
    "fmt_number",
    "fmt_percent",
    "fmt_ratio",
    "format_value",
    "placeholders",
    "plural_keys",
    "t",
    "t_md",
    "t_value",
    "unit_label",
]

SUPPORTED: tuple[str, ...] = ("nl", "en")
#: Dutch hospitals: Dutch unless the URL or the browser asks for a supported other language.
DEFAULT_LANGUAGE = "nl"
BABEL_LOCALES: dict[str, str] = {"nl": "nl_NL", "en": "en_GB"}
#: st.date_input's display format per language (Streamlit accepts only these day/month/year orders).
DATE_INPUT_FORMAT: dict[str, str] = {"nl": "DD-MM-YYYY", "en": "DD/MM/YYYY"}
#: What a missing value looks like in tables and text (en dash).
MISSING = "\u2013"
#: Indicator kind (vbhc.catalog.INDICATOR_KINDS, plus "oe") -> formatter name used by format_value.
KIND_FORMAT: dict[str, str] = {
    "proportion": "percent",
    "prom_mic": "percent",
    "composite": "percent",
    "response_rate": "percent",
    "survival": "percent",
    "prem_topbox": "percent",
    "prem_rating": "number",
    "prem_nps": "number",
    "mean": "number",
    "prom_score": "number",
    "prom_change": "number",
    "cost": "eur",
    "volume": "int",
    "oe": "ratio",
}


# ------------------------------------------------------------------------------------------- messages
def _check_lang(lang: str) -> str:
    if lang not in SUPPORTED:
        raise ValueError(f"unsupported language {lang!r}; expected one of {', '.join(SUPPORTED)}")
    return lang


#: CLDR plural categories a counting message may have ("other" is required).
PLURAL_FORMS = frozenset({"zero", "one", "two", "few", "many", "other"})


def _is_plural(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and "other" in value
        and set(value) <= PLURAL_FORMS
        and all(isinstance(v, str) for v in value.values())
    )


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, str):
            out[name] = value
        else:
            raise TypeError(f"message {name!r} must be a string, got {type(value).__name__}")
    return out


@functools.cache
def _catalog(lang: str) -> dict[str, str]:
    text = resources.files(__name__).joinpath(f"{lang}.toml").read_text(encoding="utf-8")
    return _flatten(tomllib.loads(text))


@functools.cache
def _plurals(lang: str) -> dict[str, dict[str, str]]:
    """The counting messages of a language: {key: {plural form: text}}, found by the shape of their table."""
    text = resources.files(__name__).joinpath(f"{lang}.toml").read_text(encoding="utf-8")
    found: dict[str, dict[str, str]] = {}

    def walk(table: dict[str, Any], prefix: str) -> None:
        for key, value in table.items():
            if _is_plural(value):
                found[f"{prefix}{key}"] = dict(value)
            elif isinstance(value, dict):
                walk(value, f"{prefix}{key}.")

    walk(tomllib.loads(text), "")
    return found


def catalog(lang: str) -> dict[str, str]:
    """All messages of one language as {dotted key: text} (a copy); a counting message's forms as key.one, key.other."""
    return dict(_catalog(_check_lang(lang)))


def plural_keys(lang: str) -> dict[str, dict[str, str]]:
    """The counting messages of a language as {key: {"one": text, "other": text}} (a copy), for t(key, count=n)."""
    return {key: dict(forms) for key, forms in _plurals(_check_lang(lang)).items()}


def placeholders(message: str) -> set[str]:
    """Names of the str.format placeholders in a message ("{rankability}" -> {"rankability"})."""
    return {field for _, field, _, _ in string.Formatter().parse(message) if field is not None}


def t(key: str, lang: str = "en", **values: Any) -> str:
    """The message `key` in `lang`, with placeholders filled from `values`.

    A counting message (one with plural forms) needs `count` as a number: it picks the form the language uses
    for that number and is shown formatted (fmt_int). Raises KeyError naming the key when it is not in the
    catalog (or naming a placeholder without a value), TypeError for a count given as text, ValueError for an
    unsupported language.
    """
    messages = _catalog(_check_lang(lang))
    message = messages.get(key)
    if message is None:
        forms = _plurals(lang).get(key)
        if forms is None:
            raise KeyError(f"no message {key!r} in the {lang!r} catalog")
        message, values = _plural_form(key, forms, lang, values)
    try:
        return message.format(**values)
    except KeyError as exc:
        raise KeyError(f"message {key!r} needs a value for placeholder {exc.args[0]!r}") from None


def _plural_form(key: str, forms: dict[str, str], lang: str, values: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The form of a counting message for values["count"], and the values with the count formatted."""
    if "count" not in values:
        raise KeyError(f"message {key!r} counts something: it needs a value for placeholder 'count'")
    count = values["count"]
    if isinstance(count, (str, bytes, bool)):
        raise TypeError(f"message {key!r} needs count as a number to choose its plural form, got {count!r}")
    try:
        number = Decimal(repr(float(count))) if not isinstance(count, (int, Decimal)) else Decimal(count)
    except (TypeError, ValueError, InvalidOperation):
        raise TypeError(f"message {key!r} needs count as a number to choose its plural form, got {count!r}") from None
    if not number.is_finite():
        raise TypeError(f"message {key!r} needs a finite count, got {count!r}")
    whole = number == number.to_integral_value()
    if whole:  # shown as a whole number (a count of 1.0 reads "1"), so its form is the whole number's: "1 answer"
        number = number.to_integral_value()
    form = _babel_locale(lang).plural_form(abs(number))
    shown = fmt_int(count, lang) if whole else fmt_number(count, lang)
    return forms.get(form, forms["other"]), {**values, "count": shown}


def t_md(key: str, lang: str = "en", **values: Any) -> str:
    """t() for text that Streamlit renders as markdown (titles, captions, alerts): every text value is escaped
    with vbhc.safety.md_escape first, so a unit, file or user name taken from the data shows as typed and can
    never become a link, HTML, bold text or a formula. The message itself may use markdown."""
    from vbhc.safety import md_escape

    return t(key, lang, **{k: md_escape(v) if isinstance(v, str) else v for k, v in values.items()})


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")


def t_value(prefix: str, value: Any, lang: str = "en") -> str:
    """Translate a value the analysis layer produces as plain English text, via the key prefix.slug(value).

    E.g. t_value("assessment", "as expected", "nl") -> "Zoals verwacht"; t_value("position", "above", ...),
    t_value("quadrant", "better outcome, lower cost", ...), t_value("level", "condition_team", ...).
    None/NaN give the en dash; an unknown value raises KeyError like t().
    """
    if _is_missing(value):
        _check_lang(lang)
        return MISSING
    return t(f"{prefix}.{_slug(str(value))}", lang)


# ---------------------------------------------------------------------------------- language choice
def _primary(tag: str) -> str:
    return re.split(r"[-_]", tag.strip(), maxsplit=1)[0].lower()


def choose_language(query_value: str | None, browser_locale: str | None) -> str:
    """The dashboard language: the URL's value if supported, else the browser's, else Dutch.

    `query_value` is e.g. "en" or "NL" (a full tag like "en-GB" is accepted too). `browser_locale` is a
    locale tag such as st.context.locale ("en-US", "nl_NL") or an Accept-Language header
    ("de-DE,en;q=0.8,nl;q=0.5"; the first supported language by descending q wins).
    """
    if query_value:
        lang = _primary(query_value)
        if lang in SUPPORTED:
            return lang
    if browser_locale:
        ranked: list[tuple[float, int, str]] = []
        for i, part in enumerate(browser_locale.split(",")):
            tag, _, params = part.partition(";")
            q = 1.0
            m = re.search(r"q\s*=\s*([0-9.]+)", params)
            if m:
                try:
                    q = float(m.group(1))
                except ValueError:
                    q = 0.0
            ranked.append((-q, i, _primary(tag)))
        for neg_q, _, lang in sorted(ranked):
            if neg_q < 0 and lang in SUPPORTED:
                return lang
    return DEFAULT_LANGUAGE


# ------------------------------------------------------------------------------------------ formatting
def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, NaT
    except (TypeError, ValueError):  # pandas NA refuses bool()
        return True


def _decimal(value: Any, places: int) -> Decimal | None:
    """Value as a Decimal rounded half up to `places` decimals; None when missing or not finite."""
    if isinstance(value, str):
        raise TypeError(f"expected a number, got the text {value!r}")
    if _is_missing(value):
        return None
    try:
        d = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
        if not d.is_finite():
            return None
        d = d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    except (TypeError, ValueError, OverflowError, InvalidOperation):
        return None
    return d if d != 0 else abs(d)  # no "-0,0"


@functools.cache
def _babel_locale(lang: str) -> Locale:
    """Parsed once: Babel would parse the locale name and the pattern again for every number (a table page
    formats hundreds of them on each filter change)."""
    return Locale.parse(BABEL_LOCALES[lang])


@functools.cache
def _number_pattern(pattern: str) -> NumberPattern:
    return parse_pattern(pattern)


def _fraction_pattern(decimals: int) -> str:
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    return "#,##0" + ("." + "0" * decimals if decimals else "")


@functools.cache
def _locale_pattern(lang: str, which: str, decimals: int) -> str:
    """The locale's own currency/percent pattern with `decimals` fraction digits (keeps sign and spacing)."""
    loc = Locale.parse(BABEL_LOCALES[lang])
    base = (loc.currency_formats["standard"] if which == "currency" else loc.percent_formats[None]).pattern
    return re.sub(r"#,##0(?:\.[0#]+)?", _fraction_pattern(decimals), base)


def _minus(text: str) -> str:
    """A number formatted for people with the minus sign "−" (MINUS) instead of Babel's hyphen: grids, tables, the
    PDF and texts then write "−0,4" as the charts (Vega's axes) and fmt_difference do, in both languages. Only
    text for reading goes through here: CSV downloads and Excel's numeric cells keep the numbers themselves."""
    return text.replace("-", MINUS)


def fmt_number(x: Any, lang: str, decimals: int = 1) -> str:
    """12345.67 -> "12.345,7" (nl) / "12,345.7" (en); -0.4 -> "−0,4" (the minus sign, see _minus)."""
    _check_lang(lang)
    pattern = _fraction_pattern(decimals)
    d = _decimal(x, decimals)
    if d is None:
        return MISSING
    return _minus(format_decimal(d, format=_number_pattern(pattern), locale=_babel_locale(lang)))


def fmt_int(n: Any, lang: str) -> str:
    """12345 -> "12.345" (nl) / "12,345" (en)."""
    return fmt_number(n, lang, decimals=0)


def fmt_percent(p: Any, lang: str, decimals: int = 1) -> str:
    """A fraction as a percentage: 0.123 -> "12,3%" (nl) / "12.3%" (en)."""
    _check_lang(lang)
    d = _decimal(p, decimals + 2)
    if d is None:
        return MISSING
    pattern = _number_pattern(_locale_pattern(lang, "percent", decimals))
    return _minus(format_percent(d, format=pattern, locale=_babel_locale(lang)))


def fmt_eur(x: Any, lang: str, decimals: int = 0) -> str:
    """12345 -> "€ 12.345" (nl, with a no-break space) / "€12,345" (en)."""
    _check_lang(lang)
    d = _decimal(x, decimals)
    if d is None:
        return MISSING
    return _minus(
        format_currency(
            d,
            "EUR",
            format=_number_pattern(_locale_pattern(lang, "currency", decimals)),
            locale=_babel_locale(lang),
            currency_digits=False,
        )
    )


def fmt_ratio(x: Any, lang: str) -> str:
    """A ratio such as O/E with 2 decimals: 1.234 -> "1,23" (nl) / "1.23" (en)."""
    return fmt_number(x, lang, decimals=2)


def fmt_date(d: Any, lang: str) -> str:
    """Medium date: 2026-11-24 -> "24 nov 2026" (nl) / "24 Nov 2026" (en). Accepts date, datetime, ISO text."""
    _check_lang(lang)
    if _is_missing(d):
        return MISSING
    if isinstance(d, str):
        try:
            d = dt.date.fromisoformat(d.strip()[:10])
        except ValueError:
            return MISSING
    if isinstance(d, dt.datetime):
        d = d.date()
    if not isinstance(d, dt.date):  # e.g. numpy.datetime64: its text starts with the ISO date
        try:
            d = dt.date.fromisoformat(str(d)[:10])
        except ValueError:
            raise TypeError(f"cannot format {type(d).__name__} {d!r} as a date") from None
    return format_date(d, format="medium", locale=BABEL_LOCALES[lang])


def fmt_datetime(d: Any, lang: str) -> str:
    """Date and time to the minute: 2026-11-24 14:03 -> "24 nov 2026 14:03" (nl) / "24 Nov 2026, 14:03" (en).
    Accepts datetime, pandas Timestamp or ISO text; a time zone is kept as given (not converted)."""
    _check_lang(lang)
    if _is_missing(d):
        return MISSING
    if isinstance(d, str):
        try:
            d = dt.datetime.fromisoformat(d.strip())
        except ValueError:
            return MISSING
    if hasattr(d, "to_pydatetime"):
        d = d.to_pydatetime()
    if not isinstance(d, dt.datetime):
        if isinstance(d, dt.date):
            return fmt_date(d, lang)
        raise TypeError(f"cannot format {type(d).__name__} {d!r} as a date and time")
    d = d.replace(tzinfo=None)
    time_text = format_time(d, format="short", locale=_babel_locale(lang))
    date_text = format_date(d, format="medium", locale=_babel_locale(lang))
    return str(_babel_locale(lang).datetime_formats["medium"]).format(time_text, date_text)


#: How vbhc.access names another unit a viewer may not identify ("other unit 3"); shown as comparison.other_unit.
_OTHER_UNIT = re.compile(r"other unit (\d+)")


def unit_label(unit: Any, lang: str, names: Mapping[str, str] | None = None) -> str:
    """A unit as the reader sees it: "H01" and "H01/SUR" by their name in `names` (unit id -> display name, e.g.
    vbhc.registry.unit_names; else as they are), an anonymised "other unit 3" as "Andere eenheid 3", a condition
    team "colorectal_cancer@H01" as "Zorgteam Darmkanker <the hospital's name>" (labels from the condition
    catalog). The tables keep the ids; only what is shown changes."""
    _check_lang(lang)
    if _is_missing(unit):
        return MISSING
    text = str(unit)
    names = names or {}
    other = _OTHER_UNIT.fullmatch(text)
    if other:
        return t("comparison.other_unit", lang, number=other.group(1))
    condition, at, hospital = text.rpartition("@")
    if at and condition:
        from vbhc.catalog import default_catalog

        conditions = default_catalog().conditions
        name = conditions[condition].label(lang) if condition in conditions else condition
        return t("comparison.team_unit", lang, condition=name, hospital=names.get(hospital, hospital))
    return names.get(text, text)


def format_value(value: Any, kind: str, lang: str) -> str:
    """Format an indicator value by its kind (see KIND_FORMAT): percent, number (1 decimal), EUR, int, ratio."""
    try:
        how = KIND_FORMAT[kind]
    except KeyError:
        raise ValueError(f"unknown indicator kind {kind!r}; expected one of {', '.join(KIND_FORMAT)}") from None
    if how == "percent":
        return fmt_percent(value, lang)
    if how == "number":
        return fmt_number(value, lang, decimals=1)
    if how == "eur":
        return fmt_eur(value, lang)
    if how == "int":
        return fmt_int(value, lang)
    return fmt_ratio(value, lang)


#: The minus sign every signed difference is shown with (a hyphen "-0,1" reads as a dash or a range).
MINUS = "\u2212"


def fmt_difference(value: Any, kind: str, lang: str, *, plus: bool = True) -> str:
    """A difference of two values of an indicator of `kind`, signed with the minus sign "−" (and "+" unless
    `plus` is False): a difference of two rates in percentage points ("−0,2 procentpunt"), as a percentage it
    reads as a relative change ("−0,2%" of what?); any other in the kind's unit ("+1,5", "−€ 120"). A difference
    that rounds to zero has no sign."""
    if kind not in KIND_FORMAT:
        raise ValueError(f"unknown indicator kind {kind!r}; expected one of {', '.join(KIND_FORMAT)}")
    _check_lang(lang)
    if _is_missing(value) or not math.isfinite(float(value)):
        return MISSING
    value = float(value)
    if KIND_FORMAT[kind] == "percent":
        text = t("format.points", lang, value=fmt_number(abs(value) * 100, lang, 1))
    else:
        text = format_value(abs(value), kind, lang)
    if not any(c in "123456789" for c in text):  # rounds to zero: neither up nor down
        return text
    return (MINUS if value < 0 else "+" if plus else "") + text


def fmt_ci(lo: Any, hi: Any, kind: str, lang: str) -> str:
    """A confidence interval as one range: "12,3–15,0%" (nl) / "12.3–15.0%" (en) for percentages,
    "0,85–1,21" for O/E, "€ 11.900–€ 13.400" for cost. The en dash alone when either bound is missing.

    Bounds below zero are separated by a spaced en dash ("−3,2 – −1,0") so the minus signs stay readable.
    """
    if kind not in KIND_FORMAT:
        raise ValueError(f"unknown indicator kind {kind!r}; expected one of {', '.join(KIND_FORMAT)}")
    _check_lang(lang)
    if _is_missing(lo) or _is_missing(hi):
        return MISSING
    left, right = format_value(lo, kind, lang), format_value(hi, kind, lang)
    if MISSING in (left, right):
        return MISSING
    if KIND_FORMAT[kind] == "percent" and left.endswith("%"):
        left = left.removesuffix("%").rstrip("\u00a0\u202f ")  # the percent sign once, after the upper bound
    sep = " \u2013 " if MINUS in left or MINUS in right else "\u2013"
    return f"{left}{sep}{right}"
