"""Market history: daily bars per symbol and source, and the ranges each source has been asked for.

Market data, not tenant data: no broker_id, so no row-level security. The app role reads and writes it
through the history repository (insert and update for the upsert; no delete, no truncate). The platform
role gets nothing: no admin or cross-tenant job needs it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

from alembic import context, op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# open/high/low are null where the source does not know them (a reference-rate fix is one price a day).
SCHEMA = """
create table market_daily_bars (
    symbol text not null check (symbol ~ '^[A-Z0-9]{2,16}$'),
    day date not null,
    source text not null check (length(source) between 1 and 64),
    open double precision check (open > 0),
    high double precision check (high > 0),
    low double precision check (low > 0),
    close double precision not null check (close > 0),
    fetched_at timestamptz not null default now(),
    primary key (symbol, source, day),
    check (high is null or low is null or low <= high)
);
create table market_history_coverage (
    symbol text not null,
    source text not null,
    first_day date not null,
    last_day date not null,
    fetched_at timestamptz not null default now(),
    primary key (symbol, source),
    check (first_day <= last_day)
)
"""


def upgrade() -> None:
    app_role = context.config.attributes.get("app_role", "forexrisk_app")
    op.execute("set local lock_timeout = '5s'")
    for statement in SCHEMA.split(";\n"):
        if statement.strip():
            op.execute(statement)
    op.execute(f"""
do $$
begin
    if exists (select 1 from pg_roles where rolname = '{app_role}') then
        grant select, insert, update on market_daily_bars, market_history_coverage to {app_role};
    end if;
end $$;
""")


def downgrade() -> None:
    op.execute("drop table market_history_coverage, market_daily_bars")
