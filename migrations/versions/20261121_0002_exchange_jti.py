"""Used jtis of broker-minted end-user tokens (replay protection for /api/v1/auth/exchange); forced RLS.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Same tenant predicate as 0001: unset or empty gives NULL, and NULL matches no row.
CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"

SCHEMA = """
create table exchange_jtis (
    broker_id uuid not null references brokers (id) on delete cascade,
    jti text not null check (length(jti) between 1 and 255),
    expires_at timestamptz not null,
    created_at timestamptz not null default now(),
    primary key (broker_id, jti)
);
create index exchange_jtis_broker_expires on exchange_jtis (broker_id, expires_at)
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    # asyncpg prepares each statement, and a prepared statement holds one command.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute("alter table exchange_jtis enable row level security")
    op.execute("alter table exchange_jtis force row level security")
    op.execute(f"create policy tenant_isolation on exchange_jtis "
               f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant select, insert, delete on exchange_jtis to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        grant select, insert, update, delete on exchange_jtis to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table exchange_jtis")
