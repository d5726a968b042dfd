"""Compliance reports: one row per requested report (period, status, files), tenant data under forced RLS.

The API inserts the row and enqueues its job; the job (app.reports.tasks, the app role in the broker's
tenant session) moves it through running to complete or failed and records the stored files. No DELETE
for the app role: a report is a record of what was handed to a regulator.

Revision ID: 20261203_compliance_reports
Revises: 20261203_audit_privacy
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

revision = "20261203_compliance_reports"
down_revision = "20261203_audit_privacy"
branch_labels = None
depends_on = None

CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"

SCHEMA = """
create table compliance_reports (
    id uuid primary key,
    broker_id uuid not null references brokers (id) on delete cascade,
    period_start date not null,
    period_end date not null,
    status text not null default 'queued' check (status in ('queued', 'running', 'complete', 'failed')),
    job_id text not null,
    requested_by_type text not null,
    requested_by text,
    summary jsonb not null default '{}',
    files jsonb not null default '{}',
    error text,
    created_at timestamptz not null default now(),
    started_at timestamptz,
    finished_at timestamptz,
    check (period_end >= period_start)
);
create index compliance_reports_broker_created on compliance_reports (broker_id, created_at desc)
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute("alter table compliance_reports enable row level security")
    op.execute("alter table compliance_reports force row level security")
    op.execute(f"create policy tenant_isolation on compliance_reports "
               f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant select, insert, update on compliance_reports to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        grant select on compliance_reports to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table compliance_reports")
