"""kalshi_series: the series a category lists (``extract series``, ``--category``).

Revision ID: 0002_series
Revises: 0001_baseline
Create Date: 2026-12-02

A new table only: nothing of the baseline changes, so the upgrade is quick on any size.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from schemas.tables import UtcDateTime

revision = "0002_series"
down_revision = "0001_baseline"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kalshi_series",
        sa.Column("series_ticker", sa.String(32), primary_key=True),
        sa.Column("title", sa.String(255)),
        sa.Column("category", sa.String(64)),
        sa.Column("tags", sa.Text, comment="JSON array of the series' tags"),
        sa.Column(
            "frequency", sa.String(32), comment="as Kalshi words it: daily, hourly, monthly..."
        ),
        sa.Column("settlement_sources", sa.Text, comment="JSON array of {name, url}"),
        sa.Column("last_updated_ts_utc", UtcDateTime(), comment="the series' last_updated_ts"),
        sa.Column("retrieved_at_utc", UtcDateTime(6), nullable=False),
    )
    op.create_index("ix_kalshi_series_category", "kalshi_series", ["category"])


def downgrade() -> None:
    op.drop_index("ix_kalshi_series_category", table_name="kalshi_series")
    op.drop_table("kalshi_series")
