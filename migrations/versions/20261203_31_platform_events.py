"""Platform events (issue 17): the broker's inbound secret, the message ids and event ids seen (replays are
no-ops), and the account state they keep current (balance, equity, open positions). Forced RLS on all.

Revision ID: 17a_platform_events
Revises: 20261203_compliance_reports
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

revision = "17a_platform_events"
down_revision = "20261203_compliance_reports"
branch_labels = None
depends_on = None

CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"
TABLES = ("platform_event_secrets", "platform_messages", "platform_events", "trading_accounts", "account_positions")

SCHEMA = """
create table platform_event_secrets (
    broker_id uuid primary key references brokers (id) on delete cascade,
    secret_enc text not null,
    previous_secret_enc text,
    previous_valid_until timestamptz,
    rotated_at timestamptz not null default now()
);
create table platform_messages (
    broker_id uuid not null references brokers (id) on delete cascade,
    message_id text not null check (length(message_id) between 1 and 255),
    received_at timestamptz not null default now(),
    events integer not null,
    primary key (broker_id, message_id)
);
create table platform_events (
    broker_id uuid not null references brokers (id) on delete cascade,
    event_id text not null check (length(event_id) between 1 and 255),
    type text not null,
    trader_id text not null,
    occurred_at timestamptz not null,
    received_at timestamptz not null default now(),
    data jsonb not null,
    primary key (broker_id, event_id)
);
create index platform_events_trader on platform_events (broker_id, trader_id, occurred_at desc);
create table trading_accounts (
    broker_id uuid not null references brokers (id) on delete cascade,
    trader_id text not null check (length(trader_id) between 1 and 128),
    currency text,
    balance double precision,
    equity double precision,
    free_margin double precision,
    margin double precision,
    updated_at timestamptz,
    margin_call_at timestamptz,
    margin_call_level double precision,
    primary key (broker_id, trader_id)
);
create table account_positions (
    broker_id uuid not null references brokers (id) on delete cascade,
    trader_id text not null,
    position_id text not null check (length(position_id) between 1 and 128),
    symbol text not null,
    side text not null check (side in ('long', 'short')),
    lots double precision not null check (lots > 0),
    open_price double precision not null check (open_price > 0),
    stop_loss double precision check (stop_loss > 0),
    take_profit double precision check (take_profit > 0),
    status text not null check (status in ('open', 'closed')),
    event_at timestamptz not null,
    opened_at timestamptz,
    closed_at timestamptz,
    primary key (broker_id, trader_id, position_id)
);
create index account_positions_open on account_positions (broker_id, trader_id) where status = 'open'
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    for table in TABLES:
        op.execute(f"alter table {table} enable row level security")
        op.execute(f"alter table {table} force row level security")
        op.execute(f"create policy tenant_isolation on {table} "
                   f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    names = ", ".join(TABLES)
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant select, insert, update, delete on {names} to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        grant select, insert, update, delete on {names} to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    for table in reversed(TABLES):
        op.execute(f"drop table {table}")
