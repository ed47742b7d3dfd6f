"""Published case-mix models (issue 15, item 2): a national registry's model applied to the own patients, so O/E
is measured against the national model rather than against a model of the own patients (which always gives
O/E = 1 on them).

One file (CSV UTF-8 or XLSX) is one model of one indicator, read with the checks of external figures
(vbhc.external.read_table: size, shape, header, formula-like text, decimal mark) and refused as a whole with a
one-line message naming file, row, column and value. Columns:

- source, published, period, condition, indicator, definition_version: provenance, the same in every row;
- link: `logit` (yes/no indicators) or `identity` (continuous ones), the same in every row;
- term: `intercept` (once) or a case-mix variable of the condition in the catalog;
- code: for a category variable the code the row's coefficient belongs to (a catalog code);
- coefficient: the published coefficient (empty or 0 on the reference category's row);
- reference: `yes` on the reference category's row (exactly one per category variable);
- centre: for a number, the value subtracted before multiplying (the published coding, e.g. age - 65);
- min, max: for a number, the range the model was developed on.

Stored models (`import_model`, `stored_models`, `stored_model`, `model_history`; table published_models,
migration 0007): the quality directorate imports a model once (`vbhc external import-model`, the Data page);
the file is checked exactly as `read_model` checks it and refused as a whole, nothing stored, with the refusal
in the audit log. An accepted file is stored as it arrived with its provenance and an audit event; a newer
import of the same (source, condition, indicator, definition version) adds its next version, the older ones
stay readable. The team page uses the most recently imported model of each indicator (re-read with the same
checks: a model the catalog no longer fits, e.g. after a definition change, is not used).

Coverage (`coverage`): a cycle with a missing value or a code the model does not know cannot be scored and is
counted; a value outside the model's range is scored (extrapolated) and counted; a variable the data lack
leaves every cycle unscored. Calibration on own data (`calibration`): calibration-in-the-large (the intercept
with the linear predictor as offset; 0 is perfect) and the calibration slope (1 is perfect).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit
from sqlalchemy import Engine, func, insert, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from vbhc import audit
from vbhc.access import Permission, Viewer, require
from vbhc.catalog import BINARY_KINDS, CONTINUOUS_KINDS, Catalog, default_catalog
from vbhc.external import ExternalRefused, _decimal_mark, _number, _provenance, _versions, read_table
from vbhc.indicators import IndicatorResult, indicator_cycles
from vbhc.ingest.problems import Problem, Rule, audited_problems, says_missing, shown_file
from vbhc.models import PublishedModel

__all__ = [
    "MODEL_COLUMNS",
    "Calibration",
    "CategoryTerm",
    "ExternalModel",
    "NumberTerm",
    "StoredModel",
    "calibration",
    "coverage",
    "import_model",
    "model_cycles",
    "model_history",
    "observed_expected",
    "read_model",
    "stored_model",
    "stored_models",
]

_IDENTITY = ("source", "published", "period", "condition", "indicator", "definition_version", "link")
MODEL_COLUMNS = (*_IDENTITY, "term", "code", "coefficient", "reference", "centre", "min", "max")
_REQUIRED = (*_IDENTITY, "term", "coefficient")
_NUMBERS = ("coefficient", "centre", "min", "max")
INTERCEPT = "intercept"
_YES, _NO = {"yes", "y", "1", "true", "ja", "j"}, {"", "no", "n", "0", "false", "nee"}


@dataclass(frozen=True)
class NumberTerm:
    """coefficient x (value - centre); low/high: the range the model was developed on (None: not published)."""

    variable: str
    coefficient: float
    centre: float = 0.0
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class CategoryTerm:
    """One coefficient per code against the reference category (coefficient 0)."""

    variable: str
    reference: str
    coefficients: tuple[tuple[str, float], ...]

    def codes(self) -> dict[str, float]:
        return {self.reference: 0.0, **dict(self.coefficients)}


@dataclass(frozen=True)
class ExternalModel:
    """A published model of one indicator, with its provenance; `predict` is what vbhc.external.own_summary
    asks of a case-mix model (expected value per cycle, NaN where it cannot score)."""

    file: str
    sha256: str
    source: str
    published: dt.date
    period: str
    condition: str
    indicator: str
    definition_version: str
    link: str
    intercept: float
    numbers: tuple[NumberTerm, ...]
    categories: tuple[CategoryTerm, ...]

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(t.variable for t in self.numbers) + tuple(t.variable for t in self.categories)

    def linear_predictor(self, frame: pd.DataFrame) -> pd.Series:
        """Intercept + sum of the terms per cycle; NaN where a variable is missing (value or column) or a code
        is not in the model."""
        lp = np.full(len(frame), self.intercept, dtype=float)
        for term in self.numbers:
            if term.variable not in frame:
                return pd.Series(np.nan, index=frame.index, name="linear_predictor")
            value = pd.to_numeric(frame[term.variable], errors="coerce").to_numpy(float)
            lp += term.coefficient * (value - term.centre)  # NaN stays NaN: not scored
        for term in self.categories:
            if term.variable not in frame:
                return pd.Series(np.nan, index=frame.index, name="linear_predictor")
            codes = term.codes()
            values = frame[term.variable].astype(object)  # the registry's category columns: plain codes
            lp += values.map(lambda c, codes=codes: codes.get(str(c), np.nan) if pd.notna(c) else np.nan).to_numpy(
                float
            )
        return pd.Series(lp, index=frame.index, name="linear_predictor")

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """Expected value per cycle: a probability (logit link) or a mean (identity); NaN where not scored."""
        lp = self.linear_predictor(frame)
        value = expit(lp.to_numpy(float)) if self.link == "logit" else lp.to_numpy(float)
        return pd.Series(value, index=frame.index, name="expected")


# --------------------------------------------------------------------------------------------- reading
#: The largest coefficient, centre or range end a model may hold: a coefficient of 1e308 was read and the linear
#: predictor overflowed (age 70 - 65 times 1e308 is infinite, and beside the -infinite of age 60 gave NaN: every
#: expected value and O/E infinite, zero or not a number). No published model comes near; products and sums of
#: numbers up to this size (times the registry's bounded values) stay finite.
MAX_MODEL_NUMBER = 1e100


def read_model(source: Path | bytes, *, file_name: str | None = None, catalog: Catalog | None = None) -> ExternalModel:
    """Read and validate a published model; raises vbhc.external.ExternalRefused naming every problem's place
    (file, row, column, value), so nothing half-read is ever used."""
    catalog = catalog or default_catalog()
    data = source.read_bytes() if isinstance(source, Path) else bytes(source)
    file = file_name or (source.name if isinstance(source, Path) else "upload")
    records, problems, problem = read_table(data, file, MODEL_COLUMNS, _REQUIRED, _NUMBERS)
    mark = _decimal_mark(records, problem, _NUMBERS)
    source_text, published, period = _provenance(records, problem)
    first = records[0][1] if records else {}
    for number, values in records:
        for name in ("condition", "indicator", "definition_version", "link"):
            if values.get(name, "") != first.get(name, ""):
                problem(number, name, values.get(name), Rule("models.differs_from_first_row", column=name))
    cond_id, ind_id, link = first.get("condition", ""), first.get("indicator", ""), first.get("link", "")
    row1 = records[0][0] if records else None
    cond = catalog.conditions.get(cond_id)
    ind = None
    if cond is None:
        problem(
            row1,
            "condition",
            cond_id,
            Rule("models.unknown_condition", conditions=", ".join(catalog.conditions)),
        )
    else:
        try:
            ind = cond.indicator(ind_id)
        except KeyError:
            problem(row1, "indicator", ind_id, Rule("models.unknown_indicator", condition=cond_id))
    if ind is not None:
        _versions(records, catalog, problem, file)
        want = "logit" if ind.kind in BINARY_KINDS else "identity" if ind.kind in CONTINUOUS_KINDS else None
        if want is None:
            problem(row1, "indicator", ind_id, Rule("models.kind_has_no_model", kind=ind.kind))
        elif link != want:
            problem(row1, "link", link, Rule("models.kind_needs_link", kind=ind.kind, column="link", link=repr(want)))
    intercepts, numbers, categories = _terms(records, mark, cond, problem)
    if len(intercepts) == 0 and records:
        problem(None, "term", None, Rule("models.no_intercept"))
    if problems:
        raise ExternalRefused(file, problems)
    return ExternalModel(
        file,
        audit.sha256_of(data),
        source_text,
        published,
        period,
        cond_id,
        ind_id,
        first["definition_version"],
        link,
        intercepts[0],
        tuple(numbers),
        tuple(categories),
    )


def _terms(records, mark: str, cond, problem) -> tuple[list[float], list[NumberTerm], list[CategoryTerm]]:
    """The intercept and the terms, each row checked against the catalog's case-mix variables."""
    intercepts: list[float] = []
    numbers: list[NumberTerm] = []
    found: dict[str, dict[str, float]] = {}
    references: dict[str, list[tuple[int, str]]] = {}
    seen: dict[tuple[str, str], int] = {}
    first_row: dict[str, int] = {}

    def num(number: int, values: dict[str, str], name: str) -> float | None:
        text = values.get(name, "")
        if not text:
            return None
        value = _number(text, mark)
        if value is None:
            # "n.v.t." or "-" for a missing value: the refusal says a missing value is an empty cell
            problem(
                number, name, text, Rule("models.not_a_number_missing" if says_missing(text) else "models.not_a_number")
            )
        elif abs(value) > MAX_MODEL_NUMBER:
            problem(number, name, text, Rule("models.number_too_large", limit=f"{MAX_MODEL_NUMBER:.0e}"))
            return None
        return value

    for number, values in records:
        term, code = values.get("term", ""), values.get("code", "")
        coefficient = num(number, values, "coefficient")
        reference = values.get("reference", "").casefold()
        if reference not in _YES | _NO:
            problem(
                number,
                "reference",
                values.get("reference"),
                Rule("models.reference_yes_or_empty", yes="yes"),
            )
        key = (term, code)
        if key in seen:
            # the values as the former text showed them, double spaces made single
            shown_term, shown_code = term.replace("  ", " "), code.replace("  ", " ")
            rule = (
                Rule("models.term_code_twice", term=shown_term, category=shown_code, row=seen[key])
                if code
                else Rule("models.term_twice", term=shown_term, row=seen[key])
            )
            problem(number, "term", term, rule)
            continue
        seen[key] = number
        if term == INTERCEPT:
            if coefficient is None:
                problem(number, "coefficient", None, Rule("models.intercept_needs_coefficient"))
            elif intercepts:
                problem(number, "term", term, Rule("models.second_intercept"))
            else:
                intercepts.append(coefficient)
            continue
        if cond is None:
            continue
        if term not in cond.casemix_names:
            problem(
                number,
                "term",
                term,
                Rule(
                    "models.unknown_variable",
                    term=repr(term),
                    condition=cond.id,
                    variables=", ".join(cond.casemix_names),
                ),
            )
            continue
        var = cond.casemix_variable(term)
        if var.type == "category":
            if code not in var.codes:
                problem(number, "code", code, Rule("models.unknown_code", term=term, codes=", ".join(var.codes)))
                continue
            if reference in _YES:
                if coefficient not in (None, 0.0):
                    problem(number, "coefficient", values.get("coefficient"), Rule("models.reference_coefficient_zero"))
                references.setdefault(term, []).append((number, code))
                found.setdefault(term, {})
            elif coefficient is None:
                problem(number, "coefficient", None, Rule("models.coefficient_or_reference"))
            else:
                found.setdefault(term, {})[code] = coefficient
            first_row.setdefault(term, number)
            continue
        if code:
            problem(number, "code", code, Rule("models.number_has_no_code", term=term))
            continue
        if term in first_row:
            problem(number, "term", term, Rule("models.term_twice", term=term, row=first_row[term]))
            continue
        first_row[term] = number
        low, high = num(number, values, "min"), num(number, values, "max")
        if low is not None and high is not None and low > high:
            problem(number, "min", values.get("min"), Rule("models.min_above_max"))
        if coefficient is None:
            problem(number, "coefficient", None, Rule("models.coefficient_required"))
            continue
        numbers.append(NumberTerm(term, coefficient, num(number, values, "centre") or 0.0, low, high))
    categories = []
    for term, coefficients in found.items():
        refs = references.get(term, [])
        if len(refs) != 1:
            where = refs[1][0] if len(refs) > 1 else first_row[term]
            problem(where, "reference", None, Rule("models.one_reference", term=term, column="reference", yes="yes"))
            continue
        categories.append(CategoryTerm(term, refs[0][1], tuple(sorted(coefficients.items()))))
    return intercepts, numbers, categories


# --------------------------------------------------------------------------------------------- storing
@dataclass(frozen=True)
class StoredModel:
    """An imported model: its id, version (1 for the first import of its source, condition, indicator and
    definition version) and the number of older versions it supersedes."""

    id: int
    version: int
    model: ExternalModel

    @property
    def superseded(self) -> int:
        return self.version - 1


def import_model(
    engine: Engine,
    viewer: Viewer,
    source: Path | bytes,
    *,
    file_name: str | None = None,
    catalog: Catalog | None = None,
) -> StoredModel:
    """Check a published model file exactly as `read_model` does and store it with its provenance in one
    transaction, as the next version of its (source, condition, indicator, definition version); a refused file
    stores nothing and is audited. Quality directorate (and admin) only."""
    name = file_name or (source.name if isinstance(source, Path) else "upload")
    require(viewer, Permission.IMPORT, engine=engine, what="published_model", file=shown_file(name))
    data = source.read_bytes() if isinstance(source, Path) else bytes(source)
    try:
        model = read_model(data, file_name=name, catalog=catalog)
    except ExternalRefused as exc:
        detail = {
            "what": "published model",
            "file": exc.file,
            "problem_count": len(exc.problems),
            "problems": audited_problems(exc.problems),  # where and which rule, read in the log's language
        }
        audit.record(engine, viewer, "import_refused", detail=detail, sha256=audit.sha256_of(data))
        raise
    table = PublishedModel.__table__
    key = (
        table.c.source == model.source,
        table.c.condition == model.condition,
        table.c.indicator == model.indicator,
        table.c.definition_version == model.definition_version,
    )
    try:
        with engine.begin() as conn:
            version = int(conn.execute(select(func.coalesce(func.max(table.c.version), 0)).where(*key)).scalar()) + 1
            new_id = conn.execute(
                insert(table).values(
                    source=model.source,
                    published=model.published,
                    period=model.period,
                    condition=model.condition,
                    indicator=model.indicator,
                    definition_version=model.definition_version,
                    link=model.link,
                    version=version,
                    file_name=shown_file(name)[:500],
                    sha256=model.sha256,
                    content=data,
                    imported_by=viewer.user_id[:200],
                    imported_at=dt.datetime.now(dt.UTC),
                )
            ).inserted_primary_key[0]
            detail = {
                "what": "published model",
                "file": shown_file(name),
                "source": model.source,
                "period": model.period,
                "indicator": model.indicator,
                "version": version,
            }
            audit.record(conn, viewer, "import", detail=detail, sha256=model.sha256, condition=model.condition)
    except IntegrityError as exc:  # another import of the same model landed first: theirs stands
        problem = Problem(name, None, None, None, None, Rule("models.stored_at_same_moment"))
        raise ExternalRefused(name, [problem]) from exc
    except SQLAlchemyError as exc:
        problem = Problem(name, None, None, None, None, Rule("models.database_not_written", error=type(exc).__name__))
        raise ExternalRefused(name, [problem]) from exc
    return StoredModel(int(new_id), version, model)


def model_history(engine: Engine, viewer: Viewer, condition: str | None = None) -> pd.DataFrame:
    """Every stored model version with its provenance (newest import first) and whether it is the one in use
    (`current`: the most recent import of its condition and indicator); without the file contents."""
    if condition is None:  # the Data page's list, beside the import
        require(viewer, Permission.IMPORT, engine=engine, what="published models")
    else:
        require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=condition)
    table = PublishedModel.__table__
    query = select(*(c for c in table.c if c.name != "content")).order_by(table.c.id.desc())
    if condition is not None:
        query = query.where(table.c.condition == condition)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql(query, conn)
    except SQLAlchemyError:  # a database from before migration 0007: no stored models
        return pd.DataFrame(columns=[c.name for c in table.c if c.name != "content"] + ["current"])
    newest = frame.groupby(["condition", "indicator"])["id"].transform("max")
    return frame.assign(current=frame["id"] == newest)


def stored_model(engine: Engine, viewer: Viewer, model_id: int, *, catalog: Catalog | None = None) -> StoredModel:
    """One stored model version by id (a superseded one too: the older versions stay readable), re-read with
    `read_model`'s checks; KeyError when there is no such model."""
    table = PublishedModel.__table__
    with engine.connect() as conn:
        row = conn.execute(
            select(table.c.id, table.c.version, table.c.condition, table.c.file_name, table.c.content).where(
                table.c.id == model_id
            )
        ).first()
    if row is None:
        raise KeyError(f"no stored model {model_id}")
    require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=row.condition)
    model = read_model(bytes(row.content), file_name=row.file_name, catalog=catalog)
    return StoredModel(int(row.id), int(row.version), model)


def stored_models(
    engine: Engine, viewer: Viewer, condition: str, *, catalog: Catalog | None = None
) -> dict[str, StoredModel]:
    """Per indicator of the condition, the most recently imported model, re-read with `read_model`'s checks
    (one the catalog no longer fits is left out)."""
    require(viewer, Permission.VIEW_CONDITION, engine=engine, condition=condition)
    table = PublishedModel.__table__
    newest = select(func.max(table.c.id)).where(table.c.condition == condition).group_by(table.c.indicator)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(table.c.id, table.c.version, table.c.file_name, table.c.content).where(table.c.id.in_(newest))
            ).all()
    except SQLAlchemyError:  # a database from before migration 0007
        return {}
    out: dict[str, StoredModel] = {}
    for row in rows:
        try:
            model = read_model(bytes(row.content), file_name=row.file_name, catalog=catalog)
        except ExternalRefused:  # the catalog changed since the import (e.g. a new definition version)
            continue
        out[model.indicator] = StoredModel(int(row.id), int(row.version), model)
    return out


# --------------------------------------------------------------------------------------------- using
def model_cycles(model: ExternalModel, result: IndicatorResult, units: list[str] | None = None) -> pd.DataFrame:
    """The own care cycles of the model's indicator (value in 'y', unit in 'unit'), with the model's expected
    value per cycle ('expected', NaN where it cannot score); `units` limits them."""
    if result.data is None or result.condition != model.condition:
        raise ValueError(f"the model is of {model.condition}; the result of {result.condition} has no patient rows")
    ind = result.data.condition.indicator(model.indicator)
    frame = indicator_cycles(ind, result.data, result.level)
    frame = frame[frame["y"].notna()]
    if units is not None:
        frame = frame[frame["unit"].astype(str).isin(units)]
    return frame.assign(expected=model.predict(frame).to_numpy(float))


def observed_expected(frame: pd.DataFrame) -> pd.DataFrame:
    """Per unit: cycles, cycles scored, observed and expected over the scored cycles, O/E (yes/no) or
    observed minus expected mean (continuous: the column 'oe' then holds the ratio of the means)."""
    scored = frame[frame["expected"].notna()]
    out = frame.groupby("unit", observed=True).size().rename("n").to_frame()
    sums = scored.groupby("unit", observed=True).agg(
        n_scored=("y", "size"), observed=("y", "sum"), expected=("expected", "sum")
    )
    out = out.join(sums).fillna({"n_scored": 0, "observed": 0.0, "expected": 0.0})
    out["oe"] = np.where(out["expected"] > 0, out["observed"] / out["expected"].where(out["expected"] > 0), np.nan)
    return out.reset_index()


def coverage(model: ExternalModel, frame: pd.DataFrame) -> pd.DataFrame:
    """Per model variable: whether the data have it, and the cycles with a missing value, a code the model does
    not know (both not scored) or a value outside the model's range (scored, extrapolated)."""
    rows = []
    for term in model.numbers:
        present = term.variable in frame
        value = pd.to_numeric(frame[term.variable], errors="coerce") if present else pd.Series(dtype=float)
        outside = 0
        if present and term.low is not None:
            outside += int((value < term.low).sum())
        if present and term.high is not None:
            outside += int((value > term.high).sum())
        rows.append((term.variable, present, int(value.isna().sum()) if present else len(frame), 0, outside))
    for term in model.categories:
        present = term.variable in frame
        values = frame[term.variable] if present else pd.Series(dtype=object)
        known = values.dropna().astype(str).isin(term.codes())
        rows.append(
            (term.variable, present, int(values.isna().sum()) if present else len(frame), int((~known).sum()), 0)
        )
    return pd.DataFrame(rows, columns=["variable", "in_data", "missing", "unknown_code", "outside_range"])


@dataclass(frozen=True)
class Calibration:
    """The external model on the own (scored) cycles: calibration-in-the-large (0 is perfect: the intercept
    with the linear predictor as offset for a logit model, mean(observed - expected) for identity) and the
    calibration slope (1 is perfect)."""

    n: int
    observed: float
    expected: float
    in_the_large: float
    slope: float


def calibration(model: ExternalModel, frame: pd.DataFrame) -> Calibration:
    """Calibration of the model on the cycles of `frame` (column 'y') that it can score."""
    lp = model.linear_predictor(frame).to_numpy(float)
    y = pd.to_numeric(frame["y"], errors="coerce").to_numpy(float)
    ok = np.isfinite(lp) & np.isfinite(y)
    lp, y = lp[ok], y[ok]
    if y.size < 2 or np.ptp(lp) == 0:
        raise ValueError("calibration needs at least two scored cycles with different predictions")
    import statsmodels.api as sm  # seconds to import: only when a model is checked

    if model.link == "logit":
        expected = expit(lp)
        family = sm.families.Binomial()
        large = sm.GLM(y, np.ones((y.size, 1)), family=family, offset=lp).fit().params[0]
        slope = sm.GLM(y, sm.add_constant(lp), family=family).fit().params[1]
    else:
        expected = lp
        large = float(np.mean(y - lp))
        slope = sm.OLS(y, sm.add_constant(lp)).fit().params[1]
    return Calibration(int(y.size), float(y.sum()), float(expected.sum()), float(large), float(slope))
