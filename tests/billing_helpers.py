"""Billing test helpers: the local Stripe server, apps that use it, signed event delivery.

The apps here share the session's embedded Postgres and Redis (same data_dir) with the suite's own app;
each gets `stripe_api_base` pointing at one local Stripe server (app/billing/localserver) for the module.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import stripe
from fastapi.testclient import TestClient
from httpx import Response

from app.billing.gateway import LOCAL_API_KEY
from app.billing.webhooks import LOCAL_WEBHOOK_SECRET

WEBHOOK = "/api/v1/billing/webhooks/stripe"


class Clock:
    """A controllable clock for the billing service and its jobs."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def sign(payload: bytes, secret: str = LOCAL_WEBHOOK_SECRET, t: int | None = None) -> str:
    t = int(time.time()) if t is None else t
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def deliver(client: TestClient, event: dict[str, Any], *, secret: str = LOCAL_WEBHOOK_SECRET,
            t: int | None = None, body: bytes | None = None) -> Response:
    payload = orjson.dumps(event)
    return client.post(WEBHOOK, content=body if body is not None else payload,
                       headers={"Stripe-Signature": sign(payload, secret, t), "Content-Type": "application/json",
                                "Authorization": ""})


def thin_event(type_: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    """An event as Stripe sends it; the app reads only the object's id and type and fetches the rest."""
    import uuid

    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "object": "event", "type": type_,
            "created": int(time.time()), "api_version": stripe.api_version, "livemode": False,
            "data": {"object": obj}}


def stripe_client(url: str) -> stripe.StripeClient:
    return stripe.StripeClient(LOCAL_API_KEY, base_addresses={"api": url})


def helper(url: str, path: str, data: dict[str, str] | None = None) -> dict[str, Any]:
    """A /_double/... helper of the local server (what a customer or Stripe's clock would do)."""
    resp = httpx.post(f"{url}{path}", data=data or {}, headers={"Authorization": f"Bearer {LOCAL_API_KEY}"},
                      timeout=30)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def events_of(url: str, type_: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/v1/events", headers={"Authorization": f"Bearer {LOCAL_API_KEY}"}, timeout=30)
    return [e for e in resp.json()["data"] if e["type"] == type_]
