"""Idempotency-Key records: the first response to a (broker, key), replayed for 24 h; forced RLS.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Same tenant predicate as 0001: unset or empty gives NULL, and NULL matches no row.
CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"

# fingerprint: HMAC-SHA256 (server pepper) of method, path, query and body. A plain hash of a body that
# holds a password would let anyone who reads this table test guesses offline.
# response_body: AES-GCM ciphertext; an API key's creation response holds the full secret key.
# claim: which run owns a pending row, so a run whose row was taken over (stale or expired) writes nothing.
SCHEMA = """
create table idempotency_keys (
    broker_id uuid not null references brokers (id) on delete cascade,
    key text not null check (length(key) between 1 and 255),
    fingerprint bytea not null check (length(fingerprint) = 32),
    principal text not null,
    claim uuid not null,
    status text not null check (status in ('pending', 'done')),
    response_status integer check (response_status between 100 and 499),
    response_headers jsonb,
    response_body bytea,
    created_at timestamptz not null,
    expires_at timestamptz not null,
    primary key (broker_id, key),
    check (status = 'pending' or (response_status is not null and response_headers is not null
                                  and response_body is not null))
);
create index idempotency_keys_broker_expires on idempotency_keys (broker_id, expires_at)
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    # asyncpg prepares each statement, and a prepared statement holds one command.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute("alter table idempotency_keys enable row level security")
    op.execute("alter table idempotency_keys force row level security")
    op.execute(f"create policy tenant_isolation on idempotency_keys "
               f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant select, insert, update, delete on idempotency_keys to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        grant select, insert, update, delete on idempotency_keys to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table idempotency_keys")
