"""prom questionnaires: PROM answers stored one row per returned questionnaire instead of one row per answer

prom_questionnaires holds a care cycle's instrument at a timepoint: one completed date and one answer column per
item position (a01 .. a64); prom_items gives each instrument's item its position, once and for good. The item
rows of prom_responses move over and the table goes:
- positions are given in the order the items were first imported (their first row's id);
- a questionnaire's batch is the latest batch of its item rows (the last import that changed it);
- its date is the latest of its item rows' dates: rows that disagree are logged (their count), not refused.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 19:30:00.000000
"""

import logging

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_log = logging.getLogger("alembic.runtime.migration")

#: As vbhc.models.PROM_ANSWER_SLOTS at this revision (a migration never reads the current models).
SLOTS = 64
ANSWERS = [f"a{n:02d}" for n in range(1, SLOTS + 1)]


def _item_rows() -> sa.Table:
    text = sqlmodel.sql.sqltypes.AutoString
    return sa.Table(
        "prom_responses",
        sa.MetaData(),
        sa.Column("id", sa.Integer()),
        sa.Column("cycle_id", text(length=64)),
        sa.Column("instrument", text(length=40)),
        sa.Column("timepoint", text(length=40)),
        sa.Column("item", text(length=40)),
        sa.Column("value", sa.Float()),
        sa.Column("completed_date", sa.Date()),
        sa.Column("batch_id", sa.Integer()),
    )


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    items = op.create_table(
        "prom_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instrument", text(length=40), nullable=False),
        sa.Column("item", text(length=40), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instrument", "item", name="uq_prom_items_item"),
        sa.UniqueConstraint("instrument", "position", name="uq_prom_items_position"),
    )
    questionnaires = op.create_table(
        "prom_questionnaires",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", sa.String(length=64), nullable=False),
        sa.Column("instrument", sa.String(length=40), nullable=False),
        sa.Column("timepoint", sa.String(length=40), nullable=False),
        sa.Column("completed_date", sa.Date(), nullable=True),
        *[sa.Column(c, sa.Float(), nullable=True) for c in ANSWERS],
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["import_batches.id"]),
        sa.ForeignKeyConstraint(["cycle_id"], ["care_cycles.cycle_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "instrument", "timepoint", name="uq_prom_questionnaires_key"),
    )
    conn = op.get_bind()
    p = _item_rows()
    first_seen = (
        sa.select(p.c.instrument, p.c.item, sa.func.min(p.c.id))
        .group_by(p.c.instrument, p.c.item)
        .order_by(sa.func.min(p.c.id))
    )
    positions: dict[str, int] = {}
    rows = []
    for instrument, item, _ in conn.execute(first_seen).all():
        positions[instrument] = positions.get(instrument, 0) + 1
        if positions[instrument] > SLOTS:
            raise RuntimeError(f"PROM instrument {instrument!r} has more than {SLOTS} items: it cannot be stored")
        rows.append({"instrument": instrument, "item": item, "position": positions[instrument]})
    if rows:
        conn.execute(items.insert(), rows)
    keys = (p.c.cycle_id, p.c.instrument, p.c.timepoint)
    disagree = (
        sa.select(*keys)
        .group_by(*keys)
        .having(
            sa.or_(
                sa.func.count(p.c.completed_date.distinct()) > 1,
                sa.and_(sa.func.count(p.c.completed_date) > 0, sa.func.count(p.c.completed_date) < sa.func.count()),
            )
        )
        .subquery()
    )
    count = conn.execute(sa.select(sa.func.count()).select_from(disagree)).scalar_one()
    if count:
        _log.warning("%d PROM questionnaires' item rows had different completed dates: the latest is kept", count)
    i = items
    answers = [sa.func.max(sa.case((i.c.position == n, p.c.value))).label(c) for n, c in enumerate(ANSWERS, 1)]
    packed = (
        sa.select(*keys, sa.func.max(p.c.completed_date), *answers, sa.func.max(p.c.batch_id))
        .join(i, sa.and_(i.c.instrument == p.c.instrument, i.c.item == p.c.item))
        .group_by(*keys)
    )
    names = ["cycle_id", "instrument", "timepoint", "completed_date", *ANSWERS, "batch_id"]
    conn.execute(questionnaires.insert().from_select(names, packed))
    op.drop_table("prom_responses")


def downgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    p = op.create_table(
        "prom_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("cycle_id", text(length=64), nullable=False),
        sa.Column("instrument", text(length=40), nullable=False),
        sa.Column("timepoint", text(length=40), nullable=False),
        sa.Column("item", text(length=40), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("completed_date", sa.Date(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["import_batches.id"]),
        sa.ForeignKeyConstraint(["cycle_id"], ["care_cycles.cycle_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cycle_id", "instrument", "timepoint", "item", name="uq_prom_responses_key"),
    )
    conn = op.get_bind()
    q = sa.table(
        "prom_questionnaires",
        *[sa.column(c) for c in ("id", "cycle_id", "instrument", "timepoint", "completed_date", *ANSWERS, "batch_id")],
    )
    i = sa.table("prom_items", sa.column("instrument"), sa.column("item"), sa.column("position"))
    names = ["cycle_id", "instrument", "timepoint", "item", "value", "completed_date", "batch_id"]
    for n, c in enumerate(ANSWERS, 1):
        answer = (
            sa.select(q.c.cycle_id, q.c.instrument, q.c.timepoint, i.c.item, q.c[c], q.c.completed_date, q.c.batch_id)
            .join(i, sa.and_(i.c.instrument == q.c.instrument, i.c.position == n))
            .where(q.c[c].is_not(None))
        )
        conn.execute(p.insert().from_select(names, answer))
    op.drop_table("prom_questionnaires")
    op.drop_table("prom_items")
