"""published case-mix models: a national registry's model of one indicator, imported once and kept with its
provenance; a newer import of the same source, condition, indicator and definition version adds the next version

The file is stored as it arrived and read with vbhc.external_models' checks whenever it is used; the unique
(source, condition, indicator, definition_version, version) key decides between two imports at once.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 08:10:00.000000
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "published_models",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("published", sa.Date(), nullable=False),
        sa.Column("period", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("condition", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("indicator", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("definition_version", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("link", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("file_name", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("imported_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("imported_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "source", "condition", "indicator", "definition_version", "version", name="uq_published_models_version"
        ),
    )
    with op.batch_alter_table("published_models", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_published_models_condition"), ["condition"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("published_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_published_models_condition"))
    op.drop_table("published_models")
