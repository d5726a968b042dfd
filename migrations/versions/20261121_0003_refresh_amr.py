"""Refresh tokens remember how their session logged in (amr), so a refresh never adds or drops a factor.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("set local lock_timeout = '5s'")
    op.execute("alter table refresh_tokens add column amr text[] not null default '{}'")


def downgrade() -> None:
    op.execute("alter table refresh_tokens drop column amr")
