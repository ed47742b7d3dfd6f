"""meeting records: what a condition team's improvement meeting decided, per agenda item

Records are versioned like the improvement items: recording a meeting again adds its next version; the unique
(meeting_id, version) constraint makes two simultaneous recordings of the same version fail in the database
(vbhc.minutes).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:45:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "meeting_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("condition", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("unit", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("held_on", sa.Date(), nullable=False),
        sa.Column("roles_present", sa.Text(), nullable=False),
        sa.Column("recorded_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("recorded_roles", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("recorded_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("meeting_id", "version", name="uq_meeting_records_version"),
    )
    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.create_index("ix_meeting_records_condition", ["condition", "held_on"], unique=False)

    op.create_table(
        "meeting_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("section", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("item_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("item_version", sa.Integer(), nullable=False),
        sa.Column("decision", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["record_id"], ["meeting_records.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("record_id", "item_id", name="uq_meeting_decisions_item"),
    )
    with op.batch_alter_table("meeting_decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_meeting_decisions_record_id"), ["record_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("meeting_decisions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_meeting_decisions_record_id"))
    op.drop_table("meeting_decisions")
    with op.batch_alter_table("meeting_records", schema=None) as batch_op:
        batch_op.drop_index("ix_meeting_records_condition")
    op.drop_table("meeting_records")
