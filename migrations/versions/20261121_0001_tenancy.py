"""Tenancy: brokers, users, API keys, refresh tokens, stored calculations, audit log, SSO; forced RLS.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The tenant of the current transaction; unset or empty gives NULL, and NULL matches no row.
# The sub-select makes it one InitPlan per statement instead of a call per row (keeps index use).
CURRENT = "(select nullif(current_setting('app.current_broker_id', true), '')::uuid)"

TENANT_TABLES = ["users", "api_keys", "refresh_tokens", "calculations", "audit_logs", "sso_connections", "sso_states"]

SCHEMA = """
create table brokers (
    id uuid primary key default gen_random_uuid(),
    slug text not null unique check (slug ~ '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$'),
    name text not null check (length(name) between 1 and 200),
    domains text[] not null default '{}',
    tier text not null default 'free' check (tier in ('free', 'standard', 'professional', 'enterprise')),
    status text not null default 'active' check (status in ('active', 'suspended', 'deleted')),
    is_platform boolean not null default false,
    config jsonb not null default '{}',
    config_version integer not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table users (
    id uuid primary key default gen_random_uuid(),
    broker_id uuid not null references brokers (id) on delete cascade,
    email text not null,
    name text,
    role text not null check (role in ('SUPERADMIN', 'BROKER_ADMIN', 'BROKER_USER', 'END_USER')),
    status text not null default 'active' check (status in ('active', 'disabled')),
    password_hash text,
    totp_secret_enc text,
    totp_enabled boolean not null default false,
    totp_last_step bigint,
    mfa_failures integer not null default 0,
    mfa_locked_until timestamptz,
    recovery_codes jsonb not null default '[]',
    sso_issuer text,
    sso_subject text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    last_login_at timestamptz,
    unique (broker_id, id)
);
create unique index users_broker_email on users (broker_id, lower(email));
create unique index users_broker_sso on users (broker_id, sso_issuer, sso_subject) where sso_subject is not null;

create table api_keys (
    id uuid primary key default gen_random_uuid(),
    broker_id uuid not null references brokers (id) on delete cascade,
    key_id text not null unique,
    kind text not null check (kind in ('secret', 'publishable')),
    mode text not null check (mode in ('live', 'test')),
    scopes text[] not null,
    secret_hash bytea not null,
    -- secret keys only, Fernet-encrypted: verifies end-user tokens a broker's server signs with its key
    signing_secret_enc text,
    prefix text not null,
    last4 varchar(4) not null,
    name text,
    status text not null default 'active' check (status in ('active', 'revoked')),
    expires_at timestamptz,
    created_by uuid,
    rotated_from uuid,
    created_at timestamptz not null default now(),
    revoked_at timestamptz,
    last_used_at timestamptz,
    last_used_ip text
);
create index api_keys_broker on api_keys (broker_id, created_at);

create table refresh_tokens (
    id uuid primary key default gen_random_uuid(),
    broker_id uuid not null,
    user_id uuid not null,
    family_id uuid not null,
    token_hash bytea not null unique,
    issued_at timestamptz not null default now(),
    expires_at timestamptz not null,
    idle_expires_at timestamptz not null,
    used_at timestamptz,
    revoked_at timestamptz,
    successor_hash bytea,
    -- composite key: a token can never point at another tenant's user
    foreign key (broker_id, user_id) references users (broker_id, id) on delete cascade
);
create index refresh_tokens_family on refresh_tokens (broker_id, family_id);

create table calculations (
    id uuid primary key,
    broker_id uuid not null references brokers (id) on delete cascade,
    user_id uuid,
    api_key_id uuid,
    kind text not null,
    input jsonb not null,
    result jsonb not null,
    input_hash text not null,
    created_at timestamptz not null default now()
);
create index calculations_broker_created on calculations (broker_id, created_at desc, id desc);
create index calculations_broker_user on calculations (broker_id, user_id, created_at desc);

create table audit_logs (
    id uuid primary key default gen_random_uuid(),
    broker_id uuid not null references brokers (id) on delete cascade,
    actor_type text not null,
    actor_id text,
    action text not null,
    target_type text,
    target_id text,
    ip text,
    request_id text,
    details jsonb not null default '{}',
    created_at timestamptz not null default clock_timestamp()
);
create index audit_logs_broker_created on audit_logs (broker_id, created_at desc);
create index audit_logs_broker_actor on audit_logs (broker_id, actor_id, created_at desc);
create index audit_logs_broker_target on audit_logs (broker_id, target_id, created_at desc);

create table sso_connections (
    id uuid primary key default gen_random_uuid(),
    broker_id uuid not null unique references brokers (id) on delete cascade,
    issuer text not null,
    client_id text not null,
    client_secret_enc text not null,
    default_role text not null default 'BROKER_USER'
        check (default_role in ('BROKER_ADMIN', 'BROKER_USER', 'END_USER')),
    enabled boolean not null default true,
    created_at timestamptz not null default now()
);

create table sso_states (
    state text primary key,
    broker_id uuid not null references brokers (id) on delete cascade,
    nonce text not null,
    code_verifier text not null,
    redirect_uri text not null,
    created_at timestamptz not null default now()
);
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    # asyncpg prepares each statement, and a prepared statement holds one command.
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    # brokers: a tenant sees its own row only.
    op.execute("alter table brokers enable row level security")
    op.execute("alter table brokers force row level security")
    op.execute(f"create policy tenant_isolation on brokers using (id = {CURRENT}) with check (id = {CURRENT})")
    for table in TENANT_TABLES:
        op.execute(f"alter table {table} enable row level security")
        op.execute(f"alter table {table} force row level security")
        op.execute(f"create policy tenant_isolation on {table} "
                   f"using (broker_id = {CURRENT}) with check (broker_id = {CURRENT})")
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant usage on schema public to {app_role};
        grant select, update on brokers to {app_role};
        grant select, insert, update, delete on users, api_keys, refresh_tokens, calculations,
            sso_connections, sso_states to {app_role};
        -- append-only: no update, no delete, no truncate
        grant select, insert on audit_logs to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        grant usage on schema public to {platform_role};
        grant select, insert, update, delete on brokers, users, api_keys, refresh_tokens, calculations,
            sso_connections, sso_states to {platform_role};
        grant select, insert on audit_logs to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table sso_states, sso_connections, audit_logs, calculations, refresh_tokens, api_keys, users, "
               "brokers")
