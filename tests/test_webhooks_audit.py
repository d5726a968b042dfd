"""Issue 17 follow-ups: audit entries for webhook endpoints, secrets, alert rules, redelivery and auto-disable;
the `webhook.endpoint.disabled` notice; the `webhooks:manage` scope."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.models import AuditLog
from tests.conftest import BrokerFixture
from tests.helpers_auth import admin_token, assert_problem, bearer, sql, user_token
from tests.helpers_receiver import receiver
from tests.test_webhooks import _emit_only, own_service, register, run, svc, verified

pytestmark = pytest.mark.usefixtures("no_server_errors")


def audit_entries(client: TestClient, broker: BrokerFixture, prefix: str = "") -> list[AuditLog]:
    async def read() -> list[AuditLog]:
        async with svc(client).db.tenant(broker.id) as session:
            found = await session.execute(select(AuditLog).where(AuditLog.action.startswith(prefix))
                                          .order_by(AuditLog.created_at, AuditLog.id))
            return list(found.scalars())
    out: list[AuditLog] = client.portal.call(read)
    return out


def key_id(client: TestClient, broker: BrokerFixture) -> str:
    keys = client.get(f"/api/v1/brokers/{broker.id}/api-keys", headers=broker.auth).json()
    [secret] = [k for k in keys if k["kind"] == "secret"]
    return str(secret["id"])


def test_endpoint_secret_and_redelivery_changes_are_audited(client: TestClient, broker_a: BrokerFixture) -> None:
    base = f"/api/v1/brokers/{broker_a.id}/webhook-endpoints"
    with receiver(500, 500) as rx:
        endpoint = register(client, broker_a, rx.url)
        patched = client.patch(f"{base}/{endpoint['id']}", json={"eventTypes": ["alert.triggered"]},
                               headers={**broker_a.auth, "X-Request-ID": "req-audit-1"})
        assert patched.status_code == 200, patched.text
        rotated = client.post(f"{base}/{endpoint['id']}/rotate-secret", json={"overlapHours": 2}, headers=broker_a.auth)
        assert rotated.status_code == 200, rotated.text
        [d] = run(client, _emit_only, own_service(client), broker_a.id)
        again = client.post(f"{base}/{endpoint['id']}/deliveries/{d}/redeliver", headers=broker_a.auth)
        assert again.status_code == 202, again.text
        rx.wait_for(1)
    assert client.delete(f"{base}/{endpoint['id']}", headers=broker_a.auth).status_code == 204
    entries = audit_entries(client, broker_a, "webhook_")
    assert [e.action for e in entries] == ["webhook_endpoint.created", "webhook_endpoint.updated",
                                           "webhook_endpoint.secret_rotated", "webhook_delivery.redelivered",
                                           "webhook_endpoint.deleted"]
    actor = key_id(client, broker_a)
    assert all(e.actor_type == "api_key" and e.actor_id == actor for e in entries)
    created, updated, rotated_entry, redelivered, deleted = entries
    assert created.target_id == endpoint["id"] and created.details["secretCreated"] is True
    assert created.details["url"] == rx.url
    assert updated.details == {"eventTypes": {"from": ["alert.triggered", "alert.cleared"], "to": ["alert.triggered"]}}
    assert updated.request_id == "req-audit-1"
    assert rotated_entry.details["previousValidUntil"]
    assert redelivered.details["redeliveryOf"] == str(d) and redelivered.target_id == again.json()["id"]
    assert deleted.details["url"] == rx.url
    # No entry carries a secret.
    for e in entries:
        assert endpoint["secret"] not in str(e.details) and rotated.json()["secret"] not in str(e.details)


def test_inbound_secret_and_rule_changes_are_audited(client: TestClient, broker_a: BrokerFixture) -> None:
    path = f"/api/v1/brokers/{broker_a.id}/platform-events/secret"
    first = client.post(path, headers=broker_a.auth)
    second = client.post(path, json={"overlapHours": 1}, headers=broker_a.auth)
    assert first.status_code == second.status_code == 201
    secrets = audit_entries(client, broker_a, "platform_events.")
    assert [e.action for e in secrets] == ["platform_events.secret_created", "platform_events.secret_rotated"]
    assert secrets[1].details["previousValidUntil"] and first.json()["secret"] not in str(secrets[1].details)
    rules = f"/api/v1/brokers/{broker_a.id}/alert-rules"
    made = client.post(rules, json={"kind": "total-risk", "threshold": 5}, headers=broker_a.auth).json()
    client.patch(f"{rules}/{made['id']}", json={"threshold": 7}, headers=broker_a.auth)
    client.delete(f"{rules}/{made['id']}", headers=broker_a.auth)
    entries = audit_entries(client, broker_a, "alert_rule.")
    assert [e.action for e in entries] == ["alert_rule.created", "alert_rule.updated", "alert_rule.deleted"]
    assert all(e.target_id == made["id"] for e in entries)
    assert entries[0].details["kind"] == "total-risk" and entries[1].details == {"threshold": {"from": 5, "to": 7}}


def test_auto_disable_is_audited_and_notified_to_the_other_subscribed_endpoints(
        client: TestClient, broker_a: BrokerFixture, broker_b: BrokerFixture) -> None:
    service = own_service(client, jobs=svc(client).jobs)  # the notice is queued for the app's worker
    with receiver((410, {})) as gone, receiver() as watcher, receiver() as other, receiver() as b_watcher:
        dying = register(client, broker_a, gone.url, ["alert.triggered", "webhook.endpoint.disabled"])
        listening = register(client, broker_a, watcher.url, ["webhook.endpoint.disabled"])
        register(client, broker_a, other.url, ["alert.cleared"])  # not subscribed to the notice
        register(client, broker_b, b_watcher.url, ["webhook.endpoint.disabled"])  # another tenant
        [d] = run(client, _emit_only, service, broker_a.id)
        out = run(client, service.attempt, broker_a.id, d, 1)
        assert out["status"] == "failed"
        notice = watcher.wait_for(1)[0]
    message = verified(listening["secret"], notice)
    assert message["type"] == "webhook.endpoint.disabled"
    data = message["data"]
    assert data["endpointId"] == dying["id"] and "410" in data["reason"] and data["deliveryId"] == str(d)
    # The disabled endpoint got only its own failed delivery; nobody else got anything.
    log = client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints/{dying['id']}/deliveries",
                     headers=broker_a.auth).json()
    assert [x["eventType"] for x in log] == ["alert.triggered"]
    assert len(gone.requests) == 1 and other.requests == [] and b_watcher.requests == []
    [entry] = audit_entries(client, broker_a, "webhook_endpoint.disabled")
    assert entry.actor_type == "system" and entry.target_id == dying["id"]
    assert "410" in entry.details["reason"] and entry.details["deliveryId"] == str(d)
    assert audit_entries(client, broker_b, "webhook_endpoint.disabled") == []



# --- the webhooks:manage scope -------------------------------------------------------------------------------
def restricted_key(client: TestClient, broker: BrokerFixture, scopes: list[str]) -> dict[str, str]:
    resp = client.post(f"/api/v1/brokers/{broker.id}/api-keys", headers=broker.auth,
                       json={"kind": "secret", "name": "restricted", "scopes": scopes})
    assert resp.status_code == 201, resp.text
    return bearer(resp.json()["key"])


def manage_calls(broker: BrokerFixture) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [("POST", f"/api/v1/brokers/{broker.id}/webhook-endpoints",
             {"url": "http://127.0.0.1:9/x", "eventTypes": ["alert.triggered"]}),
            ("POST", f"/api/v1/brokers/{broker.id}/alert-rules", {"kind": "total-risk", "threshold": 5}),
            ("POST", f"/api/v1/brokers/{broker.id}/platform-events/secret", None)]


def test_managing_webhooks_needs_the_webhooks_manage_scope(client: TestClient, broker_a: BrokerFixture) -> None:
    writer = restricted_key(client, broker_a, ["brokers:write"])  # broker settings: no longer webhooks
    for method, path, body in manage_calls(broker_a):
        body_ = assert_problem(client.request(method, path, json=body, headers=writer), 403, "forbidden")
        assert "webhooks:manage:own" in body_["detail"]
    manager = restricted_key(client, broker_a, ["webhooks:manage"])
    for method, path, body in manage_calls(broker_a):
        assert client.request(method, path, json=body, headers=manager).status_code == 201, path
    # It reads what it manages, and nothing else of the broker.
    assert len(client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints", headers=manager).json()) == 1
    assert client.get(f"/api/v1/brokers/{broker_a.id}/alert-rules", headers=manager).status_code == 200
    assert client.get(f"/api/v1/brokers/{broker_a.id}/platform-events/secret", headers=manager).status_code == 200
    assert_problem(client.get(f"/api/v1/brokers/{broker_a.id}", headers=manager), 403)
    assert_problem(client.get(f"/api/v1/brokers/{broker_a.id}/alerts", headers=manager), 403)


def test_broker_admins_manage_webhooks_by_role_users_do_not(client: TestClient, broker_a: BrokerFixture) -> None:
    admin = bearer(admin_token(client, broker_a))
    _, user = user_token(client, broker_a, "BROKER_USER")
    for method, path, body in manage_calls(broker_a):
        assert client.request(method, path, json=body, headers=admin).status_code == 201, path
        assert_problem(client.request(method, path, json=body, headers=bearer(user)), 403)
    assert client.get(f"/api/v1/brokers/{broker_a.id}/webhook-endpoints", headers=bearer(user)).status_code == 200


def test_keys_that_could_manage_webhooks_keep_it_after_the_migration(client: TestClient,
                                                                     broker_a: BrokerFixture) -> None:
    """The statements of migration 17e_webhooks_scope, run by the owner (as Alembic would)."""
    path = Path(__file__).parent.parent / "migrations" / "versions" / "20261203_35_webhooks_scope.py"
    spec = importlib.util.spec_from_file_location("webhooks_scope_migration", path)
    assert spec is not None and spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    writer = client.post(f"/api/v1/brokers/{broker_a.id}/api-keys", headers=broker_a.auth,
                         json={"kind": "secret", "name": "w", "scopes": ["brokers:write"]}).json()
    reader = client.post(f"/api/v1/brokers/{broker_a.id}/api-keys", headers=broker_a.auth,
                         json={"kind": "secret", "name": "r", "scopes": ["brokers:read"]}).json()
    for _ in range(2):  # a rerun adds nothing
        for statement in migration.statements(migration.GRANT):
            sql(client, statement)
    scopes = {str(r.id): list(r.scopes) for r in sql(client, "select id, scopes from api_keys where id in (:w, :r)",
                                                     {"w": writer["id"], "r": reader["id"]})}
    assert scopes == {writer["id"]: ["brokers:write", "webhooks:manage"], reader["id"]: ["brokers:read"]}
    forced = sql(client, "select relforcerowsecurity from pg_class where relname = 'api_keys'")
    assert forced[0][0] is True  # put back
