"""Outbound webhooks (issue 17): endpoints per broker (URL, event types, Fernet-encrypted secret and the
previous one during a rotation), deliveries (one message to one endpoint, its status and next attempt) and
every attempt (the delivery log). Forced RLS on all three.

Revision ID: 17b_webhooks
Revises: 17a_platform_events
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

revision = "17b_webhooks"
down_revision = "17a_platform_events"
branch_labels = None
depends_on = None

CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"
TABLES = ("webhook_endpoints", "webhook_deliveries", "webhook_attempts")

SCHEMA = """
create table webhook_endpoints (
    id uuid primary key,
    broker_id uuid not null references brokers (id) on delete cascade,
    url text not null check (length(url) between 8 and 2048),
    description text,
    event_types text[] not null,
    secret_enc text not null,
    previous_secret_enc text,
    previous_valid_until timestamptz,
    enabled boolean not null default true,
    disabled_reason text,
    disabled_at timestamptz,
    last_success_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index webhook_endpoints_broker on webhook_endpoints (broker_id);
create table webhook_deliveries (
    id uuid primary key,
    broker_id uuid not null references brokers (id) on delete cascade,
    endpoint_id uuid not null references webhook_endpoints (id) on delete cascade,
    message_id text not null,
    event_type text not null,
    payload text not null,
    status text not null check (status in ('pending', 'delivered', 'failed', 'exhausted', 'aborted', 'cancelled')),
    attempts integer not null default 0,
    next_attempt_at timestamptz,
    last_status_code integer,
    last_latency_ms double precision,
    last_error text,
    redelivery_of uuid references webhook_deliveries (id) on delete set null,
    created_at timestamptz not null default now(),
    delivered_at timestamptz
);
create index webhook_deliveries_endpoint on webhook_deliveries (broker_id, endpoint_id, created_at desc);
create table webhook_attempts (
    broker_id uuid not null references brokers (id) on delete cascade,
    delivery_id uuid not null references webhook_deliveries (id) on delete cascade,
    attempt integer not null check (attempt >= 1),
    attempted_at timestamptz not null,
    status_code integer,
    latency_ms double precision,
    error text,
    primary key (delivery_id, attempt)
)
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
