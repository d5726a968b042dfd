"""Postgres: the embedded server, role bootstrap, migrations, engines and the per-transaction tenant."""
