"""Alert rules per broker and the alerts they raise (issue 17): one active alert per (rule, trader, subject) at
most, kept by a partial unique index, so a breach fires once and again only after it cleared. Forced RLS.

Revision ID: 17c_alerts
Revises: 17b_webhooks
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

revision = "17c_alerts"
down_revision = "17b_webhooks"
branch_labels = None
depends_on = None

CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"
TABLES = ("alert_rules", "alerts")

SCHEMA = """
create table alert_rules (
    id uuid primary key,
    broker_id uuid not null references brokers (id) on delete cascade,
    kind text not null check (kind in ('risk-per-trade', 'total-risk', 'margin-level', 'currency-exposure',
                                       'portfolio-var')),
    threshold double precision not null,
    clear_threshold double precision,
    confidence double precision,
    description text,
    enabled boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index alert_rules_broker on alert_rules (broker_id);
create table alerts (
    id uuid primary key,
    broker_id uuid not null references brokers (id) on delete cascade,
    rule_id uuid not null references alert_rules (id) on delete cascade,
    trader_id text not null,
    subject text not null,
    status text not null check (status in ('active', 'cleared')),
    value double precision,
    threshold double precision not null,
    triggered_at timestamptz not null,
    cleared_at timestamptz,
    evidence jsonb not null,
    cleared_evidence jsonb
);
create unique index alerts_one_active on alerts (rule_id, trader_id, subject) where status = 'active';
create index alerts_broker_time on alerts (broker_id, triggered_at desc)
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
