"""Posting signed platform events (Standard Webhooks, signed with the `standardwebhooks` library)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from fastapi.testclient import TestClient
from httpx import Response
from standardwebhooks import Webhook

from tests.conftest import BrokerFixture
from tests.helpers_auth import NO_AUTH

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def inbound_secret(client: TestClient, broker: BrokerFixture, **body: Any) -> str:
    resp = client.post(f"/api/v1/brokers/{broker.id}/platform-events/secret", json=body or None,
                       headers=broker.auth)
    assert resp.status_code == 201, resp.text
    secret: str = resp.json()["secret"]
    return secret


def signed_headers(secret: str, body: bytes, msg_id: str | None = None, at: datetime | None = None) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(UTC)
    return {**NO_AUTH, "webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode()),
            "content-type": "application/json"}


def post_events(client: TestClient, broker: BrokerFixture, secret: str, events: list[dict[str, Any]],
                msg_id: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body = orjson.dumps({"events": events})
    return client.post(f"/api/v1/integrations/events?broker={broker.id}", content=body,
                       headers=headers or signed_headers(secret, body, msg_id))


def event(type_: str, data: dict[str, Any], at: datetime = T0, event_id: str | None = None) -> dict[str, Any]:
    return {"id": event_id or f"evt_{uuid.uuid4().hex}", "type": type_, "timestamp": at.isoformat(), "data": data}


def account(trader: str, balance: float = 10_000, equity: float = 10_000, free_margin: float = 9_000,
            currency: str = "USD", at: datetime = T0, **extra: Any) -> dict[str, Any]:
    return event("account.updated", {"traderId": trader, "currency": currency, "balance": balance, "equity": equity,
                                     "freeMargin": free_margin, **extra}, at)


def position(kind: str, trader: str, pid: str, at: datetime = T0, symbol: str = "EURUSD", side: str = "long",
             lots: float = 1.0, open_price: float = 1.10, stop: float | None = 1.09, tp: float | None = None,
             event_id: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"traderId": trader, "positionId": pid, "symbol": symbol, "side": side, "lots": lots,
                            "openPrice": open_price}
    if stop is not None:
        data["stopLoss"] = stop
    if tp is not None:
        data["takeProfit"] = tp
    return event(f"position.{kind}", data, at, event_id)


def later(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)
