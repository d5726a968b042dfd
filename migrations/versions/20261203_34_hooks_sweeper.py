"""Nothing lost across a crash or a Redis outage (issue 17 follow-up): a platform message remembers the traders
it changed and when their alert rules were evaluated, so a sweeper can queue the evaluations that never ran;
partial indexes let the sweeper find due deliveries and unevaluated messages, and the pruning of old message
ids, without scanning. RLS on both tables is unchanged (forced, migration 17a / 17b).

Revision ID: 17d_hooks_sweeper
Revises: 17c_alerts
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "17d_hooks_sweeper"
down_revision = "17c_alerts"
branch_labels = None
depends_on = None

UPGRADE = (
    "alter table platform_messages add column traders text[] not null default '{}', "
    "add column evaluated_at timestamptz",
    "create index platform_messages_unevaluated on platform_messages (received_at) "
    "where evaluated_at is null and cardinality(traders) > 0",
    "create index platform_messages_received on platform_messages (received_at)",
    "create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending'",
)


def upgrade() -> None:
    op.execute("set local lock_timeout = '5s'")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("drop index webhook_deliveries_due")
    op.execute("drop index platform_messages_received")
    op.execute("drop index platform_messages_unevaluated")
    op.execute("alter table platform_messages drop column evaluated_at, drop column traders")
