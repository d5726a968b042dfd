"""`forexrisk` console script."""

from __future__ import annotations

import argparse
import json
import sys

from app.calculations.schemas import POSITION_SIZE_EXAMPLE


def example_request(base_url: str) -> str:
    body = json.dumps(POSITION_SIZE_EXAMPLE)
    return (f"curl -s -X POST {base_url}/api/v1/calculate/position-size \\\n"
            f"     -H 'Content-Type: application/json' \\\n     -d '{body}'")


def cmd_run(args: argparse.Namespace) -> int:
    import uvicorn

    base = f"http://{args.host}:{args.port}"
    print(f"ForexRisk API on {base}  (docs: {base}/docs)")
    print("Example request (10,000 USD, 2 %, EURUSD 1.1850 -> 1.1820, 30:1 -> 0.66 lots):")
    print(example_request(base), flush=True)
    uvicorn.run("app.main:app", host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.access_log, loop="uvloop", http="httptools", workers=args.workers)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forexrisk", description="ForexRisk risk-calculation API")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="serve the API")
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8000)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.add_argument("--access-log", action="store_true", help="log every request (costs ~25 us per request)")
    run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
