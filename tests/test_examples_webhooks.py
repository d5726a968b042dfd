"""examples/webhooks.py, the README's issue-17 walkthrough scripts: events signed by its `signed` are accepted,
and its receiver verifies a real alert.triggered delivery (and refuses one signed with another secret)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from examples.webhooks import example_events, receiver, signed
from tests.conftest import BrokerFixture
from tests.helpers_platform import inbound_secret

pytestmark = pytest.mark.usefixtures("no_server_errors")


@contextmanager
def running(secret: str) -> Iterator[tuple[str, list[dict[str, Any]], threading.Condition]]:
    got: list[dict[str, Any]] = []
    arrived = threading.Condition()

    def on_message(message: dict[str, Any], headers: dict[str, str]) -> None:
        with arrived:
            got.append(message)
            arrived.notify_all()

    server = receiver(secret, 0, on_message)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", got, arrived
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def post(client: TestClient, broker: BrokerFixture, secret: str, events: list[dict[str, Any]]) -> dict[str, Any]:
    body = json.dumps({"events": events})
    resp = client.post(f"/api/v1/integrations/events?broker={broker.id}", content=body,
                       headers={**signed(secret, body), "authorization": ""})
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def test_the_walkthrough_scripts_end_to_end(client: TestClient, broker_a: BrokerFixture) -> None:
    inbound = inbound_secret(client, broker_a)
    # An endpoint whose secret the example receiver does not hold: its deliveries are refused (400), not printed.
    with running("whsec_" + "A" * 43 + "=") as (wrong_url, wrong_got, _):
        client.post(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints", headers=broker_a.auth,
                    json={"url": wrong_url, "eventTypes": ["alert.triggered"]}).raise_for_status()
        endpoint = client.post(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints", headers=broker_a.auth,
                               json={"url": "http://127.0.0.1:9/placeholder", "eventTypes": ["alert.triggered"]})
        assert endpoint.status_code == 201, endpoint.text
        with running(endpoint.json()["secret"]) as (url, got, arrived):
            patched = client.patch(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint.json()['id']}",
                                   headers=broker_a.auth, json={"url": url})
            assert patched.status_code == 200, patched.text
            client.post(f"/api/v1/brokers/{broker_a.id}/alert-rules", headers=broker_a.auth,
                        json={"kind": "risk-per-trade", "threshold": 5}).raise_for_status()
            answer = post(client, broker_a, inbound, example_events(trader="ex-1"))
            assert [item["status"] for item in answer["results"]] == ["applied", "applied"], answer
            with arrived:
                assert arrived.wait_for(lambda: len(got) >= 1, 60), got  # a hang guard, not a speed check
    [message] = got
    assert message["type"] == "alert.triggered"
    assert message["data"]["traderId"] == "ex-1"
    assert message["data"]["value"] == pytest.approx(100_000 * 0.01 / 9_950 * 100)  # 1,000 USD of 9,950 equity
    assert wrong_got == []
    deliveries = client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{endpoint.json()['id']}/deliveries",
                            headers=broker_a.auth).json()
    assert [d["status"] for d in deliveries if d["eventType"] == "alert.triggered"] == ["delivered"], deliveries
