"""Baseline: the seven tables as they stood when schema versions began.

Revision ID: 0001_baseline
Revises:
Create Date: 2026-11-28

The tables come from ``schemas/migrations/baseline.py`` (a frozen copy), the same
definitions that recognise a database made before Alembic existed.
"""

from __future__ import annotations

from alembic import op

from schemas.migrations.baseline import baseline_metadata

revision = "0001_baseline"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    baseline_metadata().create_all(op.get_bind())


def downgrade() -> None:
    baseline_metadata().drop_all(op.get_bind())
