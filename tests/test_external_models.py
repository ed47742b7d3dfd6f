"""Published case-mix models (vbhc.external_models): read and refused like external figures, expected values of a
hand-computed logistic case, coverage of the own data, and calibration on own data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import func, select

from vbhc import audit
from vbhc.access import AccessDenied, Role, Scope, Viewer
from vbhc.external import ExternalRefused
from vbhc.external_models import (
    calibration,
    coverage,
    import_model,
    model_history,
    observed_expected,
    read_model,
    stored_model,
    stored_models,
)
from vbhc.models import PublishedModel

HEADER = (
    "source,published,period,condition,indicator,definition_version,link,term,code,coefficient,reference,centre,min,max"
)
P = "national registry,2025-03-01,2024,colorectal_cancer,mortality_30d,1,logit"
MODEL = (
    f"{P},intercept,,-2.5,,,,",
    f"{P},age,,0.04,,65,18,90",
    f"{P},sex,F,,yes,,,",
    f"{P},sex,M,0.5,,,,",
    f"{P},asa,,0.3,,2,1,4",
)


def _csv(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def _expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_a_workbooks_number_cells_decide_no_decimal_mark():
    """A model workbook's coefficients are number cells (a number, not a text with a mark a person wrote): a
    workbook whose coefficients had three decimals (0.125, 1.375) was refused as 'cannot tell a decimal mark from
    a thousands separator', and one beside a coefficient typed as text '0,5' as mixing marks. Only numbers written
    as text decide the mark."""
    import io

    from openpyxl import Workbook

    def workbook(rows: list[str], typed_as_text: str | None = None) -> bytes:
        wb = Workbook()
        ws = wb.active
        ws.append(HEADER.split(","))
        for row in rows:
            cells: list[object] = row.split(",")
            for i in (9, 11, 12, 13):  # coefficient, centre, min, max: number cells
                if cells[i] != "":
                    cells[i] = float(cells[i])
            ws.append([c if c != "" else None for c in cells])
        if typed_as_text is not None:
            ws.cell(5, 10).value = typed_as_text  # sex M's coefficient written as text
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()

    rows = [r.replace(",0.04,", ",0.125,").replace(",0.3,", ",1.375,") for r in MODEL]
    model = read_model(workbook(rows), file_name="model.xlsx")
    assert sorted(t.coefficient for t in model.numbers) == [0.125, 1.375]
    model = read_model(workbook(rows, "0,5"), file_name="model.xlsx")
    assert [t.codes() for t in model.categories] == [{"F": 0.0, "M": 0.5}]


def test_expected_values_of_a_hand_computed_logistic_model():
    model = read_model(_csv(*MODEL), file_name="model.csv")
    assert (model.source, model.period, model.link, model.intercept) == ("national registry", "2024", "logit", -2.5)
    assert model.variables == ("age", "asa", "sex")
    cycles = pd.DataFrame(
        {
            "unit": ["A", "A", "B", "B", "B"],
            "age": [70, 60, 95, np.nan, 50],
            "sex": ["M", "F", "F", "M", "X"],
            "asa": [3, 2, 1, 2, 2],
            "y": [1.0, 0.0, 1.0, 0.0, 1.0],
        }
    )
    want = [
        _expit(-2.5 + 0.04 * 5 + 0.5 + 0.3 * 1),  # 70, M, ASA 3: -1.5
        _expit(-2.5 - 0.04 * 5),  # 60, F, ASA 2: -2.7
        _expit(-2.5 + 0.04 * 30 - 0.3),  # 95 (outside the model's range: scored), F, ASA 1: -1.6
        math.nan,  # age missing: not scored
        math.nan,  # sex X: a code the model does not know
    ]
    np.testing.assert_allclose(model.predict(cycles).to_numpy(float), want, rtol=1e-12)
    assert math.isclose(want[0], 1 / (1 + math.exp(1.5)), rel_tol=1e-12)
    oe = observed_expected(cycles.assign(expected=model.predict(cycles))).set_index("unit")
    assert oe.loc["A", ["n", "n_scored", "observed"]].tolist() == [2, 2, 1.0]
    assert math.isclose(oe.loc["A", "oe"], 1 / (want[0] + want[1]), rel_tol=1e-12)
    assert oe.loc["B", ["n", "n_scored", "observed"]].tolist() == [3, 1, 1.0]
    covered = coverage(model, cycles).set_index("variable")
    assert covered.loc["age", ["missing", "outside_range"]].tolist() == [1, 1]
    assert covered.loc["sex", ["missing", "unknown_code"]].tolist() == [0, 1]
    assert covered.loc["asa"].drop("in_data").sum() == 0
    absent = coverage(model, cycles.drop(columns="asa")).set_index("variable")
    assert not absent.loc["asa", "in_data"] and absent.loc["asa", "missing"] == 5
    assert model.predict(cycles.drop(columns="asa")).isna().all()  # a variable the data lack: nothing scored


def _two_groups(events_m: int, events_f: int) -> tuple[object, pd.DataFrame]:
    """A model giving men 0.2 and women 0.5 (intercept 0, sex M log(1/4)) and ten cycles of each."""
    model = read_model(
        _csv(f"{P},intercept,,0.0,,,,", f"{P},sex,F,,yes,,,", f"{P},sex,M,{math.log(0.25)!r},,,,"),
        file_name="m.csv",
    )
    y = [1.0] * events_m + [0.0] * (10 - events_m) + [1.0] * events_f + [0.0] * (10 - events_f)
    return model, pd.DataFrame({"unit": "A", "sex": ["M"] * 10 + ["F"] * 10, "y": y})


def test_calibration_in_the_large_and_slope_on_own_data():
    model, frame = _two_groups(2, 5)  # observed equals predicted in both groups: perfect calibration
    got = calibration(model, frame)
    assert got.n == 20 and math.isclose(got.observed, 7) and math.isclose(got.expected, 7, rel_tol=1e-12)
    assert abs(got.in_the_large) < 1e-8 and math.isclose(got.slope, 1.0, rel_tol=1e-8)
    model, frame = _two_groups(4, 5)  # men 0.4 observed against 0.2 predicted
    got = calibration(model, frame)
    # two groups: the refitted line goes through both observed rates (women at lp 0: intercept 0)
    assert math.isclose(got.slope, math.log(0.4 / 0.6) / math.log(0.25), rel_tol=1e-7)
    # the offset intercept makes the expected total the observed total (9 events)
    a = got.in_the_large
    assert a > 0 and math.isclose(10 * _expit(a + math.log(0.25)) + 10 * _expit(a), 9, rel_tol=1e-8)


@pytest.mark.parametrize(
    ("rows", "where", "rule"),
    [
        (MODEL[1:], "column 'term'", "no intercept"),
        ((*MODEL, f"{P},nyha,,0.2,,,,"), "row 7 column 'term'", "no case-mix variable 'nyha'"),
        ((*MODEL, f"{P},stage,V,0.2,,,,"), "row 7 column 'code'", "not a code of stage"),
        ((*MODEL, f"{P},sex,M,0.7,,,,"), "row 7 column 'term'", "appears twice"),
        ((*MODEL[:3], f"{P},sex,M,,yes,,,", *MODEL[4:]), "row 5 column 'reference'", "exactly one reference"),
        ((*MODEL[:2], f"{P},sex,F,,,,,", *MODEL[3:]), "row 4 column 'coefficient'", "or mark the row as reference"),
        ((*MODEL[:1], f"{P},age,,abc,,65,18,90", *MODEL[2:]), "row 3 column 'coefficient'", "not a number"),
        ((*MODEL[:1], f"{P},age,,0.04,,65,90,18", *MODEL[2:]), "row 3 column 'min'", "larger than max"),
        # a coefficient, centre or range end of 1e308: the linear predictor overflowed (inf, NaN expected values)
        ((*MODEL[:1], f"{P},age,,1e308,,65,18,90", *MODEL[2:]), "row 3 column 'coefficient'", "absolute value"),
        ((*MODEL[:1], f"{P},age,,0.04,,-1e101,18,90", *MODEL[2:]), "row 3 column 'centre'", "than 1e+100"),
        ((f"{P},intercept,,2e300,,,,", *MODEL[1:]), "row 2 column 'coefficient'", "would overflow"),
        (tuple(r.replace(",1,logit,", ",1,identity,") for r in MODEL), "row 2 column 'link'", "link 'logit'"),
        (tuple(r.replace(",1,logit,", ",9,logit,") for r in MODEL), "row 2 column 'definition_version'", "version"),
        ((*MODEL, MODEL[0].replace("mortality_30d", "length_of_stay")), "row 7 column 'indicator'", "one model"),
    ],
)
def test_a_bad_model_is_refused_with_the_row_named(rows, where, rule):
    with pytest.raises(ExternalRefused) as refused:
        read_model(_csv(*rows), file_name="model.csv")
    message = str(refused.value)
    assert f"model.csv {where}" in message and rule in message, message


# --------------------------------------------------------------------------------------------- stored models
QUALITY = Viewer("quality@example.org", "Quality", (Scope(Role.QUALITY),))
CARE = Viewer("care@example.org", "Care", (Scope(Role.CARE_TEAM, conditions=frozenset({"colorectal_cancer"})),))


def _stored_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(PublishedModel.__table__)).scalar_one()


def test_an_imported_model_is_stored_with_provenance_and_a_newer_import_supersedes(engine):
    first = import_model(engine, QUALITY, _csv(*MODEL), file_name="national.csv")
    assert (first.version, first.superseded) == (1, 0)
    in_use = stored_models(engine, CARE, "colorectal_cancer")
    assert list(in_use) == ["mortality_30d"] and in_use["mortality_30d"].model.intercept == -2.5
    # a newer publication of the same source, condition, indicator and definition version: the next version
    newer = tuple(r.replace("2025-03-01,2024", "2026-03-01,2025") for r in MODEL)
    newer = (newer[0].replace(",-2.5,", ",-2.4,"), *newer[1:])
    second = import_model(engine, QUALITY, _csv(*newer), file_name="national-2025.csv")
    assert (second.version, second.superseded) == (2, 1)
    in_use = stored_models(engine, CARE, "colorectal_cancer")
    assert in_use["mortality_30d"].model.intercept == -2.4 and in_use["mortality_30d"].model.period == "2025"
    history = model_history(engine, CARE, "colorectal_cancer")
    assert list(history["version"]) == [2, 1] and list(history["current"]) == [True, False]
    assert list(history["file_name"]) == ["national-2025.csv", "national.csv"]  # the old one stays readable
    assert "content" not in history
    older = stored_model(engine, CARE, first.id)  # the superseded version itself, as it was imported
    assert (older.version, older.model.intercept, older.model.period) == (1, -2.5, "2024")
    assert older.model.sha256 == first.model.sha256
    assert stored_models(engine, QUALITY, "breast_cancer") == {}
    with pytest.raises(AccessDenied):  # a care team reads the models of its own conditions
        stored_models(engine, CARE, "breast_cancer")
    events = audit.read(engine)
    imports = events[events["action"] == "import"]
    assert len(imports) == 2 and set(imports["sha256"]) == {first.model.sha256, second.model.sha256}
    assert set(imports["condition"]) == {"colorectal_cancer"}


def test_only_the_quality_directorate_imports_models(engine):
    with pytest.raises(AccessDenied):
        import_model(engine, CARE, _csv(*MODEL), file_name="national.csv")
    assert _stored_rows(engine) == 0
    assert (audit.read(engine)["action"] == "denied").sum() == 1


@pytest.mark.parametrize(
    ("rows", "where", "rule"),
    [
        ((*MODEL, f"{P},nyha,,0.2,,,,"), "row 7 column 'term'", "no case-mix variable 'nyha'"),
        ((*MODEL, f"{P},stage,V,0.2,,,,"), "row 7 column 'code'", "not a code of stage"),
        ((*MODEL[:3], f"{P},sex,M,,yes,,,", *MODEL[4:]), "row 5 column 'reference'", "exactly one reference"),
        (MODEL[1:], "column 'term'", "no intercept"),
        ((*MODEL, f"{P},intercept,x,-1.0,,,,"), "row 7 column 'term'", "a second intercept"),
    ],
)
def test_a_refused_model_stores_nothing_and_is_audited(engine, rows, where, rule):
    with pytest.raises(ExternalRefused) as refused:
        import_model(engine, QUALITY, _csv(*rows), file_name="model.csv")
    assert f"model.csv {where}" in str(refused.value) and rule in str(refused.value)
    assert _stored_rows(engine) == 0
    events = audit.read(engine)
    assert list(events["action"]) == ["import_refused"]
    assert stored_models(engine, CARE, "colorectal_cancer") == {}


def test_cli_imports_a_model_and_refuses_a_bad_one_with_one_line(tmp_path, monkeypatch, capsys):
    from vbhc.cli import main
    from vbhc.store import get_engine

    monkeypatch.setenv("VBHC_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    get_engine.cache_clear()
    good, bad = tmp_path / "national.csv", tmp_path / "bad.csv"
    good.write_bytes(_csv(*MODEL))
    bad.write_bytes(_csv(*MODEL, f"{P},stage,V,0.2,,,,"))
    try:
        assert main(["external", "import-model", str(good)]) == 0
        assert "stored as version 1" in capsys.readouterr().out
        assert main(["external", "import-model", str(good)]) == 0
        assert "version 2, superseding version 1" in capsys.readouterr().out
        assert main(["external", "import-model", str(bad)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("vbhc external import-model: bad.csv row 7 column 'code'") and "\n" not in err
        assert _stored_rows(get_engine()) == 2
    finally:
        get_engine.cache_clear()


@pytest.mark.parametrize(
    ("rows", "dutch"),
    [
        ((*MODEL, f"{P},stage,V,0.2,,,,"), "model.csv rij 7 kolom 'code': waarde 'V': geen code van stage: kies uit"),
        (
            (*MODEL, f"{P},sex,M,0.7,,,,"),
            "model.csv rij 7 kolom 'term': waarde 'sex': sex M komt twee keer voor: ook in rij 5",
        ),
        (
            (*MODEL[:1], f"{P},age,,abc,,65,90,18", *MODEL[2:]),
            "model.csv rij 3 kolom 'coefficient': waarde 'abc': geen getal (en nog 2 problemen)",
        ),
    ],
)
def test_a_refused_model_reads_in_dutch_on_the_data_page(rows, dutch):
    """The refusal's rules are catalog messages: Dutch on a Dutch page, the English text (str) unchanged."""
    from vbhc.ingest.problems import Rule

    with pytest.raises(ExternalRefused) as refused:
        read_model(_csv(*rows), file_name="model.csv")
    assert refused.value.line("nl").startswith(dutch), refused.value.line("nl")
    assert refused.value.line("en") == str(refused.value)
    assert all(isinstance(p.rule, Rule) and p.rule.code.startswith("models.") for p in refused.value.problems)
