"""Inbound platform events (issue 17, point 1) and the account state they keep (point 2)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.conftest import BrokerFixture
from tests.helpers_auth import NO_AUTH, assert_problem
from tests.helpers_platform import (
    account,
    event,
    inbound_secret,
    later,
    position,
    post_events,
    signed_headers,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")


def book(client: TestClient, broker: BrokerFixture, trader: str) -> dict[str, object]:
    resp = client.get(f"/api/v1/brokers/{broker.id}/accounts/{trader}", headers=broker.auth)
    assert resp.status_code == 200, resp.text
    out: dict[str, object] = resp.json()
    return out


def test_secret_is_shown_once_and_reported_as_set(client: TestClient, broker_a: BrokerFixture) -> None:
    info = client.get(f"/api/v1/brokers/{broker_a.id}/platform-events/secret", headers=broker_a.auth)
    assert info.json() == {"configured": False, "rotatedAt": None, "previousValidUntil": None}
    secret = inbound_secret(client, broker_a)
    assert secret.startswith("whsec_")
    info = client.get(f"/api/v1/brokers/{broker_a.id}/platform-events/secret", headers=broker_a.auth).json()
    assert info["configured"] is True and "secret" not in info


def test_events_update_the_account_and_its_positions(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    resp = post_events(client, broker_a, secret, [
        account("t-1", balance=10_000, equity=9_950, free_margin=9_000),
        position("opened", "t-1", "p1", stop=1.09, tp=1.12),
        position("opened", "t-1", "p2", symbol="USDJPY", side="sell", lots=0.5, open_price=150.0, stop=151.0),
    ])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["replay"] is False and body["applied"] == 3 and body["refused"] == 0
    assert [r["status"] for r in body["results"]] == ["applied"] * 3
    state = book(client, broker_a, "t-1")
    assert state["currency"] == "USD" and state["balance"] == 10_000 and state["equity"] == 9_950
    assert state["freeMargin"] == 9_000 and state["margin"] == 950
    positions = {p["positionId"]: p for p in state["positions"]}  # type: ignore[attr-defined]
    assert positions["p1"]["stopLoss"] == 1.09 and positions["p1"]["takeProfit"] == 1.12
    assert positions["p2"]["side"] == "short" and positions["p2"]["symbol"] == "USDJPY"
    resp = post_events(client, broker_a, secret, [position("closed", "t-1", "p1", at=later(5))])
    assert resp.json()["applied"] == 1
    assert [p["positionId"] for p in book(client, broker_a, "t-1")["positions"]] == ["p2"]  # type: ignore[attr-defined]


def test_replayed_message_and_repeated_events_change_nothing(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    first = [account("t-2", balance=5_000, equity=5_000, free_margin=5_000), position("opened", "t-2", "p1")]
    body = orjson.dumps({"events": first})
    headers = signed_headers(secret, body, "msg_replayed")
    ok = client.post(f"/api/v1/integrations/events?broker={broker_a.id}", content=body, headers=headers)
    assert ok.json()["applied"] == 2
    before = book(client, broker_a, "t-2")
    # The same message again (same webhook-id and signature): a no-op that still answers 200.
    again = client.post(f"/api/v1/integrations/events?broker={broker_a.id}", content=body, headers=headers)
    assert again.status_code == 200
    assert again.json()["replay"] is True and again.json()["applied"] == 0
    # The same event ids in a new message: duplicates, even with other figures inside.
    changed = [{**first[0], "data": {**first[0]["data"], "balance": 1}}, {**first[1], "type": "position.closed"}]
    dup = post_events(client, broker_a, secret, changed)
    assert [r["status"] for r in dup.json()["results"]] == ["duplicate", "duplicate"]
    assert book(client, broker_a, "t-2") == before


def test_out_of_order_events_end_in_the_right_book(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    # Sent newest first: the close of p1, a stop moved on p2, p2's open, p1's open, then two account updates.
    sent = [
        post_events(client, broker_a, secret, [position("closed", "t-3", "p1", at=later(10))]),
        post_events(client, broker_a, secret, [position("opened", "t-3", "p2", at=later(8), stop=1.095)]),
        post_events(client, broker_a, secret, [position("opened", "t-3", "p2", at=later(2), stop=1.08)]),
        post_events(client, broker_a, secret, [position("opened", "t-3", "p1", at=later(1))]),
        post_events(client, broker_a, secret, [account("t-3", balance=2_000, equity=2_000, free_margin=2_000,
                                                       at=later(9))]),
        post_events(client, broker_a, secret, [account("t-3", balance=1_000, equity=1_000, free_margin=1_000,
                                                       at=later(3))]),
        post_events(client, broker_a, secret, [position("closed", "t-3", "p1", at=later(11))]),  # closed already
    ]
    # Each answer says whether its event changed the book or arrived after a newer one (superseded).
    assert [r.json()["results"][0]["status"] for r in sent] == [
        "applied", "applied", "superseded", "superseded", "applied", "superseded", "superseded"]
    assert sent[2].json()["superseded"] == 1 and sent[2].json()["applied"] == 0
    state = book(client, broker_a, "t-3")
    assert [(p["positionId"], p["stopLoss"]) for p in state["positions"]] == [("p2", 1.095)]  # type: ignore[attr-defined]
    assert state["balance"] == 2_000


def test_unknown_type_is_refused_by_index(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    only_bad = post_events(client, broker_a, secret, [event("account.deleted", {"traderId": "t"})])
    body = assert_problem(only_bad, 422, "validation-error")
    assert [e["field"] for e in body["errors"]] == ["events[0].type"]
    mixed = post_events(client, broker_a, secret, [
        account("t-4"), event("trade.exploded", {}), position("opened", "t-4", "p1", stop=1.2)])
    assert mixed.status_code == 200
    results = mixed.json()["results"]
    assert [r["status"] for r in results] == ["applied", "refused", "refused"]
    assert results[1]["errors"][0]["field"] == "events[1].type"
    assert results[2]["errors"][0]["field"] == "events[2].data"  # a long stop above the open price


def test_at_most_500_events(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    ok = post_events(client, broker_a, secret, [account(f"t-{i}") for i in range(500)])
    assert ok.status_code == 200 and ok.json()["applied"] == 500
    too_many = post_events(client, broker_a, secret, [account(f"t-{i}") for i in range(501)])
    assert assert_problem(too_many, 422)["errors"][0]["field"] == "events"


@pytest.mark.parametrize("signature", ["v1", "v1,", "v1,***", "v1,AAAA v2", ",", " ", "v1a,AAAA", "v1,QUJD"])
def test_malformed_or_wrong_signature_is_401(client: TestClient, broker_a: BrokerFixture, signature: str) -> None:
    secret = inbound_secret(client, broker_a)
    body = orjson.dumps({"events": [account("t-5")]})
    headers = {**signed_headers(secret, body), "webhook-signature": signature}
    resp = client.post(f"/api/v1/integrations/events?broker={broker_a.id}", content=body, headers=headers)
    assert_problem(resp, 401, "unauthorized")


@pytest.mark.parametrize(("header", "value"), [
    ("webhook-timestamp", b"\xb2"),  # Latin-1 superscript two: str.isdigit() says yes, int() says no
    ("webhook-timestamp", b"999999999999"),  # integer seconds in the year 33658: no datetime has it
    ("webhook-timestamp", b"-1"), ("webhook-timestamp", b"1e9"), ("webhook-timestamp", b""),
    ("webhook-signature", b""), ("webhook-signature", b"v1,\xe9\xe9"), ("webhook-signature", b"v1," + b"A" * 8000),
    ("webhook-signature", b"v1,AAAA v1,BBBB v1,CCCC"), ("webhook-signature", b"v1,AAAA\tv1,BBBB"),
    ("webhook-id", b"\xe9v\xe9nement"), ("webhook-id", b""),
])
def test_odd_signature_headers_are_401_never_500(client: TestClient, broker_a: BrokerFixture, header: str,
                                                 value: bytes) -> None:
    secret = inbound_secret(client, broker_a)
    body = orjson.dumps({"events": [account("t-odd")]})
    headers: dict[str, str | bytes] = {**signed_headers(secret, body), header: value}
    resp = client.post(f"/api/v1/integrations/events?broker={broker_a.id}", content=body, headers=headers)
    assert_problem(resp, 401, "unauthorized")


@pytest.mark.parametrize("stamp", ["\u00b2", "\u0661\u0662\u0663", "999999999999"])
def test_timestamp_parsing_refuses_what_int_or_datetime_cannot_take(stamp: str) -> None:
    """Checked on the parser itself: the test client re-encodes a Latin-1 header byte as UTF-8 on the way in, so
    "²" (byte 0xB2, what uvicorn hands over) cannot be sent through it."""
    from app.errors import Unauthorized
    from app.integrations.platform_events.signature import new_secret, verify

    headers = {"webhook-id": "msg_1", "webhook-timestamp": stamp, "webhook-signature": "v1,QUJD"}
    with pytest.raises(Unauthorized):
        verify([new_secret()], headers, b"{}", datetime.now(UTC))


def test_several_signatures_pass_when_one_matches(client: TestClient, broker_a: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    body = orjson.dumps({"events": [account("t-many")]})
    good = signed_headers(secret, body)
    headers = {**good, "webhook-signature": f"v1a,QUJD v1,QUJD {good['webhook-signature']} v2,x"}
    resp = client.post(f"/api/v1/integrations/events?broker={broker_a.id}", content=body, headers=headers)
    assert resp.status_code == 200 and resp.json()["applied"] == 1, resp.text


def test_every_other_refusal_is_401(client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture) -> None:
    secret = inbound_secret(client, broker_a)
    other = inbound_secret(client, broker_b)
    body = orjson.dumps({"events": [account("t-6")]})
    url = f"/api/v1/integrations/events?broker={broker_a.id}"
    good = signed_headers(secret, body)
    cases = {
        "no headers": {**NO_AUTH},
        "no signature": {k: v for k, v in good.items() if k != "webhook-signature"},
        "too old": signed_headers(secret, body, at=datetime.now(UTC) - timedelta(minutes=10)),
        "too new": signed_headers(secret, body, at=datetime.now(UTC) + timedelta(minutes=10)),
        "bad timestamp": {**good, "webhook-timestamp": "12.5"},
        "other broker's secret": signed_headers(other, body),
        "body changed": good,
    }
    for name, headers in cases.items():
        sent = body + b" " if name == "body changed" else body
        resp = client.post(url, content=sent, headers=headers)
        assert resp.status_code == 401, (name, resp.text)
    for target in (f"?broker={uuid.uuid4()}", "", "?broker=not-a-uuid"):
        resp = client.post(f"/api/v1/integrations/events{target}", content=body, headers=good)
        assert resp.status_code in (401, 422), (target, resp.text)
        assert resp.status_code == 401 or target == "?broker=not-a-uuid"
    assert client.get(f"/api/v1/brokers/{broker_a.id}/accounts/t-6", headers=broker_a.auth).status_code == 404


def test_rotation_keeps_the_previous_secret_for_the_overlap(client: TestClient, broker_a: BrokerFixture) -> None:
    old = inbound_secret(client, broker_a)
    new = inbound_secret(client, broker_a, overlapHours=1)
    assert post_events(client, broker_a, old, [account("t-7")]).status_code == 200
    assert post_events(client, broker_a, new, [account("t-7", at=later(1))]).status_code == 200
    newest = inbound_secret(client, broker_a, overlapHours=0)
    assert post_events(client, broker_a, new, [account("t-7", at=later(2))]).status_code == 401
    assert post_events(client, broker_a, newest, [account("t-7", at=later(3))]).status_code == 200


def test_accounts_are_per_tenant(client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture) -> None:
    secret_a = inbound_secret(client, broker_a)
    secret_b = inbound_secret(client, broker_b)
    post_events(client, broker_a, secret_a, [account("shared", balance=111)])
    post_events(client, broker_b, secret_b, [account("shared", balance=222)])
    assert book(client, broker_a, "shared")["balance"] == 111
    assert book(client, broker_b, "shared")["balance"] == 222
    # B asking for A's accounts, A's secret or rotating it: not found, like a broker that does not exist.
    for path in (f"/api/v1/brokers/{broker_a.id}/accounts/shared",
                 f"/api/v1/brokers/{broker_a.id}/platform-events/secret"):
        assert_problem(client.get(path, headers=broker_b.auth), 404, "not-found")
    resp = client.post(f"/api/v1/brokers/{broker_a.id}/platform-events/secret", headers=broker_b.auth)
    assert_problem(resp, 404, "not-found")


def test_a_superseded_event_queues_no_alert_evaluation(client: TestClient, broker_a: BrokerFixture) -> None:
    """Only a message that changed a book leaves its traders to evaluate (the evaluate job, the sweeper)."""
    from tests.test_webhooks_reliability import message_row

    secret = inbound_secret(client, broker_a)
    newer, older = f"msg_{uuid.uuid4().hex}", f"msg_{uuid.uuid4().hex}"
    post_events(client, broker_a, secret, [account("t-9", at=later(5))], msg_id=newer)
    late = post_events(client, broker_a, secret, [account("t-9", balance=1, at=later(1))], msg_id=older)
    assert late.json()["results"][0]["status"] == "superseded"
    assert list(message_row(client, broker_a, newer).traders) == ["t-9"]
    assert list(message_row(client, broker_a, older).traders) == []
