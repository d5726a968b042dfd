"""Compliance reports (app/reports): request -> job on the in-process worker -> CSV and PDF in storage.

The PDF is checked the way a reader sees it: every page rendered to an image by PDFium (pypdfium2) must
be non-blank, and the text PDFium extracts must hold what the report is about.
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import orjson
import pypdfium2 as pdfium
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.reports.content import safe_cell
from app.reports.tasks import generate_compliance_report
from app.storage.objects import LocalStorage, S3Storage, build_storage
from tests.conftest import BrokerFixture
from tests.helpers_auth import (
    USER_PASSWORD,
    admin_token,
    assert_problem,
    bearer,
    calculate,
    create_user,
    login,
    sql,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")

RISKY = {"accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1850,
         "stopLoss": 1.1820, "riskPercentage": 15, "leverage": 30}  # above 10 %: flagged


def _period() -> dict[str, str]:
    today = datetime.now(UTC).date()  # yesterday to tomorrow: safe across midnight UTC
    return {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}


def _wait(client: TestClient, broker: BrokerFixture, report_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120  # a hang guard, not a speed check
    while True:
        resp = client.get(f"/api/v1/brokers/{broker.id}/reports/{report_id}", headers=headers)
        assert resp.status_code == 200, resp.text
        body: dict[str, Any] = resp.json()
        if body["status"] in ("complete", "failed"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.05)


@pytest.fixture
def activity(client: TestClient, broker_a: BrokerFixture) -> dict[str, Any]:
    """A period with something to report: calculations (one flagged), logins, a config and a key change."""
    plain = calculate(client, broker_a.auth)
    risky = calculate(client, broker_a.auth, RISKY)
    assert plain.status_code == 200 and risky.status_code == 200
    assert risky.json()["flags"]
    _, email = create_user(client, broker_a, "BROKER_USER")
    assert login(client, broker_a.slug, email, "wrong password 1234").status_code == 401
    assert login(client, broker_a.slug, email, USER_PASSWORD).status_code == 200
    patched = client.patch(f"/api/v1/brokers/{broker_a.id}/config", json={"branding": {"primaryColor": "#0a7f5a"}},
                           headers=broker_a.auth)
    assert patched.status_code == 200, patched.text
    key = client.post(f"/api/v1/brokers/{broker_a.id}/api-keys", json={"kind": "secret", "name": "reporting"},
                      headers=broker_a.auth)
    assert key.status_code == 201, key.text
    assert client.get("/api/v1/calculations", headers=broker_a.auth).status_code == 200  # stored now
    return {"calcs": [plain.json()["calculationId"], risky.json()["calculationId"]],
            "flags": [f["code"] for f in risky.json()["flags"]]}


def test_a_report_is_built_by_its_job_with_csv_and_pdf(client: TestClient, broker_a: BrokerFixture,
                                                       activity: dict[str, Any]) -> None:
    headers = bearer(admin_token(client, broker_a))  # a BROKER_ADMIN with MFA
    resp = client.post(f"/api/v1/brokers/{broker_a.id}/reports/compliance", json=_period(), headers=headers)
    assert resp.status_code == 202, resp.text
    report = resp.json()
    assert report["status"] in ("queued", "running", "complete") and report["jobId"].startswith(
        f"broker:{broker_a.id}:compliance-report-")
    done = _wait(client, broker_a, report["id"], headers)
    assert done["status"] == "complete", done
    summary = done["summary"]
    assert summary["calculations"]["total"] == 2 and summary["calculations"]["byKind"] == {"position-size": 2}
    assert summary["calculations"]["flagged"] == 1
    assert all(summary["calculations"]["byFlag"][code] >= 1 for code in activity["flags"])
    assert summary["logins"]["succeeded"] >= 2 and summary["logins"]["failed"] == 1  # the MFA login, and ours
    assert summary["changes"]["configuration"] >= 1 and summary["changes"]["keys"] >= 1
    # The job's status is the broker's to read.
    job = client.get(f"/api/v1/jobs/{report['jobId']}", headers=headers)
    assert job.status_code == 200 and job.json()["state"] == "complete", job.text

    # CSV: every calculation with inputs, results and flags; every audit entry.
    got = client.get(done["downloads"]["csv"], headers=headers)
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert "attachment" in got.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
    calcs = {r["calculation_id"]: r for r in rows if r["record"] == "calculation"}
    assert set(calcs) == set(activity["calcs"])
    risky = calcs[activity["calcs"][1]]
    assert orjson.loads(risky["input"])["riskPercentage"] == 15
    assert orjson.loads(risky["result"])["calculationId"] == activity["calcs"][1]
    assert set(risky["flags"].split(";")) == set(activity["flags"])
    actions = [r["action"] for r in rows if r["record"] == "audit"]
    assert {"auth.login", "auth.login_failed", "broker.config_updated", "api_key.created", "report.requested"} \
        <= set(actions)

    # PDF: each page rendered is not blank; the text is the report's.
    got = client.get(done["downloads"]["pdf"], headers=headers)
    assert got.status_code == 200 and got.headers["content-type"] == "application/pdf"
    document = pdfium.PdfDocument(got.content)
    assert len(document) >= 1
    text = ""
    for page in document:
        pixels = page.render(scale=1).to_numpy()
        assert pixels.size and (pixels < 200).any(), "a blank page"  # some dark (text) pixels on every page
        assert np.mean(pixels) > 128  # and mostly white: a page of text, not a black box
        text += page.get_textpage().get_text_range()
    flat = " ".join(text.split())
    for expected in ("Compliance report", f"Broker {broker_a.slug}", "broker.config_updated", "api_key.created",
                     "auth.login_failed", activity["calcs"][1], activity["flags"][0]):
        assert expected in flat, expected

    # Listed, and a rerun of its job (a crash after the work) changes nothing.
    listed = client.get(f"/api/v1/brokers/{broker_a.id}/reports", headers=headers).json()
    assert [r["id"] for r in listed] == [report["id"]]
    ctx = {"services": client.app.state.services}  # type: ignore[attr-defined]
    again = client.portal.call(lambda: generate_compliance_report(ctx, str(broker_a.id), report["id"]))
    assert again == {"reportId": report["id"], "status": "complete", "summary": summary}


def test_the_job_function_builds_a_queued_report(client: TestClient, broker_a: BrokerFixture) -> None:
    """Called directly (no worker): a row the API never enqueued, e.g. one whose enqueue failed."""
    report_id = uuid.uuid4()
    sql(client, "insert into compliance_reports (id, broker_id, period_start, period_end, job_id, "
                "requested_by_type) values (:i, :b, '2025-01-01', '2025-01-31', 'none', 'api_key')",
        {"i": report_id, "b": broker_a.id})
    ctx = {"services": client.app.state.services}  # type: ignore[attr-defined]
    out = client.portal.call(lambda: generate_compliance_report(ctx, str(broker_a.id), str(report_id)))
    assert out["status"] == "complete" and out["summary"]["calculations"]["total"] == 0
    files = sql(client, "select files from compliance_reports where id = :i", {"i": report_id})[0][0]
    storage = client.app.state.services.storage  # type: ignore[attr-defined]
    assert isinstance(storage, LocalStorage)
    for fmt in ("csv", "pdf"):
        path = storage.root / files[fmt]["key"]
        assert path.is_file() and path.stat().st_size == files[fmt]["bytes"]
    assert (storage.root / files["pdf"]["key"]).read_bytes().startswith(b"%PDF-")


def test_period_is_validated(client: TestClient, broker_a: BrokerFixture) -> None:
    path = f"/api/v1/brokers/{broker_a.id}/reports/compliance"
    body = assert_problem(client.post(path, json={"from": "2025-02-01", "to": "2025-01-01"}, headers=broker_a.auth),
                          422)
    assert body["errors"][0]["field"] == "to"
    body = assert_problem(client.post(path, json={"from": "2020-01-01", "to": "2025-01-01"}, headers=broker_a.auth),
                          422)
    assert body["errors"][0]["code"] == "period_too_long"
    assert_problem(client.post(path, json={"from": "2025-01-01"}, headers=broker_a.auth), 422)
    assert_problem(client.post(path, json={"from": "not a day", "to": "2025-01-01"}, headers=broker_a.auth), 422)


def test_download_before_completion_is_a_conflict(client: TestClient, broker_a: BrokerFixture) -> None:
    report_id = uuid.uuid4()
    sql(client, "insert into compliance_reports (id, broker_id, period_start, period_end, job_id, status, "
                "requested_by_type) values (:i, :b, '2025-01-01', '2025-01-31', 'none', 'running', 'api_key')",
        {"i": report_id, "b": broker_a.id})
    resp = client.get(f"/api/v1/brokers/{broker_a.id}/reports/{report_id}/download?format=csv", headers=broker_a.auth)
    assert_problem(resp, 409, "conflict")
    assert client.get(f"/api/v1/brokers/{broker_a.id}/reports/{report_id}", headers=broker_a.auth).json()[
        "downloads"] is None


def test_every_report_route_is_404_across_tenants(client: TestClient, broker_a: BrokerFixture,
                                                  broker_b: BrokerFixture) -> None:
    resp = client.post(f"/api/v1/brokers/{broker_b.id}/reports/compliance", json=_period(), headers=broker_b.auth)
    assert resp.status_code == 202, resp.text
    b_report = resp.json()["id"]
    done = _wait(client, broker_b, b_report, broker_b.auth)
    assert done["status"] == "complete"
    routes = [("GET", f"/reports/{b_report}"), ("GET", f"/reports/{b_report}/download?format=csv"),
              ("GET", f"/reports/{b_report}/download?format=pdf")]
    missing = assert_problem(client.get(f"/api/v1/brokers/{broker_a.id}/reports/{uuid.uuid4()}",
                                        headers=broker_a.auth), 404, "not-found")
    for method, tail in routes:
        # B's report under A's own path (RLS hides it) and under B's path (the broker scope refuses it).
        for broker in (broker_a.id, broker_b.id):
            got = client.request(method, f"/api/v1/brokers/{broker}{tail}", headers=broker_a.auth)
            body = assert_problem(got, 404, "not-found")
            assert body["title"] == missing["title"]
    for method, path, body in (("POST", "/reports/compliance", _period()), ("GET", "/reports", None)):
        assert_problem(client.request(method, f"/api/v1/brokers/{broker_b.id}{path}", json=body,
                                      headers=broker_a.auth), 404, "not-found")
    assert client.get(f"/api/v1/brokers/{broker_a.id}/reports", headers=broker_a.auth).json() == []


def test_a_broker_user_may_not_read_reports(client: TestClient, broker_a: BrokerFixture) -> None:
    _, email = create_user(client, broker_a, "BROKER_USER")
    token = login(client, broker_a.slug, email, USER_PASSWORD).json()["accessToken"]
    assert_problem(client.post(f"/api/v1/brokers/{broker_a.id}/reports/compliance", json=_period(),
                               headers=bearer(token)), 403)


def test_spreadsheet_formulas_are_neutralised() -> None:
    assert safe_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert [safe_cell(v) for v in ("+1", "-1", "@SUM(A1)", "\tx")] == ["'+1", "'-1", "'@SUM(A1)", "'\tx"]
    assert safe_cell("2026-12-03T00:00:00+00:00") == "2026-12-03T00:00:00+00:00"


def test_local_storage_refuses_keys_that_leave_its_directory(tmp_path: Path, client: TestClient) -> None:
    storage = LocalStorage(tmp_path / "files")
    source = tmp_path / "a.txt"
    source.write_text("report")
    client.portal.call(lambda: storage.put_file("reports/b/r/a.csv", source, "text/csv"))
    assert client.portal.call(lambda: storage.exists("reports/b/r/a.csv"))
    assert (tmp_path / "files/reports/b/r/a.csv").read_text() == "report"
    for bad in ("../x", "/etc/passwd", "reports/../../x", "a//b", ""):
        with pytest.raises(ValueError):
            client.portal.call(lambda bad=bad: storage.put_file(bad, source, "text/csv"))


def test_s3_storage_is_configured_from_settings(settings: Settings) -> None:
    """The wiring, without a server: boto3 signs a download URL for the configured endpoint, bucket, prefix
    and lifetime (local computation, no network). tests/test_storage_s3.py runs S3Storage against s3rver."""
    own = settings.model_copy(update={
        "storage_backend": "s3", "storage_s3_bucket": "reports-bucket",
        "storage_s3_endpoint_url": "http://127.0.0.1:9000", "storage_s3_region": "eu-west-1",
        "storage_s3_access_key_id": "AKIAEXAMPLE", "storage_s3_prefix": "prod",
        "storage_s3_addressing_style": "path", "storage_url_seconds": 120})
    from pydantic import SecretStr

    own = own.model_copy(update={"storage_s3_secret_access_key": SecretStr("secret-example")})
    storage = build_storage(own)
    assert isinstance(storage, S3Storage)
    import anyio

    url = anyio.run(lambda: storage.locate("reports/b/r/x.pdf", "x.pdf", "application/pdf"))
    assert isinstance(url, str)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "127.0.0.1:9000")
    assert parts.path == "/reports-bucket/prod/reports/b/r/x.pdf"
    query = parse_qs(parts.query)
    assert query["X-Amz-Expires"] == ["120"] and query["X-Amz-Credential"][0].startswith("AKIAEXAMPLE/")
    assert query["response-content-disposition"] == ['attachment; filename="x.pdf"']
    with pytest.raises(ValueError, match="bucket"):
        Settings(storage_backend="s3")
