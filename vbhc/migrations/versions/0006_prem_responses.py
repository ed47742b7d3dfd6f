"""prem responses: item-level answers of the patient-experience questionnaires (vbhc.prems)

One row per answer of one returned questionnaire, keyed by (response_id, item), pointing at its unit
(hospital, department) and import batch, with the respondent's case-mix (age band, education, self-rated
health) as the CQI methodology adjusts for.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 08:05:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "prem_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("response_id", text(length=64), nullable=False),
        sa.Column("questionnaire", text(length=64), nullable=False),
        sa.Column("hospital", text(length=40), nullable=False),
        sa.Column("department", text(length=40), nullable=False),
        sa.Column("visit_date", sa.Date(), nullable=False),
        sa.Column("visit_type", text(length=20), nullable=False),
        sa.Column("item", text(length=40), nullable=False),
        sa.Column("answer", sa.Float(), nullable=False),
        sa.Column("age_band", text(length=20), nullable=True),
        sa.Column("education", text(length=20), nullable=True),
        sa.Column("self_rated_health", text(length=20), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["import_batches.id"]),
        sa.ForeignKeyConstraint(
            ["hospital", "department"], ["departments.hospital", "departments.code"], name="fk_prem_responses_unit"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("response_id", "item", name="uq_prem_responses_key"),
    )
    with op.batch_alter_table("prem_responses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_prem_responses_response_id"), ["response_id"], unique=False)
        batch_op.create_index(
            "ix_prem_responses_unit", ["questionnaire", "hospital", "department", "visit_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("prem_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_prem_responses_unit")
        batch_op.drop_index(batch_op.f("ix_prem_responses_response_id"))
    op.drop_table("prem_responses")
