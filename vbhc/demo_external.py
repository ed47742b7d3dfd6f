"""The demo as one hospital has it (issue 15, item 6): the patient rows of its own care cycles only, and the other
hospitals as figures, the way a national quality registry's feedback reaches it.

`vbhc demo --mode own` writes both from the demo registry: the registry files cut down to the own hospital's care
cycles (units.xlsx stays whole: the hospitals and their departments are public), and one file of external
figures (vbhc.external's format) for the nine other hospitals, computed from their patient rows the way a
partner's `vbhc external export` computes them, with expected counts from the case-mix model fitted on every
hospital (the "national model"), small numbers withheld by the export rule. Importing both gives the team page
the own hospital among the external benchmark, with the population named.

It also writes the registry's published case-mix models (vbhc.external_models' format, issue 15 item 2): one
file per key yes/no indicator in `<out>/casemix_models/`, fitted on the nine other hospitals' patient rows only,
so the own hospital's O/E against it is measured against a genuinely external model (a model of the own
patients always gives O/E = 1 on them). The published format is a plain logistic model: numbers enter linearly
(centred, with the range they were seen in), categories against their most frequent code; a code too rare to
estimate (fewer than MIN_LEVEL_N cycles, or no or only events) is published with coefficient 0, as the
dashboard's own models merge it into the reference.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sqlalchemy import Engine

from vbhc.casemix import MIN_LEVEL_N
from vbhc.catalog import BINARY_KINDS, Catalog, Condition, Indicator, default_catalog
from vbhc.external import own_summary, suppressed_summary, write_figures
from vbhc.external_models import INTERCEPT, MODEL_COLUMNS
from vbhc.indicators import ConditionData, compute_indicators, indicator_cycles, load_condition_data, restrict
from vbhc.registry import hospital_of
from vbhc.reports.privacy import SuppressionRule

__all__ = [
    "EXTERNAL_FILE",
    "MODELS_DIR",
    "SOURCE",
    "external_figures",
    "external_files",
    "fit_published_model",
    "own_hospital_files",
]

EXTERNAL_FILE = "external_figures.csv"
#: the folder of `<out>` holding the registry's published case-mix models, one file per key yes/no indicator
MODELS_DIR = "casemix_models"
#: a fit whose coefficient is larger than this (logit scale) separated: no model is published for it
_MAX_COEFFICIENT = 15.0
#: The registry's name: a proper name, shown as stored in either language (see demo_history.NORM_SOURCE).
SOURCE = "NORMA (demo)"
_CYCLES = "care_cycles.csv"


def own_hospital_files(files: Sequence[Path], own: str, out_dir: Path) -> list[Path]:
    """Copies of the registry files in `out_dir` holding only the own hospital's care cycles and the rows that
    belong to them; every cell is copied as text, as written (nothing parsed, so nothing changes on the way)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {Path(f).name: Path(f) for f in files}
    if _CYCLES not in by_name:
        raise ValueError(f"the demo files hold no {_CYCLES}")
    kept: set[str] = set()
    written: list[Path] = []
    for path in [by_name[_CYCLES], *(p for name, p in by_name.items() if name != _CYCLES)]:
        target = out_dir / path.name
        if path.suffix.lower() != ".csv":
            shutil.copyfile(path, target)
        else:
            with path.open(encoding="utf-8", newline="") as src, target.open("w", encoding="utf-8", newline="") as dst:
                reader, writer = csv.reader(src), csv.writer(dst, lineterminator="\n")
                header = next(reader)
                writer.writerow(header)
                if "cycle_id" not in header:  # patient experience: rows name their unit, not a care cycle
                    hospital = header.index("hospital")
                    writer.writerows(row for row in reader if row[hospital] == own)
                    written.append(target)
                    continue
                cycle = header.index("cycle_id")
                if path.name == _CYCLES:
                    hospital = header.index("hospital")
                    for row in reader:
                        if row[hospital] == own:
                            kept.add(row[cycle])
                            writer.writerow(row)
                else:
                    writer.writerows(row for row in reader if row[cycle] in kept)
        written.append(target)
    order = {Path(f).name: i for i, f in enumerate(files)}
    return sorted(written, key=lambda p: order[p.name])


def external_figures(
    engine: Engine,
    own: str,
    out_dir: Path,
    *,
    published: dt.date,
    catalog: Catalog | None = None,
    rule: SuppressionRule | None = None,
) -> Path:
    """The other hospitals' figures per hospital and indicator of every condition, from the registry in
    `engine` (every hospital's patient rows), written as one external figures file in `out_dir`."""
    return external_files(engine, own, out_dir, published=published, catalog=catalog, rule=rule, models=False)[0]


def external_files(
    engine: Engine,
    own: str,
    out_dir: Path,
    *,
    published: dt.date,
    catalog: Catalog | None = None,
    rule: SuppressionRule | None = None,
    models: bool = True,
) -> tuple[Path, list[Path]]:
    """The external figures file (as `external_figures`) and, with `models`, the published case-mix models of
    every condition's key yes/no indicators fitted on the other hospitals' patient rows (`<out>/casemix_models`),
    each condition read once."""
    catalog = catalog or default_catalog()
    rule = rule or SuppressionRule.from_settings()
    frames: list[pd.DataFrame] = []
    fitted: list[tuple[Indicator, ConditionData, list[str]]] = []
    years: set[int] = set()
    for condition in catalog.conditions:
        data = load_condition_data(condition, engine=engine, catalog=catalog)
        if data.cycles.empty:
            continue
        years.update(pd.to_datetime(data.cycles["index_date"]).dt.year.unique().tolist())
        result = compute_indicators(data, "hospital")
        others = sorted({hospital_of(str(u)) for u in result.table["unit"]} - {own})
        # expected from the model fitted on every hospital: the registry's national model
        summary = own_summary(result, models=result.models, hospitals=others)
        frames.append(suppressed_summary(summary, rule))
        if models and others:
            fitted += [(ind, data, others) for ind in _published_indicators(data.condition)]
    if not frames:
        raise ValueError("the registry holds no care cycles to compute external figures from")
    period = f"{min(years)}-{max(years)}" if len(years) > 1 else str(min(years))
    target = out_dir / EXTERNAL_FILE
    target.write_bytes(
        write_figures(pd.concat(frames, ignore_index=True), source=SOURCE, published=published, period=period)
    )
    written: list[Path] = []
    for ind, data, others in fitted:
        rows = fit_published_model(restrict(data, hospitals=others), ind)
        if rows is None:  # too few cycles or events to publish a model of this indicator
            continue
        folder = out_dir / MODELS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{data.condition.id}.{ind.id}.csv"
        path.write_bytes(_model_csv(rows, data.condition, ind, published=published, period=period))
        written.append(path)
    return target, written


def _published_indicators(cond: Condition) -> list[Indicator]:
    """The key yes/no indicators whose value comes from the case-mix variables alone (no PROM baseline)."""
    return [i for i in cond.indicators if i.key and i.kind in BINARY_KINDS and i.instrument is None]


def fit_published_model(data: ConditionData, ind: Indicator) -> list[dict[str, object]] | None:
    """A logistic model of `ind` on the cycles of `data`, as the published format's term rows (intercept,
    numbers centred at their mean with their range, every category code against the most frequent one);
    None when it cannot be fitted (no events, or only events, or a separating fit)."""
    cond = data.condition
    frame = indicator_cycles(ind, data, "hospital")
    frame = frame[frame["y"].notna()]
    present = [v for v in cond.casemix if v.name in frame and frame[v.name].notna().any()]
    frame = frame.dropna(subset=[v.name for v in present])
    y = frame["y"].to_numpy(float)
    if len(y) < MIN_LEVEL_N or y.sum() == 0 or y.sum() == len(y):
        return None
    columns: list[np.ndarray] = [np.ones(len(frame))]
    terms: list[dict[str, object]] = []  # one per design column after the intercept, in order
    fixed: list[dict[str, object]] = []  # reference rows and codes published with coefficient 0
    for var in present:
        if var.type == "category":
            values = frame[var.name].astype(str).to_numpy()
            seen = [code for code in var.codes if (values == code).any()]
            size = {code: int((values == code).sum()) for code in seen}
            events = {code: float(y[values == code].sum()) for code in seen}
            reference = max(seen, key=lambda code: (size[code], -seen.index(code)))
            fixed.append({"term": var.name, "code": reference, "reference": "yes"})
            for code in seen:
                if code == reference:
                    continue
                if size[code] < MIN_LEVEL_N or events[code] in (0, size[code]):
                    fixed.append({"term": var.name, "code": code, "coefficient": 0.0})
                    continue
                columns.append((values == code).astype(float))
                terms.append({"term": var.name, "code": code})
            continue
        x = pd.to_numeric(frame[var.name], errors="coerce").to_numpy(float)
        if np.ptp(x) == 0:
            continue
        centre = round(float(x.mean()), 1)
        columns.append(x - centre)
        terms.append({"term": var.name, "centre": centre, "min": float(x.min()), "max": float(x.max())})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = sm.GLM(y, np.column_stack(columns), family=sm.families.Binomial()).fit()
        except (ValueError, np.linalg.LinAlgError):
            return None
    params = np.asarray(fit.params, dtype=float)
    if not fit.converged or not np.isfinite(params).all() or np.abs(params).max() > _MAX_COEFFICIENT:
        return None
    rows: list[dict[str, object]] = [{"term": INTERCEPT, "coefficient": float(params[0])}]
    rows += [{**term, "coefficient": float(b)} for term, b in zip(terms, params[1:], strict=True)]
    return rows + fixed


def _model_csv(
    rows: list[dict[str, object]], cond: Condition, ind: Indicator, *, published: dt.date, period: str
) -> bytes:
    """The model's rows in vbhc.external_models' file format (CSV UTF-8, numbers with a decimal point)."""
    identity = {
        "source": SOURCE,
        "published": published.isoformat(),
        "period": period,
        "condition": cond.id,
        "indicator": ind.id,
        "definition_version": ind.version,
        "link": "logit",
    }
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(MODEL_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**identity, **{k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()}})
    return buffer.getvalue().encode("utf-8")
