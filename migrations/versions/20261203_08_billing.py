"""Billing (issue 16): each broker's billing account (forced RLS), Stripe events received once, daily usage
reported to Stripe (forced RLS), and a `pending` broker status for sign-ups awaiting email verification.

Revision ID: 20261203_billing
Revises: 17e_webhooks_scope
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

revision = "20261203_billing"
down_revision = "17e_webhooks_scope"
branch_labels = None
depends_on = None

CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"

# status: trialing (the sign-up's free trial), free (no paid plan), active / past_due (a Stripe subscription),
# enterprise (set by the platform operator). paid_tier is what the subscription pays for; brokers.tier is what
# is enforced (paid_tier, or free once a grace period ran out).
# stripe_object_created / stripe_status_at: the subscription state applied last and when (monotonic guard).
SCHEMA = """
create table billing_accounts (
    broker_id uuid primary key references brokers (id) on delete cascade,
    stripe_customer_id text unique,
    status text not null default 'trialing'
        check (status in ('trialing', 'free', 'active', 'past_due', 'enterprise')),
    paid_tier text check (paid_tier in ('standard', 'professional', 'enterprise')),
    subscription_id text,
    subscription_status text,
    price_id text,
    current_period_end timestamptz,
    trial_ends_at timestamptz,
    cancel_at_period_end boolean not null default false,
    past_due_since timestamptz,
    grace_ends_at timestamptz,
    trial_notice_sent_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index billing_accounts_trial on billing_accounts (trial_ends_at) where status = 'trialing';
create index billing_accounts_grace on billing_accounts (grace_ends_at) where status = 'past_due';
create table billing_usage_reports (
    broker_id uuid not null references brokers (id) on delete cascade,
    day date not null,
    units bigint not null check (units >= 0),
    identifier text not null unique,
    reported_at timestamptz not null default now(),
    primary key (broker_id, day)
);
create table stripe_events (
    id text primary key check (id ~ '^evt_[A-Za-z0-9_]{1,250}$'),
    type text not null,
    created bigint not null,
    object_type text,
    object_id text,
    received_at timestamptz not null default now(),
    processed_at timestamptz,
    outcome text
)
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute("alter table brokers drop constraint brokers_status_check")
    op.execute("alter table brokers add constraint brokers_status_check "
               "check (status in ('active', 'suspended', 'deleted', 'pending'))")
    for table in ("billing_accounts", "billing_usage_reports"):
        op.execute(f"alter table {table} enable row level security")
        op.execute(f"alter table {table} force row level security")
        op.execute(f"create policy tenant_isolation on {table} "
                   f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    # The app role reads its own billing account (RLS); changes come from webhooks and jobs, which run on
    # the platform role (they find the broker from Stripe's customer id, before any tenant is known).
    # stripe_events has no tenant: platform role only.
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant select on billing_accounts, billing_usage_reports to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        grant select, insert, update, delete on billing_accounts, billing_usage_reports, stripe_events
            to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table stripe_events")
    op.execute("drop table billing_usage_reports")
    op.execute("drop table billing_accounts")
    op.execute("update brokers set status = 'suspended' where status = 'pending'")
    op.execute("alter table brokers drop constraint brokers_status_check")
    op.execute("alter table brokers add constraint brokers_status_check "
               "check (status in ('active', 'suspended', 'deleted'))")
