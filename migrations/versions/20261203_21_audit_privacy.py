"""Audit log: append-only for every login role, with two narrow owner-run paths (retention, erasure).

The app and platform roles may only SELECT and INSERT `audit_logs` (0001 granted no more; the revoke
below states it again so a hand-made grant cannot linger). Two things must still change old entries,
and each goes through one SECURITY DEFINER function owned by the owner role (who runs migrations),
so the login roles get exactly that power and no other:

- `audit_purge_expired(broker, now, limit, dry_run)`: deletes one broker's entries older than
  7 years, in batches; `now` is the caller's clock (a job can be tested with a controllable clock)
  but is capped at the database's own `now()`, so no caller can move the cutoff into the future and
  delete younger entries. Execute: the platform role only (the purge runs across tenants).
- `audit_pseudonymise_subject(user, email, pseudonym, identifiers)`: GDPR erasure. In the caller's
  current tenant only, and only for a user whose row is already marked erased (`users.erased_at`, same
  transaction), it replaces the user's id and email in actor, target and details by the pseudonym
  (other identifiers, such as an SSO subject, where they are a whole top-level value of details) and
  truncates the IPs of the entries the user made (/24, /48). The entries themselves stay. Execute:
  the app role (erasure is a tenant operation).

Why functions and not partition drops: audit_logs is not partitioned and a 7-year window makes a
purge rare and small per run; a batched delete on the (broker_id, created_at) index is enough and
keeps the table's shape (and the other helpers' migrations) untouched.

Revision ID: 20261203_audit_privacy
Revises: 20261203_analytics
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import context, op

revision = "20261203_audit_privacy"
down_revision = "20261203_analytics"
branch_labels = None
depends_on = None

MASK_IP = """
create function audit_mask_ip(p_ip text) returns text
language plpgsql immutable set search_path = pg_catalog as $$
begin
    if p_ip is null then
        return null;
    end if;
    return host(network(set_masklen(p_ip::inet, case family(p_ip::inet) when 4 then 24 else 48 end)));
exception when others then
    return null;  -- not an address (a test client's name): nothing worth keeping
end $$
"""

PURGE = """
create function audit_purge_expired(p_broker_id uuid, p_now timestamptz, p_limit integer, p_dry_run boolean)
returns bigint
language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    cutoff timestamptz := least(p_now, now()) - interval '7 years';
    previous text := current_setting('app.current_broker_id', true);
    n bigint;
begin
    if p_broker_id is null or p_now is null or p_limit is null or p_limit < 1 or p_limit > 100000 then
        raise exception 'audit_purge_expired: broker, now and a limit of 1..100000 are required';
    end if;
    -- The owner is subject to forced RLS unless it is a superuser: scope the statement to the broker.
    perform set_config('app.current_broker_id', p_broker_id::text, true);
    if p_dry_run then
        select count(*) into n from audit_logs where broker_id = p_broker_id and created_at < cutoff;
    else
        with doomed as (
            select id from audit_logs where broker_id = p_broker_id and created_at < cutoff
            order by created_at limit p_limit
        )
        delete from audit_logs a using doomed where a.id = doomed.id;
        get diagnostics n = row_count;
    end if;
    perform set_config('app.current_broker_id', coalesce(previous, ''), true);
    return n;
end $$
"""

PSEUDONYMISE = """
create function audit_pseudonymise_subject(p_user_id uuid, p_email text, p_pseudonym text, p_identifiers text[])
returns bigint
language plpgsql security definer set search_path = pg_catalog, public as $$
declare
    tenant uuid := nullif(current_setting('app.current_broker_id', true), '')::uuid;
    subject text := p_user_id::text;
    -- every character that is not a letter or digit escaped: the email is matched literally
    pattern text := regexp_replace(coalesce(p_email, ''), '([^[:alnum:]])', '\\\\\\1', 'g');
    -- other identifiers of the person (an SSO or broker subject): replaced where they are a whole value
    ids text[] := coalesce(p_identifiers, '{}');
    n bigint;
begin
    if tenant is null then
        raise exception 'audit_pseudonymise_subject: no tenant in this transaction';
    end if;
    if p_email is null or length(p_email) < 3 or p_pseudonym !~ '^erased-[0-9a-f]{16,64}$' then
        raise exception 'audit_pseudonymise_subject: an email and an erased-<hex> pseudonym are required';
    end if;
    if not exists (select 1 from users where id = p_user_id and broker_id = tenant and erased_at is not null) then
        raise exception 'audit_pseudonymise_subject: user % is not erased in this tenant', p_user_id;
    end if;
    update audit_logs set
        ip = case when actor_id = subject then audit_mask_ip(ip) else ip end,
        actor_id = case when actor_id = subject then p_pseudonym else actor_id end,
        target_id = case when target_id = subject then p_pseudonym else target_id end,
        details = replace(regexp_replace(
            (select coalesce(jsonb_object_agg(k, case when jsonb_typeof(v) = 'string' and v #>> '{}' = any(ids)
                                                      then to_jsonb(p_pseudonym) else v end), '{}'::jsonb)
             from jsonb_each(details) as e(k, v))::text,
            pattern, p_pseudonym || '@invalid', 'gi'), subject, p_pseudonym)::jsonb
    where broker_id = tenant
      and (actor_id = subject or target_id = subject
           or position(lower(p_email) in lower(details::text)) > 0
           or position(subject in details::text) > 0
           or exists (select 1 from jsonb_each_text(details) as e(k, v) where e.v = any(ids)));
    get diagnostics n = row_count;
    return n;
end $$
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    platform_role = context.config.attributes.get("platform_role", "forexrisk_platform")
    op.execute("set local lock_timeout = '5s'")
    # When a user was erased (GDPR): the row stays (calculations and audit entries point at its id) with
    # every personal field cleared or pseudonymised; this marks it so it is never mistaken for a live one.
    op.execute("alter table users add column erased_at timestamptz")
    op.execute(MASK_IP)
    op.execute(PURGE)
    op.execute(PSEUDONYMISE)
    # Functions are executable by PUBLIC by default: take that away, then give each to its one role.
    op.execute("revoke all on function audit_purge_expired(uuid, timestamptz, integer, boolean) from public")
    op.execute("revoke all on function audit_pseudonymise_subject(uuid, text, text, text[]) from public")
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        revoke update, delete, truncate on audit_logs from {app_role};
        grant execute on function audit_pseudonymise_subject(uuid, text, text, text[]) to {app_role};
    end if;
    if exists (select 1 from pg_roles where rolname = '{platform_role}') then
        revoke update, delete, truncate on audit_logs from {platform_role};
        grant execute on function audit_purge_expired(uuid, timestamptz, integer, boolean) to {platform_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop function audit_pseudonymise_subject(uuid, text, text, text[])")
    op.execute("drop function audit_purge_expired(uuid, timestamptz, integer, boolean)")
    op.execute("drop function audit_mask_ip(text)")
    op.execute("alter table users drop column erased_at")
