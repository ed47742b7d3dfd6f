"""Data: what is loaded (import batches), completeness per unit, the validated upload and external figures."""

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st

from ui import auth, data, filters, guard, layout, render
from vbhc import access, external, external_models
from vbhc.catalog import default_catalog
from vbhc.i18n import MISSING, catalog, fmt_date, fmt_datetime, fmt_int, fmt_percent, t, t_md
from vbhc.ingest import ImportRefused, explain_problems, rule_text
from vbhc.settings import database_url

chosen = filters.current()
lang = chosen.lang if chosen else filters.language()
st.title(t("data.title", lang))
url, version = database_url(), data.version()

st.subheader(t("data.upload", lang))
uploads = st.file_uploader(
    t("data.upload_help", lang),
    accept_multiple_files=True,
    key="upload_files",
    # no type=: Streamlit's browser code would refuse another file type in English ('application/pdf files are
    # not allowed.'); every reader refuses it by its content, in the reader's language (read.unsupported_type)
    # the widget's button and size line show the catalog's texts (CSS in streamlit_app.py); the help says more
    help=t("data.upload_limits", lang, limit=guard.upload_limit_text(lang)),
    max_upload_size=guard.upload_widget_mb(),  # the importer's limit (VBHC_MAX_UPLOAD_MB), not Streamlit's alone
)
if uploads and st.button(t("data.import_button", lang), type="primary"):
    with tempfile.TemporaryDirectory(prefix="vbhc-upload-") as tmp:
        paths = []
        for number, upload in enumerate(uploads):
            # never trust a client-supplied path; one folder per upload, so two files of the same name both
            # reach the importer (which refuses the batch and says why) instead of one overwriting the other
            name = Path(upload.name).name.strip()
            folder = Path(tmp) / str(number)
            folder.mkdir()
            path = folder / (name if name not in ("", ".", "..") else "upload")
            path.write_bytes(upload.getvalue())
            paths.append(path)
        try:
            # vbhc.access checks the role again and records the import (with each file's sha256) in the audit log
            report = access.guarded_import(auth.current(), paths, data.current_engine())
        except ImportRefused as refused:
            names = ", ".join(p.name for p in paths)
            st.error(t_md("data.import_failed", lang, file=names, count=refused.report.problem_count))
            errors = explain_problems(refused.report, lang)  # rules and hidden values in the reader's language
            errors = errors.astype(object).where(errors.notna(), MISSING)  # a CSV file has no sheet: no "None"
            errors.columns = [t(f"error.{c}", lang) for c in errors.columns]
            st.markdown(f"**{t('data.errors', lang)}**")
            # a static table whose rule wraps (at most MAX_REPORTED_PROBLEMS rows): in a grid the rule, the one
            # cell that says what to fix, was cut at the grid's right edge ("... zodat ell")
            render.static_table(errors, widths={t("error.file", lang): 180, t("error.rule", lang): 420}, lang=lang)
        except Exception as exc:  # never a traceback on the page; the import rolled back and was audited
            st.error(t("data.import_crashed", lang, error=type(exc).__name__))
        else:
            for source in report.sources:
                st.success(
                    t_md(
                        "data.import_done",
                        lang,
                        file=source.file,
                        inserted=fmt_int(source.rows_inserted, lang),
                        updated=fmt_int(source.rows_updated, lang),
                        unchanged=fmt_int(source.rows_unchanged, lang),
                    )
                )
            version = data.version(fresh=True)

st.subheader(t("data.import_batches", lang))
batches = data.batches(url, version)
if batches.empty:
    st.info(t("empty.database_empty", lang))
else:
    # stored column -> message key; what a data manager looks for first (which file, when, by whom, how many rows)
    # before the sheet and the 64-character SHA-256, which at 1440 px pushed the counts and the time out of view
    columns = {
        "file_name": "file",
        "table_name": "table",
        "imported_at": "imported_at",
        "imported_by": "imported_by",
        "rows_read": "rows_read",
        "rows_inserted": "rows_inserted",
        "rows_updated": "rows_updated",
        "rows_unchanged": "rows_unchanged",
        "sheet": "sheet",
        "sha256": "sha256",
    }
    shown = batches[list(columns)].copy()
    shown["sheet"] = shown["sheet"].fillna("–")  # a CSV file has no sheet
    for col in ("rows_read", "rows_inserted", "rows_updated", "rows_unchanged"):
        shown[col] = [fmt_int(v, lang) for v in shown[col]]
    tables = catalog(lang)
    shown["table_name"] = [tables.get(f"import_table.{v}", v) for v in shown["table_name"]]
    shown["imported_at"] = [fmt_datetime(v, lang) for v in shown["imported_at"]]
    shown = shown.astype(object).where(shown.notna(), MISSING)
    shown.columns = [t(f"batch.{key}", lang) for key in columns.values()]
    # the table's name as wide as its longest: the grid cut "Patient-experience (PREM) answers" to its first word
    # (it sized the column to the shorter names), so which table a batch filled was not to be read at 1440 px
    table = t("batch.table", lang)
    longest = max((len(str(v)) for v in [table, *shown[table]]), default=0)
    config = layout.text_columns({table: min(longest * layout.GRID_CHAR_PX + layout.CELL_PADDING_PX, 400)})
    render.data_grid(shown, hide_index=True, width="stretch", column_config=config)
    # the grid's own CSV button is off (client.disableDataExport); this one is role-checked, audited, formula-safe
    render.csv_download(
        batches[list(columns)], lang, what="import_batches", file_name="vbhc-import-batches.csv", key="batches_csv"
    )

if chosen is not None:
    st.subheader(t("data.completeness", lang))
    complete = data.completeness(url, version, chosen.condition)
    if not complete.empty:
        grid = complete.pivot(index="hospital", columns="variable", values="filled")
        condition = default_catalog().condition(chosen.condition)
        shown = grid.map(lambda v: fmt_percent(v, lang, 1))
        names = filters.unit_names("hospital", chosen.condition, lang)
        shown.index = [names.get(str(h), str(h)) for h in shown.index]  # names on screen, ids in the CSV
        shown.index.name = t("column.hospital", lang)
        shown.columns = [condition.casemix_variable(v).label(lang) for v in grid.columns]
        render.data_grid(shown, width="stretch")
        render.csv_download(
            grid,
            lang,
            what="completeness",
            file_name=f"vbhc-completeness-{chosen.condition}.csv",
            key="completeness_csv",
            condition=chosen.condition,
            index=True,
        )

# external benchmark figures (vbhc.external): a national registry's feedback or a partner's summary
viewer = auth.current()
if access.may_import(viewer):
    st.subheader(t("data.external_title", lang))
    figures_file = st.file_uploader(
        t("data.external_help", lang),
        key="external_upload",
        max_upload_size=guard.upload_widget_mb(),
    )
    clicked = st.button(t("data.external_button", lang), key="external_import", disabled=figures_file is None)
    if clicked and figures_file is not None:
        try:
            done = external.import_figures(
                data.current_engine(), viewer, figures_file.getvalue(), file_name=Path(figures_file.name).name
            )
        except external.ExternalRefused as refused:  # one line naming file, row, column and value; nothing stored
            st.error(t_md("data.external_refused", lang, problem=refused.line(lang)))
        except Exception as exc:  # never a traceback on the page; the transaction rolled back
            st.error(t("data.import_crashed", lang, error=type(exc).__name__))
        else:
            st.success(t_md("data.external_done", lang, file=figures_file.name, count=done.rows))
            for warning in done.warnings:
                st.warning(t_md("data.external_warning", lang, warning=rule_text(warning, lang)))
    stored = external.publications(data.current_engine(), viewer)
    if not stored.empty:
        columns = ["source", "published", "period", "file_name", "imported_by", "imported_at"]
        shown = stored[columns].copy()
        shown["published"] = [fmt_date(v, lang) for v in shown["published"]]
        shown["imported_at"] = [fmt_datetime(v, lang) for v in shown["imported_at"]]
        shown.columns = [t(f"data.external_{c}", lang) for c in columns]
        render.data_grid(shown, hide_index=True, width="stretch", key="external_publications")

    # published case-mix models (vbhc.external_models): imported once, versioned, used by the team page
    st.subheader(t("data.models_title", lang))
    model_file = st.file_uploader(
        t("data.models_help", lang),
        key="model_upload",
        max_upload_size=guard.upload_widget_mb(),
    )
    clicked = st.button(t("data.models_button", lang), key="model_import", disabled=model_file is None)
    if clicked and model_file is not None:
        try:
            stored_model = external_models.import_model(
                data.current_engine(), viewer, model_file.getvalue(), file_name=Path(model_file.name).name
            )
        except external.ExternalRefused as refused:  # one line naming file, row, column and value; nothing stored
            st.error(t_md("data.external_refused", lang, problem=refused.line(lang)))
        except Exception as exc:  # never a traceback on the page; the transaction rolled back
            st.error(t("data.import_crashed", lang, error=type(exc).__name__))
        else:
            cond = default_catalog().condition(stored_model.model.condition)
            st.success(
                t_md(
                    "data.models_done",
                    lang,
                    file=model_file.name,
                    indicator=cond.indicator(stored_model.model.indicator).label(lang),
                    version=fmt_int(stored_model.version, lang),
                )
            )
    models = external_models.model_history(data.current_engine(), viewer)
    if not models.empty:
        conditions = default_catalog().conditions
        shown = pd.DataFrame(
            {
                t("data.external_source", lang): models["source"],
                t("data.external_published", lang): [fmt_date(v, lang) for v in models["published"]],
                t("data.external_period", lang): models["period"],
                t("data.models_condition", lang): [conditions[c].label(lang) for c in models["condition"]],
                t("data.models_indicator", lang): [
                    conditions[c].indicator(i).label(lang) if i in {x.id for x in conditions[c].indicators} else i
                    for c, i in zip(models["condition"], models["indicator"], strict=True)
                ],
                t("data.models_version", lang): [fmt_int(v, lang) for v in models["version"]],
                t("data.models_current", lang): [
                    t("report.yes" if v else "report.no", lang) for v in models["current"]
                ],
                t("data.external_file_name", lang): models["file_name"],
                t("data.external_imported_by", lang): models["imported_by"],
                t("data.external_imported_at", lang): [fmt_datetime(v, lang) for v in models["imported_at"]],
            }
        )
        render.data_grid(shown, hide_index=True, width="stretch", key="published_models")
