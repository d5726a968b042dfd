"""The embedded widget in Chromium: time to `ready` and bytes on the wire, first and repeat load.

    uv run python -m bench.widget_bench            # 7 loads of each kind
    uv run python -m bench.widget_bench --runs 15

A broker page on http://localhost:A embeds the widget from the API on http://127.0.0.1:B (one uvicorn
worker, the same `bench.apps:app` as the HTTP benchmark), as in tests/test_widget_browser.py. Each run
opens a fresh browser context (empty cache) and loads the page twice: the first load, then a repeat
load with the cache warm. Time to ready: from navigation start to the widget's `ready` event, read in
the host page (`performance.now()`). Bytes: headers plus encoded body of every response from the API's
origin, from Chromium's network log (Playwright's `request.sizes()`). Needs Debian's `chromium`.
Prints a Markdown table and writes bench/results/widget-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.server import ROOT, _wait_healthy, free_port, stop

PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>host</title></head><body>
<script>window.fxrReady = null;
document.addEventListener('forexrisk:ready', () => { window.fxrReady = window.fxrReady || performance.now(); }, true);
</script><script src="{api}/widget.js" data-key="{key}" async></script>
<div id="risk-calculator" data-broker="{slug}"></div></body></html>"""


def provision(data_dir: Path, origin: str) -> tuple[str, str]:
    import asyncio

    from app.admin.brokers.schemas import BrokerConfig, BrokerCreate
    from app.admin.provisioning import new_broker
    from app.config import Settings

    settings = Settings(data_dir=data_dir, demo_broker=False)
    config = BrokerConfig.model_validate({"allowedOrigins": [origin], "maxLeverage": 30})
    out = asyncio.run(new_broker(settings, BrokerCreate(name="Bench", slug="bench-widget", tier="enterprise",
                                                        config=config)))  # type: ignore[call-arg]
    return "bench-widget", str(out["publishableKey"])


def measure(page: Any, host: str, api: str) -> dict[str, float]:
    sizes: list[int] = []

    def done(req: Any) -> None:
        if req.url.startswith(api):
            s = req.sizes()
            sizes.append(s["responseBodySize"] + s["responseHeadersSize"])

    page.on("requestfinished", done)
    page.goto(host + "/")
    page.wait_for_function("window.fxrReady !== null", timeout=30_000)
    page.wait_for_timeout(200)  # requests finishing after ready (none expected) are counted too
    page.remove_listener("requestfinished", done)
    return {"ms": float(page.evaluate("window.fxrReady")), "bytes": float(sum(sizes)),
            "requests": float(sum(1 for n in sizes if n))}  # a cache hit costs no bytes: not a request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from tests.test_widget_browser import CHROMIUM
    if CHROMIUM is None:
        sys.exit("needs Debian's chromium")
    port, host_port = free_port(), free_port()
    api, host = f"http://127.0.0.1:{port}", f"http://localhost:{host_port}"
    with tempfile.TemporaryDirectory(prefix="bench-widget-") as tmp:
        Path(tmp).chmod(0o755)
        data_dir = Path(tmp) / "data"
        slug, key = provision(data_dir, host)
        host_server = serve_on(host_port, PAGE.replace("{api}", api).replace("{key}", key).replace("{slug}", slug))
        env = {**os.environ, "FOREXRISK_DATA_DIR": str(data_dir), "FOREXRISK_DEMO_BROKER": "false"}
        command = [sys.executable, "-m", "uvicorn", "bench.apps:app", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", "1", "--no-access-log", "--log-level", "warning"]
        log = Path(tmp) / "server.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        results: dict[str, list[dict[str, float]]] = {"first": [], "repeat": []}
        try:
            _wait_healthy(proc, port, log)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
                measure(browser.new_page(), host, api)  # warm-up: imports, first Postgres connections
                for _ in range(args.runs):
                    context = browser.new_context()
                    page = context.new_page()
                    results["first"].append(measure(page, host, api))
                    results["repeat"].append(measure(page, host, api))
                    context.close()
                browser.close()
        finally:
            stop(proc, timeout=10)
            host_server.shutdown()
    print(f"| load ({args.runs} runs) | median time to ready | max | bytes on the wire | requests |")
    print("|---|---|---|---|---|")
    for kind, runs in results.items():
        ms = [r["ms"] for r in runs]
        wire, count = statistics.median(r["bytes"] for r in runs), statistics.median(r["requests"] for r in runs)
        print(f"| {kind} | {statistics.median(ms):.0f} ms | {max(ms):.0f} ms | {wire:,.0f} B | {count:.0f} |")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "widget-latest.json").write_text(json.dumps(results, indent=1))


def serve_on(port: int, page: str) -> ThreadingHTTPServer:
    body = page.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    main()
