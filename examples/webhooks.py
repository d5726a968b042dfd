"""Both ends of a broker platform's webhooks, as a broker's developer would write them (README, issue 17):

    python3 dev.py python examples/webhooks.py receive --port 8917 --secret whsec_...   # the endpoint's secret
    python3 dev.py python examples/webhooks.py send --broker <id> --secret whsec_...    # the inbound secret

`receive` is an endpoint on 127.0.0.1 that verifies every delivery with the `standardwebhooks` package and prints
it (a bad signature is answered 400 and printed as refused). `send` signs a message of platform events the same
way and posts it to POST /api/v1/integrations/events; without a file it sends the README's example (an account
with 9,950 of equity and 1 lot EURUSD bought at 1.1000 with its stop at 1.0900), stamped now.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


def example_events(trader: str = "t-1", position: str = "p1", stop: float = 1.09) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [
        {"id": f"evt_{uuid.uuid4().hex}", "type": "account.updated", "timestamp": now,
         "data": {"traderId": trader, "currency": "USD", "balance": 10_000, "equity": 9_950, "freeMargin": 9_000}},
        {"id": f"evt_{uuid.uuid4().hex}", "type": "position.opened", "timestamp": now,
         "data": {"traderId": trader, "positionId": position, "symbol": "EURUSD", "side": "buy", "lots": 1,
                  "openPrice": 1.10, "stopLoss": stop, "takeProfit": 1.12}},
    ]


def signed(secret: str, body: str) -> dict[str, str]:
    """The Standard Webhooks headers of one message: a fresh message id, this second, the signature."""
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
    return {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body)}


def send(api: str, broker: str, secret: str, events: list[dict[str, Any]]) -> tuple[int, str]:
    body = json.dumps({"events": events})
    req = urllib.request.Request(f"{api.rstrip('/')}/api/v1/integrations/events?broker={broker}",
                                 data=body.encode(), method="POST", headers=signed(secret, body))
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (the API's URL, given by the user)
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:  # a 4xx problem: show it, it names what is wrong
        return err.code, err.read().decode()


OnMessage = Callable[[dict[str, Any], dict[str, str]], None]


def receiver(secret: str, port: int, on_message: OnMessage) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1 that answers 204 to a delivery whose signature verifies, 400 otherwise."""
    hook = Webhook(secret)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                message: dict[str, Any] = hook.verify(body, headers)
            except WebhookVerificationError as err:
                print(f"refused {headers.get('webhook-id')}: {err}", flush=True)
                self.send_response(400)
            else:
                on_message(message, headers)
                self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's name)
            return

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def _print(message: dict[str, Any], headers: dict[str, str]) -> None:
    print(f"verified {headers['webhook-id']} {message['type']}", flush=True)
    print(json.dumps(message["data"], indent=2), flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rx = sub.add_parser("receive", help="verify and print deliveries")
    rx.add_argument("--port", type=int, default=8917)
    rx.add_argument("--secret", required=True, help="the endpoint's whsec_ secret (shown once at registration)")
    tx = sub.add_parser("send", help="sign and post platform events")
    tx.add_argument("--api", default="http://127.0.0.1:8000")
    tx.add_argument("--broker", required=True, help="the broker's id")
    tx.add_argument("--secret", required=True, help="the broker's inbound whsec_ secret")
    tx.add_argument("--stop", type=float, default=1.09, help="the example position's stop (default 1.0900)")
    tx.add_argument("file", nargs="?", help='a JSON file {"events": [...]} (default: the README example)')
    args = parser.parse_args(argv)
    if args.command == "receive":
        server = receiver(args.secret, args.port, _print)
        print(f"receiving on http://127.0.0.1:{server.server_address[1]}/hooks", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
        return 0
    events = json.load(open(args.file))["events"] if args.file else example_events(stop=args.stop)
    status, text = send(args.api, args.broker, args.secret, events)
    print(status, text)
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
