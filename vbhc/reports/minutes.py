"""The minutes of an improvement meeting as PDF (fpdf2, the meeting report's fonts and table helper) and DOCX
(python-docx), in Dutch or English: condition, unit, date, roles present, the agenda items with their decisions,
and the improvement actions that were open when the meeting was recorded, with owners and due dates.

What the minutes say is built once (`minutes_content`: plain texts in the reader's language, every catalog
object by its label, no item ids) and the two formats only lay it out, so PDF and DOCX cannot drift apart. Each
agenda item is described as the meeting saw it (the version kept with the decision), so the minutes of an old
meeting do not change when an item is edited later. A file leaves only through vbhc.access.export_file (role
checked, audited with its SHA-256).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from vbhc import improvement, minutes
from vbhc.access import Viewer, export_file
from vbhc.agenda import belongs_to_unit
from vbhc.catalog import Catalog, default_catalog
from vbhc.i18n import MISSING, fmt_date, fmt_datetime, format_value, t
from vbhc.improvement import ALL_UNITS, FINISHED, ItemKind, ItemNotFound
from vbhc.reports.core import check_lang
from vbhc.safety import safe_file_name

__all__ = ["FORMATS", "MIME", "Minutes", "describe_item", "export_minutes", "minutes_content", "minutes_file_name"]

FORMATS = ("pdf", "docx")
MIME = {"pdf": "application/pdf", "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}
_DOCX_LANGUAGE = {"nl": "nl-NL", "en": "en-GB"}


@dataclass(frozen=True)
class Minutes:
    """The minutes as texts in one language, ready to lay out."""

    lang: str
    title: str
    facts: list[tuple[str, str]]
    decision_headers: list[str]
    decisions: list[tuple[str, list[list[str]]]]  # (agenda section, rows of item, decision, note)
    action_headers: list[str]
    actions: list[list[str]] = field(default_factory=list)

    def texts(self) -> list[str]:
        """Every text the minutes hold (for tests and for a plain-text view)."""
        out = [self.title, *(x for fact in self.facts for x in fact), *self.decision_headers, *self.action_headers]
        for heading, rows in self.decisions:
            out += [heading, *(cell for row in rows for cell in row)]
        out += [cell for row in self.actions for cell in row]
        return out


def _unit_names(engine: Engine, condition: str, catalog: Catalog, lang: str) -> Callable[[str], str]:
    """The display name of a unit id of the registry (hospital, department, condition team); "all units" for
    ALL_UNITS, the id itself for a unit the registry does not know."""
    from vbhc.registry import unit_names, units

    frame = units(engine)
    label = catalog.condition(condition).label(lang)
    names: dict[str, str] = {}
    for level in ("hospital", "department", "condition_team"):
        names |= unit_names(frame, level, condition, label)
    return lambda unit: t("agenda.all_units", lang) if unit == ALL_UNITS else names.get(unit, unit)


def describe_item(item: Any, lang: str, unit_name: Callable[[str], str], catalog: Catalog | None = None) -> str:
    """An agenda item in the reader's words: a signal by indicator, unit, rule and side; an action by what and its
    owner; a target by indicator, kind and value. Never its item id."""
    condition = (catalog or default_catalog()).condition(item.condition)
    kind = improvement.item_kind(item.item_id)
    if kind == ItemKind.ACTION:
        return f"{item.title} ({item.owner_role})"
    indicator = condition.indicator(item.indicator)
    if kind == ItemKind.SIGNAL:
        parts = [
            indicator.label(lang),
            unit_name(item.unit),
            t(f"improvement.rule_{item.rule}", lang),
            t(f"improvement.side_{item.side}", lang),
        ]
        return " · ".join(parts)
    value = format_value(item.value, indicator.kind, lang)
    rule = f"{t(f'improvement.direction_{item.direction}', lang)} {value}"
    return " · ".join([indicator.label(lang), unit_name(item.unit), t(f"improvement.target_{item.kind}", lang), rule])


def _as_of(versions: Sequence[Any], moment: dt.datetime) -> Any | None:
    """The version of an item that was current at `moment` (None: it did not exist yet)."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
    earlier = [
        v for v in versions if (v.changed_at if v.changed_at.tzinfo else v.changed_at.replace(tzinfo=dt.UTC)) <= moment
    ]
    return earlier[-1] if earlier else None


def minutes_content(
    engine: Engine,
    viewer: Viewer,
    meeting_id: str,
    lang: str = "nl",
    *,
    version: int | None = None,
    catalog: Catalog | None = None,
    unit_name: Callable[[str], str] | None = None,
) -> Minutes:
    """What the minutes of one meeting say, in `lang`. Read through vbhc.minutes and vbhc.improvement, so their role
    rules hold: a reader without the right to edit gets no notes, and an item of a unit the reader may not see is
    left out. `unit_name` names a unit id (default: the registry's names)."""
    lang = check_lang(lang)
    catalog = catalog or default_catalog()
    found = minutes.meeting(engine, viewer, meeting_id, version)
    record = found.record
    unit_name = unit_name or _unit_names(engine, record.condition, catalog, lang)
    facts = [
        (t("minutes.condition", lang), catalog.condition(record.condition).label(lang)),
        (t("minutes.unit", lang), unit_name(record.unit)),
        (t("minutes.held_on", lang), fmt_date(record.held_on, lang)),
        (t("minutes.roles", lang), ", ".join(minutes.role_label(r, lang) for r in record.roles) or MISSING),
        (
            t("minutes.recorded", lang),
            t("minutes.recorded_value", lang, at=fmt_datetime(record.recorded_at, lang), version=record.version),
        ),
    ]
    grouped: dict[str, list[list[str]]] = {}
    for decided in found.decisions:
        try:
            versions = improvement.history(engine, viewer, decided.item_id)
        except ItemNotFound:  # another unit's item in a meeting of every unit, read by a manager
            continue
        seen = next((v for v in versions if v.version == decided.item_version), versions[-1])
        row = [
            describe_item(seen, lang, unit_name, catalog),
            minutes.decision_label(decided.decision, lang),
            decided.note or MISSING,
        ]
        grouped.setdefault(decided.section, []).append(row)
    decisions = [
        (t(f"minutes.section_{section}", lang), grouped[section]) for section in minutes.Section if section in grouped
    ]
    actions = []
    for current in improvement.actions(engine, viewer, record.condition):
        then = _as_of(improvement.history(engine, viewer, current.item_id), record.recorded_at)
        if then is None or then.status in FINISHED or not belongs_to_unit(then.unit, record.unit or None):
            continue
        actions.append(then)
    actions.sort(key=lambda a: (a.due, a.title))
    action_rows = [
        [
            a.title,
            unit_name(a.unit),
            a.owner_role,
            fmt_date(a.start, lang),
            fmt_date(a.due, lang),
            t(f"improvement.action_{a.status}", lang),
        ]
        for a in actions
    ]
    return Minutes(
        lang=lang,
        title=t("minutes.title", lang),
        facts=facts,
        decision_headers=[t("minutes.col_item", lang), t("minutes.col_decision", lang), t("minutes.col_note", lang)],
        decisions=decisions,
        action_headers=[
            t("minutes.col_action", lang),
            t("column.unit", lang),
            t("agenda.col_owner", lang),
            t("agenda.field_start", lang),
            t("agenda.field_due", lang),
            t("agenda.col_status", lang),
        ],
        actions=action_rows,
    )


# --------------------------------------------------------------------------------------------- layouts
def build_minutes_pdf(content: Minutes) -> bytes:
    """The minutes as PDF: the meeting report's page (fonts, header, page numbers) and table style."""
    from vbhc.reports.pdf import FONT, _Report

    lang = content.lang
    pdf = _Report(lang)
    pdf.set_title(content.title)
    pdf.set_creator("vbhc")
    pdf.running_title = " · ".join([content.title, *(value for _, value in content.facts[:3])])
    pdf.title_page = True  # no running title above the title itself
    pdf.add_page()
    pdf.heading(content.title, size=18)
    for name, value in content.facts:
        pdf.set_font(FONT, "B", 10)
        pdf.cell(50, 6, name)
        pdf.set_font(FONT, size=10)
        pdf.multi_cell(0, 6, value, new_x="LMARGIN", new_y="NEXT")
    pdf.title_page = False
    pdf.ln(4)
    pdf.heading(t("minutes.decisions", lang), size=13)
    if not content.decisions:
        pdf.para(t("minutes.no_decisions", lang))
    for heading, rows in content.decisions:
        pdf.heading(heading, size=11)
        pdf.grid(content.decision_headers, rows, (80, 40, 60), size=8.5, align=["LEFT"] * 3)
    pdf.heading(t("minutes.open_actions", lang), size=13)
    if content.actions:
        pdf.para(t("minutes.open_actions_note", lang), size=8.5, height=4.2)
        pdf.grid(content.action_headers, content.actions, (55, 30, 30, 22, 22, 21), size=8, align=["LEFT"] * 6)
    else:
        pdf.para(t("minutes.no_open_actions", lang))
    return bytes(pdf.output())


def build_minutes_docx(content: Minutes) -> bytes:
    """The minutes as a Word document (python-docx), for the secretary to add to the hospital's own files."""
    from docx import Document

    lang = content.lang
    doc = Document()
    doc.core_properties.title = content.title
    doc.core_properties.language = _DOCX_LANGUAGE[lang]
    doc.core_properties.author = "vbhc"
    doc.add_heading(content.title, level=0)
    facts = doc.add_table(rows=0, cols=2)
    for name, value in content.facts:
        cells = facts.add_row().cells
        cells[0].paragraphs[0].add_run(name).bold = True
        cells[1].text = value
    doc.add_heading(t("minutes.decisions", lang), level=1)
    if not content.decisions:
        doc.add_paragraph(t("minutes.no_decisions", lang))
    for heading, rows in content.decisions:
        doc.add_heading(heading, level=2)
        _docx_table(doc, content.decision_headers, rows)
    doc.add_heading(t("minutes.open_actions", lang), level=1)
    if content.actions:
        doc.add_paragraph(t("minutes.open_actions_note", lang))
        _docx_table(doc, content.action_headers, content.actions)
    else:
        doc.add_paragraph(t("minutes.no_open_actions", lang))
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def _docx_table(doc: Any, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    table = doc.add_table(rows=1, cols=len(headers))
    table.style = "Table Grid"
    for cell, header in zip(table.rows[0].cells, headers, strict=True):
        cell.paragraphs[0].add_run(header).bold = True
    for values in rows:
        for cell, value in zip(table.add_row().cells, values, strict=True):
            cell.text = value


_BUILDERS = {"pdf": build_minutes_pdf, "docx": build_minutes_docx}


def minutes_file_name(meeting: minutes.Meeting, fmt: str) -> str:
    """vbhc-minutes-<condition>-<date>.<fmt>, safe in a header and on disk."""
    return safe_file_name(f"vbhc-minutes-{meeting.record.condition}-{meeting.held_on.isoformat()}.{fmt}")


def export_minutes(
    engine: Engine, viewer: Viewer, meeting_id: str, fmt: str, lang: str, *, version: int | None = None
) -> bytes:
    """The minutes file of one meeting for a download: export rights checked, the file audited with its SHA-256
    (vbhc.access.export_file). Care teams export their own conditions' minutes, the quality directorate all."""
    if fmt not in _BUILDERS:
        raise ValueError(f"unknown minutes format {fmt!r}; use one of {', '.join(FORMATS)}")
    found = minutes.meeting(engine, viewer, meeting_id, version)
    return export_file(
        viewer,
        lambda: _BUILDERS[fmt](minutes_content(engine, viewer, meeting_id, lang, version=found.version)),
        what=f"minutes_{fmt}",
        file_name=minutes_file_name(found, fmt),
        condition=found.record.condition,
        unit=found.record.unit or None,
        engine=engine,
    )
