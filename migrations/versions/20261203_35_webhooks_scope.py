"""The `webhooks:manage` key scope (issue 17 follow-up): managing webhook endpoints, their secrets, the inbound
platform-events secret and alert rules no longer rides on `brokers:write`. Secret keys that could do it before
(those with `brokers:write`) keep it: they get the new scope.

Revision ID: 17e_webhooks_scope
Revises: 17d_hooks_sweeper
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "17e_webhooks_scope"
down_revision = "17d_hooks_sweeper"
branch_labels = None
depends_on = None

# api_keys has forced RLS, which binds its owner too: for this one cross-tenant update the owner lifts the
# FORCE for the length of the migration's transaction (DDL is transactional: no other session ever sees it lifted,
# the ACCESS EXCLUSIVE lock keeps them out meanwhile), then puts it back.
GRANT = ("update api_keys set scopes = array_append(scopes, 'webhooks:manage') "
         "where kind = 'secret' and 'brokers:write' = any(scopes) and not ('webhooks:manage' = any(scopes))")
REVOKE = "update api_keys set scopes = array_remove(scopes, 'webhooks:manage') where 'webhooks:manage' = any(scopes)"


def statements(update: str) -> list[str]:
    return ["alter table api_keys no force row level security", update,
            "alter table api_keys force row level security"]


def upgrade() -> None:
    op.execute("set local lock_timeout = '5s'")
    for statement in statements(GRANT):
        op.execute(statement)


def downgrade() -> None:
    for statement in statements(REVOKE):
        op.execute(statement)
