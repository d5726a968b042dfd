"""`forexrisk` console script: `run` serves the API; `worker` runs the background jobs; `admin ...` provisions
brokers and operators; `gateway ...` writes gateway config generated from the app's own tables."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
from pathlib import Path
from typing import Any

from app.calculations.schemas import POSITION_SIZE_EXAMPLE
from app.config import Settings
from app.gateway.kong import DEFAULT_UPSTREAM

# EURJPY in a USD account with no entry price and no USDJPY rate: both come from the quote chain.
MARKET_EXAMPLE = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURJPY", "direction": "long",
                  "stopLossPips": 50, "riskPercentage": 1}


def example_request(base_url: str, secret_key: str, example: dict[str, Any] | None = None) -> str:
    body = json.dumps(example or POSITION_SIZE_EXAMPLE)
    return (f"curl -s -X POST {base_url}/api/v1/calculate/position-size \\\n"
            f"     -H 'Authorization: Bearer {secret_key}' \\\n"
            f"     -H 'Content-Type: application/json' \\\n     -d '{body}'")


def local_billing(settings: Settings, base: str) -> Any:
    """Development without STRIPE_API_KEY: start a local Stripe server (localstripe + the double) for this run
    and every worker (STRIPE_API_BASE), delivering its events to this API; stopped when `run` exits. Without
    the dev dependencies, say that billing is unavailable."""
    import os

    if settings.stripe_api_key is not None:
        print("Billing: Stripe (STRIPE_API_KEY)")
        return None
    if settings.stripe_api_base is not None or settings.environment == "production":
        print(f"Billing: {settings.stripe_api_base or 'unavailable: set STRIPE_API_KEY'}")
        return None
    from app.billing.localserver.process import LocalStripe
    from app.billing.webhooks import LOCAL_WEBHOOK_SECRET

    if not LocalStripe.available():
        print("Billing: unavailable (no STRIPE_API_KEY, and localstripe, a dev dependency, is not installed); "
              "billing routes answer 503 billing-unavailable.")
        return None
    server = LocalStripe()
    url = server.start()
    os.environ["STRIPE_API_BASE"] = url  # the workers' Settings read it
    import httpx

    httpx.post(f"{url}/_double/webhook", data={"url": f"{base}/api/v1/billing/webhooks/stripe",
                                               "secret": LOCAL_WEBHOOK_SECRET},
               headers={"Authorization": f"Bearer {server.api_key}"}, timeout=10).raise_for_status()
    print(f"Billing: local Stripe server on {url} (localstripe + the double; README \"Billing\"), "
          f"events delivered to {base}/api/v1/billing/webhooks/stripe")
    return server


def cmd_run(args: argparse.Namespace) -> int:
    settings = Settings()
    base = f"http://{args.host}:{args.port}"
    print(f"ForexRisk API on {base}  (docs: {base}/docs)")
    from app.db.bootstrap import owner_free

    embedded_db = settings.database_url is None and not owner_free(settings)
    where = f"embedded Postgres under {settings.data_dir.resolve()}" if embedded_db else "external Postgres"
    print(f"Database: {where}", flush=True)
    billing = local_billing(settings, base)
    try:
        return _run(args, settings, base, embedded_db)
    finally:
        if billing is not None:
            billing.stop()


def _run(args: argparse.Namespace, settings: Settings, base: str, embedded_db: bool) -> int:
    if embedded_db or settings.redis_url is None:
        from app import keeper

        # This process uses the embedded engines for as long as it runs, so they start once for the demo
        # broker and every worker; when it and its workers are gone (Ctrl-C, a crash), the keeper stops them.
        keeper.join(settings.data_dir, settings.embedded_cleanup)
        try:
            return _serve(args, settings, base, embedded_db)
        finally:
            keeper.leave(settings.data_dir)
    return _serve(args, settings, base, embedded_db)


def market_snapshot(settings: Settings) -> str | None:
    """The dated snapshot's label when the default quote chain falls back to it (never in production)."""
    if settings.environment == "production":
        return None
    if settings.market_data_providers is not None and "snapshot" not in settings.market_data_providers:
        return None
    from app.integrations.market_data.snapshot import SnapshotProvider

    return SnapshotProvider().label


def _serve(args: argparse.Namespace, settings: Settings, base: str, embedded_db: bool) -> int:
    import uvicorn

    from app.admin.provisioning import ensure_demo_broker

    if settings.demo_broker and embedded_db:
        demo = asyncio.run(ensure_demo_broker(settings, base))
        print(f"Demo broker '{demo['slug']}' ({demo['brokerId']})")
        print(f"  secret key:      {demo['secretKey']}")
        print(f"  publishable key: {demo['publishableKey']}")
        if demo.get("adminPassword"):
            print(f"  admin login:     {demo['adminEmail']} / {demo['adminPassword']}")
            print(f"  admin console:   {base.rstrip('/')}/admin/")
        print("Example request (10,000 USD, 2 %, EURUSD 1.1850 -> 1.1820, 30:1 -> 0.66 lots):")
        print(example_request(base, demo["secretKey"]), flush=True)
        snapshot = market_snapshot(settings)
        if snapshot:
            print(f"Market prices: {snapshot}.")
            print("  Rates and entry prices a request leaves out come from it; for live prices push the broker's")
            print("  feed (PUT /api/v1/brokers/{id}/quotes) or configure OANDA/TraderMade (README, Market data).")
            print("Example without rates or entry (EURJPY in a USD account, 1 %, 50 pips):")
            print(example_request(base, demo["secretKey"], MARKET_EXAMPLE), flush=True)
    else:
        print("Create a broker and its keys with: forexrisk admin create-broker --name 'Acme' --tier standard")
    if args.server == "granian":
        # Granian (Rust HTTP, README "Benchmarks"): ~7x lower p99 than uvicorn with the worker saturated,
        # ~12 % fewer requests per second.
        from granian import Granian
        from granian.constants import Interfaces, Loops
        from granian.log import LogLevels

        Granian("app.main:app", address=args.host, port=args.port, interface=Interfaces.ASGI, workers=args.workers,
                loop=Loops.uvloop, log_level=LogLevels(args.log_level), log_access=args.access_log).serve()
        return 0
    uvicorn.run("app.main:app", host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log, loop="uvloop", http="httptools", workers=args.workers)
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """The migration Job (k8s/base/migrate-job.yaml) and the pods' init container (`--wait`)."""
    from app.db.bootstrap import migrate, wait_for_schema

    settings = Settings()
    try:
        if args.wait:
            print(f"schema at {asyncio.run(wait_for_schema(settings, args.timeout))}", flush=True)
        else:
            print(f"migrated to {asyncio.run(migrate(settings))}", flush=True)
    except (ValueError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """The background jobs (app.worker) without HTTP, until SIGTERM or Ctrl-C. It runs the app's own lifespan,
    so the Services are built, and closed, exactly as in the API (embedded engines joined and left likewise);
    only the in-process worker is forced on."""
    settings = Settings().model_copy(update={"jobs_in_process": True})
    if args.metrics_port:
        from prometheus_client import start_http_server

        # Job latency, outcomes, backlog and webhook deliveries happen in this process: Prometheus scrapes it here.
        start_http_server(args.metrics_port, addr=args.metrics_host)
    return asyncio.run(_work(settings, sample_backlog=bool(args.metrics_port)))


async def _work(settings: Settings, sample_backlog: bool = False) -> int:
    from app.main import create_app
    from app.worker.monitor import sample_backlog as backlog_sampler

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        where = "REDIS_URL" if settings.redis_url else f"the embedded Redis under {settings.data_dir.resolve()}"
        print(f"ForexRisk worker: queue {settings.jobs_queue_name!r} on {where}; SIGTERM or Ctrl-C stops it",
              flush=True)
        sampler = asyncio.create_task(backlog_sampler(app.state.services.jobs)) if sample_backlog else None
        await stop.wait()
        if sampler is not None:
            sampler.cancel()
        print("ForexRisk worker: stopping (running jobs get "
              f"{settings.jobs_shutdown_grace_seconds:g} s, then go back to the queue)", flush=True)
    return 0


NO_PASSWORD_ARGS = ("Passwords are never taken on the command line (shell history, `ps`): type it at the prompt, "
                    "or pipe it on stdin.")


def read_password(what: str) -> str:
    """A password from the terminal (asked twice, not echoed) or, when stdin is not a terminal, its first line."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"{what}: ")
    if getpass.getpass(f"{what} (again): ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_create_broker(args: argparse.Namespace) -> int:
    from app.admin.brokers.schemas import BrokerCreate
    from app.admin.provisioning import new_broker
    from app.errors import AppError

    if args.admin_password is not None:
        print(f"error: {NO_PASSWORD_ARGS}", file=sys.stderr)
        return 2
    try:
        password = read_password(f"Password for {args.admin_email}") if args.admin_email else None
        spec = BrokerCreate.model_validate({
            "name": args.name, "tier": args.tier, "slug": args.slug, "domains": args.domain or [],
            "adminEmail": args.admin_email, "adminPassword": password,
            "config": {"allowedOrigins": args.origin or []},
        })
        out = asyncio.run(new_broker(Settings(), spec, force=args.force))
    except ValueError as exc:  # pydantic's ValidationError too
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc.detail} {exc.errors}", file=sys.stderr)
        return 2
    result: dict[str, Any] = {"brokerId": str(out["id"]), "slug": out["slug"], "secretKey": out["secretKey"],
                              "publishableKey": out["publishableKey"]}
    if out.get("adminUserId"):
        result["adminUserId"] = str(out["adminUserId"])
    if args.json:
        print(json.dumps(result))
    else:
        print(f"Broker {out['name']} ({result['slug']}), tier {out['tier']}")
        print(f"  broker id:       {result['brokerId']}")
        print(f"  secret key:      {result['secretKey']}   (shown once; server-side only)")
        print(f"  publishable key: {result['publishableKey']}   (browser widget; allowed origins only)")
    return 0


def cmd_create_superadmin(args: argparse.Namespace) -> int:
    from app.admin.provisioning import new_superadmin

    if args.password is not None:
        print(f"error: {NO_PASSWORD_ARGS}", file=sys.stderr)
        return 2
    try:
        password = read_password(f"Password for {args.email}")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if len(password) < 12:
        print("error: the password needs at least 12 characters", file=sys.stderr)
        return 2
    out = asyncio.run(new_superadmin(Settings(), args.email, password))
    print(json.dumps({k: str(v) for k, v in out.items()}))
    return 0


def cmd_gateway_kong_config(args: argparse.Namespace) -> int:
    from app.gateway.kong import check_upstream, render_kong_yaml

    try:
        upstream = check_upstream(args.upstream)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = render_kong_yaml(Settings(), upstream)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def cmd_billing_sync_catalog(args: argparse.Namespace) -> int:
    """Create (or find) the Stripe Products, Prices and Meter for the tiers; print the configuration to set."""
    from app.billing.catalog import sync_catalog
    from app.billing.gateway import StripeGateway

    settings = Settings()
    gateway = StripeGateway.build(settings)
    if gateway is None:
        print("error: set STRIPE_API_KEY (or STRIPE_API_BASE for a local Stripe server)", file=sys.stderr)
        return 2

    async def run() -> dict[str, Any]:
        try:
            return await sync_catalog(gateway, settings)
        finally:
            await gateway.close()

    out = asyncio.run(run())
    print(json.dumps(out, indent=2))
    print(f"Set: FOREXRISK_BILLING_PRICE_IDS='{json.dumps(out['billingPriceIds'])}'", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forexrisk", description="ForexRisk risk-calculation API")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve the API (embedded Postgres unless DATABASE_URL is set)")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--access-log", action="store_true", help="log every request (costs ~25 us per request)")
    run.add_argument("--server", default="uvicorn", choices=["uvicorn", "granian"],
                     help="HTTP server: uvicorn (more requests per second) or granian (lower tail latency under "
                          "saturation); figures in the README's benchmark section")
    run.set_defaults(func=cmd_run)
    worker = sub.add_parser("worker", help="run the background jobs (arq) until SIGTERM; the API runs them itself "
                                           "unless FOREXRISK_JOBS_IN_PROCESS=false (the production default)")
    worker.add_argument("--metrics-port", type=int, default=0,
                        help="serve Prometheus metrics (job latency, outcomes, backlog) on this port; 0: off")
    worker.add_argument("--metrics-host", default="0.0.0.0", help="address of the metrics port (default: %(default)s)")
    worker.set_defaults(func=cmd_worker)

    mig = sub.add_parser("migrate", help="create the roles and migrate to head with DATABASE_URL (the owner role): "
                                        "the production migration Job; --wait: wait for it as the platform role")
    mig.add_argument("--wait", action="store_true", help="only wait until the schema is at this code's head")
    mig.add_argument("--timeout", type=float, default=600.0, help="seconds --wait waits (default: %(default)s)")
    mig.set_defaults(func=cmd_migrate)

    admin = sub.add_parser("admin", help="provision brokers and platform operators")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    cb = admin_sub.add_parser("create-broker", help="create a broker; prints its id and keys")
    cb.add_argument("--name", required=True)
    cb.add_argument("--tier", default="free", choices=["free", "standard", "professional", "enterprise"])
    cb.add_argument("--slug")
    cb.add_argument("--domain", action="append", help="a domain of the broker (repeatable)")
    cb.add_argument("--origin", action="append", help="an allowed origin for the widget (repeatable)")
    cb.add_argument("--admin-email", help="also create a BROKER_ADMIN; its password is asked for (or read from stdin)")
    cb.add_argument("--admin-password", help=argparse.SUPPRESS)  # refused with an explanation
    cb.add_argument("--force", action="store_true", help="create it even when a broker has this name")
    cb.add_argument("--json", action="store_true", help="print {brokerId, slug, secretKey, publishableKey}")
    cb.set_defaults(func=cmd_create_broker)
    sa = admin_sub.add_parser("create-superadmin", help="create a platform operator (SUPERADMIN) user; the password "
                              "is asked for at the terminal or read from stdin (e.g. `< secret-file`)")
    sa.add_argument("--email", required=True)
    sa.add_argument("--password", help=argparse.SUPPRESS)  # refused: the password comes from a prompt or stdin
    sa.set_defaults(func=cmd_create_superadmin)

    gateway = sub.add_parser("gateway", help="gateway config generated from the tier table and settings")
    gateway_sub = gateway.add_subparsers(dest="gateway_command", required=True)
    kc = gateway_sub.add_parser("kong-config", help="Kong (decK 3.0) config: services, routes, tier consumer groups")
    kc.add_argument("--output", help="write to this file instead of stdout (the committed one: k8s/kong/kong.yml)")
    kc.add_argument("--upstream", default=DEFAULT_UPSTREAM, help="URL of the API's Service (default: %(default)s)")
    kc.set_defaults(func=cmd_gateway_kong_config)

    billing = sub.add_parser("billing", help="Stripe billing set-up")
    billing_sub = billing.add_subparsers(dest="billing_command", required=True)
    sc = billing_sub.add_parser("sync-catalog", help="create the tiers' Products, Prices and usage Meter in the "
                                "Stripe account (idempotent); prints FOREXRISK_BILLING_PRICE_IDS to set")
    sc.set_defaults(func=cmd_billing_sync_catalog)

    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
