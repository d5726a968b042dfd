"""Broker quotes: the latest price per symbol each broker pushes (PUT /api/v1/brokers/{id}/quotes); forced RLS.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    op.execute("""
create table broker_quotes (
    broker_id uuid not null references brokers (id) on delete cascade,
    symbol text not null check (length(symbol) between 1 and 32),
    bid double precision not null check (bid > 0 and bid <> 'Infinity'),
    ask double precision not null check (ask >= bid and ask <> 'Infinity'),
    mid double precision check (mid is null or (mid >= bid and mid <= ask)),
    quote_time timestamptz not null,
    received_at timestamptz not null default now(),
    primary key (broker_id, symbol)
)""")
    op.execute("alter table broker_quotes enable row level security")
    op.execute("alter table broker_quotes force row level security")
    op.execute(f"create policy tenant_isolation on broker_quotes "
               f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant select, insert, update, delete on broker_quotes to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        grant select, insert, update, delete on broker_quotes to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table broker_quotes")
