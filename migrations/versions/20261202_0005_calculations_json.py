"""Stored calculations keep their input and result as json (the text as sent and answered), not jsonb.

They are only ever read back whole (GET /api/v1/calculations/{id}); nothing queries inside them. jsonb
converts every stored document to its binary form on insert, which measured ~110 us of Postgres CPU per
position size against ~45 us for json (2 kB result, bench figures in the README): at a few thousand
calculations a second that conversion alone took a third of a core from the server's machine. json
also keeps the answer byte-for-byte as the client received it (jsonb reorders keys).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("set local lock_timeout = '5s'")
    op.execute("alter table calculations alter column input type json using input::json, "
               "alter column result type json using result::json")


def downgrade() -> None:
    op.execute("alter table calculations alter column input type jsonb using input::jsonb, "
               "alter column result type jsonb using result::jsonb")
