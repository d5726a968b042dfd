"""Usage analytics (issue 15): what the ClickHouse shipper reads from Postgres, the source of truth.

- `calculations` gains real columns for what analytics and billing query: units charged, latency,
  instrument, account currency, risk %. Rows stored before this migration keep nulls (and 1 unit).
- `usage_events`: a small outbox for events Postgres stores nowhere else (widget loads, calculations
  that ended in an error after admission, exports). Tenant table: forced RLS like every other.
- Each source table (calculations, audit_logs, usage_events) gets `xid xid8`, the id of the
  transaction that wrote the row (`pg_current_xact_id()`), and an index on (xid, id). The shipper
  reads rows with xid below the oldest transaction still running (`pg_snapshot_xmin`): every such
  transaction has ended, so no row can appear later below that mark, and a watermark over (xid, id)
  never skips a row that committed late (a timestamp or sequence watermark would).
- `analytics_cursors`: the watermark per source, platform only (no broker_id: no tenant data in it).

Revision ID: 20261203_analytics
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

revision = "20261203_analytics"
down_revision = "0007"
branch_labels = None
depends_on = None

CURRENT = "NULLIF(current_setting('app.current_broker_id', true), '')::uuid"

SCHEMA = """
alter table calculations
    add column units integer not null default 1 check (units >= 0),
    add column latency_ms real check (latency_ms >= 0),
    add column instrument text check (length(instrument) <= 32),
    add column account_currency text check (length(account_currency) <= 8),
    add column risk_pct double precision,
    add column xid xid8 not null default pg_current_xact_id();
create index calculations_xid on calculations (xid, id);
alter table audit_logs add column xid xid8 not null default pg_current_xact_id();
create index audit_logs_xid on audit_logs (xid, id);
create table usage_events (
    id uuid primary key default gen_random_uuid(),
    broker_id uuid not null references brokers (id) on delete cascade,
    event_type text not null check (event_type in ('widget_load', 'calculation', 'export')),
    user_id uuid,
    api_key_id uuid,
    endpoint text check (length(endpoint) <= 64),
    status smallint,
    latency_ms real check (latency_ms >= 0),
    units integer not null default 0 check (units >= 0),
    instrument text check (length(instrument) <= 32),
    account_currency text check (length(account_currency) <= 8),
    risk_pct double precision,
    created_at timestamptz not null default now(),
    xid xid8 not null default pg_current_xact_id()
);
create index usage_events_xid on usage_events (xid, id);
create index usage_events_broker_created on usage_events (broker_id, created_at desc);
create table analytics_cursors (
    source text primary key,
    upper_xid xid8 not null default '0',
    last_xid xid8 not null default '0',
    last_id uuid not null default '00000000-0000-0000-0000-000000000000',
    shipped bigint not null default 0,
    updated_at timestamptz not null default now()
);
insert into analytics_cursors (source) values ('calculations'), ('audit_logs'), ('usage_events')
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute("alter table usage_events enable row level security")
    op.execute("alter table usage_events force row level security")
    op.execute(f"create policy tenant_isolation on usage_events "
               f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        -- written on the request path (widget loads, failed calculations), read for billing; no update
        grant select, insert, delete on usage_events to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        -- the shipper reads every tenant's rows and moves its own watermark
        grant select, insert, delete on usage_events to {platform_role};
        grant select, insert, update on analytics_cursors to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table analytics_cursors, usage_events")
    op.execute("drop index audit_logs_xid")
    op.execute("alter table audit_logs drop column xid")
    op.execute("drop index calculations_xid")
    op.execute("alter table calculations drop column units, drop column latency_ms, drop column instrument, "
               "drop column account_currency, drop column risk_pct, drop column xid")
