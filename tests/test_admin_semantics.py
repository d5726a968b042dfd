"""Issue 12, point 7: admin operations that cannot be fumbled. PATCH of the config is a JSON Merge Patch
(RFC 7396) and PUT a full replacement; a rotated key cannot be rotated again (409); a second broker with
a taken name is a 409 unless forced (API and CLI); passwords never come from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from tests.conftest import BrokerFixture, make_broker
from tests.helpers_auth import assert_problem, bearer, login, problem_fields, sql, superadmin_token, token_of
from tests.test_cli import ROOT, _env

pytestmark = pytest.mark.usefixtures("no_server_errors")
MERGE_PATCH = {"Content-Type": "application/merge-patch+json"}
ORIGINS = ["https://www.example.com", "https://app.example.com"]


@pytest.fixture
def broker(client: TestClient) -> BrokerFixture:
    return make_broker(client, config={"allowedOrigins": ORIGINS, "maxLeverage": 50,
                                       "branding": {"primaryColor": "#112233", "darkMode": True}})


def patch(client: TestClient, broker: BrokerFixture, body: object, headers: dict[str, str] | None = None) -> object:
    return client.patch(f"/api/v1/brokers/{broker.id}/config", content=json.dumps(body),
                        headers={**broker.auth, **(headers or MERGE_PATCH)})


def test_patch_with_only_a_colour_changes_only_the_colour(client: TestClient, broker: BrokerFixture) -> None:
    resp = client.patch(f"/api/v1/brokers/{broker.id}/config", content=json.dumps(
        {"branding": {"primaryColor": "#0A7F5A"}}), headers={**broker.auth, **MERGE_PATCH})
    assert resp.status_code == 200, resp.text
    config = resp.json()["config"]
    assert config["branding"]["primaryColor"] == "#0a7f5a"
    assert config["branding"]["darkMode"] is True  # a sibling inside the patched object stays
    assert config["allowedOrigins"] == ORIGINS and config["maxLeverage"] == 50
    # application/json is accepted too; null puts a key back to its default (here: none).
    again = client.patch(f"/api/v1/brokers/{broker.id}/config", json={"maxLeverage": None}, headers=broker.auth)
    assert again.status_code == 200, again.text
    assert "maxLeverage" not in again.json()["config"] and again.json()["config"]["allowedOrigins"] == ORIGINS
    assert again.json()["configVersion"] == resp.json()["configVersion"] + 1
    # The widget keeps working from its origins.
    cfg = client.get(f"/api/v1/widget/config?broker={broker.slug}&key={broker.publishable_key}",
                     headers={"Origin": ORIGINS[0], "Authorization": ""})
    assert cfg.status_code == 200, cfg.text


def test_put_stays_a_full_replacement(client: TestClient, broker: BrokerFixture) -> None:
    resp = client.put(f"/api/v1/brokers/{broker.id}/config", json={"branding": {"primaryColor": "#0a7f5a"}},
                      headers=broker.auth)
    assert resp.status_code == 200
    assert resp.json()["config"]["allowedOrigins"] == [] and "maxLeverage" not in resp.json()["config"]


def test_patch_is_validated_like_a_put(client: TestClient, broker: BrokerFixture) -> None:
    bad = client.patch(f"/api/v1/brokers/{broker.id}/config", json={"branding": {"primaryColor": "red"}},
                       headers=broker.auth)
    assert_problem(bad, 422, "validation-error")
    assert problem_fields(bad) == ["branding.primaryColor"]
    unknown = client.patch(f"/api/v1/brokers/{broker.id}/config", json={"rateLimitPerKeyy": True},
                           headers=broker.auth)
    assert_problem(unknown, 422, "validation-error")
    not_object = client.patch(f"/api/v1/brokers/{broker.id}/config", json=[1], headers=broker.auth)
    assert_problem(not_object, 422, "validation-error")
    other_type = client.patch(f"/api/v1/brokers/{broker.id}/config", content=b'{"locale": "de"}',
                              headers={**broker.auth, "Content-Type": "text/plain"})
    assert other_type.status_code in (415, 422)
    stored = client.get(f"/api/v1/brokers/{broker.id}", headers=broker.auth).json()["config"]
    assert stored["branding"]["primaryColor"] == "#112233" and stored["locale"] == "en"


def test_rotating_a_rotated_key_is_409(client: TestClient, broker: BrokerFixture) -> None:
    created = client.post(f"/api/v1/brokers/{broker.id}/api-keys", json={"kind": "secret"}, headers=broker.auth)
    key_id = created.json()["id"]
    first = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{key_id}/rotate", headers=broker.auth)
    assert first.status_code == 201, first.text
    second = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{key_id}/rotate", headers=broker.auth)
    body = assert_problem(second, 409, "conflict")
    assert first.json()["id"] in body["detail"]
    successors = sql(client, "select count(*) from api_keys where rotated_from = :k", {"k": uuid.UUID(key_id)})
    assert successors[0][0] == 1
    # The successor itself rotates as usual.
    third = client.post(f"/api/v1/brokers/{broker.id}/api-keys/{first.json()['id']}/rotate", headers=broker.auth)
    assert third.status_code == 201


def test_creating_a_broker_whose_name_exists_is_409_unless_forced(client: TestClient) -> None:
    root = bearer(superadmin_token(client))
    name = f"Acme {uuid.uuid4().hex[:8]}"
    assert client.post("/api/v1/brokers", json={"name": name}, headers=root).status_code == 201
    again = client.post("/api/v1/brokers", json={"name": f"  {name.upper()} "}, headers=root)
    body = assert_problem(again, 409, "conflict")
    assert problem_fields(again) == ["name"] and "force" in body["detail"]
    forced = client.post("/api/v1/brokers?force=true", json={"name": name}, headers=root)
    assert forced.status_code == 201
    assert sql(client, "select count(*) from brokers where name = :n", {"n": name})[0][0] == 2


def _cli(settings: Settings, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", "admin", *args], cwd=ROOT, env=_env(settings.data_dir),
                          input=stdin, capture_output=True, text=True, timeout=180)


def test_cli_create_broker_twice_is_refused_unless_forced(settings: Settings) -> None:
    name = f"Twice {uuid.uuid4().hex[:8]}"
    assert _cli(settings, "create-broker", "--name", name, "--json").returncode == 0
    again = _cli(settings, "create-broker", "--name", name, "--json")
    assert again.returncode == 2 and "exists" in again.stderr and again.stdout == ""
    forced = _cli(settings, "create-broker", "--name", name, "--json", "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["slug"].startswith("twice-")


def test_cli_passwords_come_from_stdin_never_the_command_line(client: TestClient, settings: Settings) -> None:
    email = f"ops-{uuid.uuid4().hex[:8]}@example.com"
    refused = _cli(settings, "create-superadmin", "--email", email, "--password", "on the command line")
    assert refused.returncode == 2 and "never taken on the command line" in refused.stderr
    assert sql(client, "select count(*) from users where email = :e", {"e": email})[0][0] == 0
    password = "a long operator passphrase"
    made = _cli(settings, "create-superadmin", "--email", email, stdin=password + "\n")
    assert made.returncode == 0, made.stderr
    assert password not in made.stdout
    assert token_of(login(client, "platform", email, password))
    refused_admin = _cli(settings, "create-broker", "--name", f"B {uuid.uuid4().hex[:6]}",
                         "--admin-email", "a@example.com", "--admin-password", "on the command line")
    assert refused_admin.returncode == 2
