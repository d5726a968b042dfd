"""S3Storage (app/storage/objects.py) against a running S3-compatible server: s3rver 3.7.1 (npm), a standalone
S3 HTTP server backed by a directory, installed by `python3 dev.py test` into .tools/node.

What s3rver checks and what it does not (read in its lib/middleware/authentication.js): for SigV4 it checks the
algorithm, that the access key is its own (403 otherwise), the required X-Amz-* query parameters and a presigned
URL's expiry, but it never computes a V4 signature ("Signature version 4 calculation is unimplemented"), so a
wrongly signed request passes there. These tests therefore check the presigned URLs' signatures themselves,
with `sigv4_signature` below (written from AWS's SigV4 query-string specification, not with botocore); the
PutObject and HeadObject requests, signed in headers, are not verified by anything here. What the server does
check: objects land under the configured bucket and prefix with their content type, HEAD tells a stored key
from a missing one (and a refusal from both), and the presigned URL the API redirects to serves the stored
bytes with the Content-Disposition and Content-Type it asked for (response-content-disposition/-type).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import anyio
import httpx
import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.config import Settings
from app.main import create_app
from app.storage.objects import S3Storage, build_storage
from tests.conftest import make_broker
from tests.helpers_auth import admin_token, bearer, never_500, sql

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "reports-bucket"
ACCESS_KEY = SECRET_KEY = "S3RVER"  # s3rver's one built-in account
REGION = "eu-west-1"  # not botocore's default, so a region left out of the signature shows


@dataclass
class S3Server:
    endpoint: str
    directory: Path

    def settings(self, base: Settings, *, prefix: str = "tenant-x", access_key: str = ACCESS_KEY) -> Settings:
        return base.model_copy(update={
            "storage_backend": "s3", "storage_s3_bucket": BUCKET, "storage_s3_endpoint_url": self.endpoint,
            "storage_s3_region": REGION, "storage_s3_access_key_id": access_key,
            "storage_s3_secret_access_key": SecretStr(SECRET_KEY), "storage_s3_prefix": prefix,
            "storage_s3_addressing_style": "path", "storage_url_seconds": 120})

    def _raw(self) -> Any:
        """A plain client of its own (not the storage under test)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY)

    def keys(self) -> list[str]:
        """Every key in the bucket."""
        listed = self._raw().list_objects_v2(Bucket=BUCKET)
        return sorted(item["Key"] for item in listed.get("Contents", []))

    def content_type(self, full_key: str) -> str:
        """The Content-Type the object was stored with."""
        return str(self._raw().head_object(Bucket=BUCKET, Key=full_key)["ContentType"])


def sigv4_signature(url: str, secret: str) -> str:
    """The AWS Signature Version 4 signature a presigned GET `url` should carry, computed from the specification
    (query-string authentication, only the host header signed, UNSIGNED-PAYLOAD) with the given secret key and
    the scope the URL names; also checks that the scope is ACCESS_KEY's for REGION and s3."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    params = dict(pairs)
    stamp = params["X-Amz-Date"]
    scope = f"{stamp[:8]}/{REGION}/s3/aws4_request"
    assert params["X-Amz-Credential"] == f"{ACCESS_KEY}/{scope}"
    assert params["X-Amz-SignedHeaders"] == "host"

    def enc(text: str) -> str:
        return quote(text, safe="-_.~")

    query = "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(pairs) if k != "X-Amz-Signature")
    canonical = "\n".join(["GET", parts.path, query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (stamp[:8], REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def assert_signed(url: str) -> None:
    signature = parse_qs(urlsplit(url).query)["X-Amz-Signature"]
    assert signature == [sigv4_signature(url, SECRET_KEY)], "presigned URL not signed with the configured secret"
    assert signature != [sigv4_signature(url, "another-secret")]  # the check itself can fail


def _s3rver() -> str:
    if not shutil.which("node"):
        pytest.skip("node not installed: s3rver (the S3-compatible test server) cannot run")
    local = ROOT / ".tools" / "node" / "node_modules" / ".bin" / "s3rver"
    found = str(local) if local.exists() else shutil.which("s3rver")
    if not found:
        pytest.skip("s3rver not installed in .tools/node (`python3 dev.py test` installs it when npm is there)")
    return found


@pytest.fixture(scope="module")
def s3server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """s3rver on a free loopback port (it picks one: port 0, read back from its log), with the bucket created
    at start-up, in a temporary directory; stopped at teardown."""
    binary = _s3rver()
    base = tmp_path_factory.mktemp("s3rver")
    data, log = base / "data", base / "s3rver.log"
    data.mkdir()
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-d", str(data), "-a", "127.0.0.1", "-p", "0", "--no-vhost-buckets",
                                 "--configure-bucket", BUCKET], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60  # a hang guard, not a speed check
        marker = "S3rver listening on 127.0.0.1:"
        while marker not in (text := log.read_text(errors="replace")):
            assert proc.poll() is None, f"s3rver exited ({proc.returncode}): {text}"
            assert time.monotonic() < deadline, f"s3rver did not start: {text}"
            time.sleep(0.05)
        port = int(text.split(marker, 1)[1].split()[0])
        yield S3Server(endpoint=f"http://127.0.0.1:{port}", directory=data)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def _source(tmp_path: Path, name: str, body: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(body)
    return path


def test_put_exists_locate_serves_the_bytes(s3server: S3Server, settings: Settings, tmp_path: Path) -> None:
    storage = build_storage(s3server.settings(settings))
    assert isinstance(storage, S3Storage)
    key = f"reports/{uuid.uuid4().hex}/r1/report.csv"
    body = "\ufeffrecord,amount\ncalculation,1.185\n".encode() + bytes(range(256))  # BOM and every byte value
    source = _source(tmp_path, "report.csv", body)

    assert anyio.run(lambda: storage.exists(key)) is False
    anyio.run(lambda: storage.put_file(key, source, "text/csv; charset=utf-8"))
    assert anyio.run(lambda: storage.exists(key)) is True
    assert f"tenant-x/{key}" in s3server.keys()  # under the configured prefix, in the configured bucket
    assert s3server.content_type(f"tenant-x/{key}") == "text/csv; charset=utf-8"

    url = anyio.run(lambda: storage.locate(key, "compliance-2025-01.csv", "text/csv; charset=utf-8"))
    assert isinstance(url, str)
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == s3server.endpoint
    assert parts.path == f"/{BUCKET}/tenant-x/{key}"
    query = parse_qs(parts.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"] and query["X-Amz-Expires"] == ["120"]
    assert_signed(url)
    tampered = url.replace("/r1/report.csv?", "/r2/report.csv?")  # the verifier covers the path too
    assert parse_qs(urlsplit(tampered).query)["X-Amz-Signature"] != [sigv4_signature(tampered, SECRET_KEY)]

    got = httpx.get(url, timeout=30)  # what a browser does with the API's redirect
    assert got.status_code == 200, got.text
    assert got.content == body
    assert got.headers["content-disposition"] == 'attachment; filename="compliance-2025-01.csv"'
    assert got.headers["content-type"] == "text/csv; charset=utf-8"


def test_a_missing_key_does_not_exist(s3server: S3Server, settings: Settings, tmp_path: Path) -> None:
    storage = build_storage(s3server.settings(settings))
    run = uuid.uuid4().hex
    assert anyio.run(lambda: storage.exists(f"reports/{run}/nothing-here.pdf")) is False
    # A file stored under another prefix is not this storage's.
    other = build_storage(s3server.settings(settings, prefix="tenant-y"))
    anyio.run(lambda: other.put_file(f"reports/{run}/elsewhere.pdf", _source(tmp_path, "e.pdf", b"%PDF-1.7"),
                                     "application/pdf"))
    assert f"tenant-y/reports/{run}/elsewhere.pdf" in s3server.keys()
    assert anyio.run(lambda: other.exists(f"reports/{run}/elsewhere.pdf")) is True
    assert anyio.run(lambda: storage.exists(f"reports/{run}/elsewhere.pdf")) is False


def test_a_refused_request_is_an_error_not_a_missing_file(s3server: S3Server, settings: Settings) -> None:
    """403 (an access key the server does not know) is raised, never read as "not there"."""
    storage = build_storage(s3server.settings(settings, access_key="NOT-A-KEY"))
    with pytest.raises(ClientError) as caught:
        anyio.run(lambda: storage.exists("reports/b/r/x.csv"))
    assert caught.value.response["Error"]["Code"] == "403"


@pytest.fixture(scope="module")
def s3_app(s3server: S3Server, settings: Settings) -> Iterator[TestClient]:
    """An app of its own whose file storage is the S3 server (the session's app stores locally)."""
    # Its own job queue: the session's app shares the Redis and would otherwise run the report job itself, storing
    # it in its local storage (seen once in the whole suite).
    own = s3server.settings(settings).model_copy(update={"jobs_queue_name": f"arq:queue:s3-{uuid.uuid4().hex[:8]}"})
    with TestClient(create_app(own), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def s3_app_no_server_errors(s3_app: TestClient) -> Iterator[None]:
    yield from never_500(s3_app)


@pytest.mark.usefixtures("s3_app_no_server_errors")
def test_a_compliance_report_is_stored_in_s3_and_downloaded_by_redirect(s3_app: TestClient,
                                                                        s3server: S3Server) -> None:
    assert isinstance(s3_app.app.state.services.storage, S3Storage)  # type: ignore[attr-defined]
    broker = make_broker(s3_app)
    headers = bearer(admin_token(s3_app, broker))
    resp = s3_app.post(f"/api/v1/brokers/{broker.id}/reports/compliance",
                       json={"from": "2025-01-01", "to": "2025-01-31"}, headers=headers)
    assert resp.status_code == 202, resp.text
    report_id = resp.json()["id"]
    deadline = time.monotonic() + 120  # a hang guard, not a speed check
    while True:
        done: dict[str, Any] = s3_app.get(f"/api/v1/brokers/{broker.id}/reports/{report_id}", headers=headers).json()
        if done["status"] in ("complete", "failed"):
            break
        assert time.monotonic() < deadline, done
        time.sleep(0.05)
    assert done["status"] == "complete", done

    files = sql(s3_app, "select files from compliance_reports where id = :i", {"i": report_id})[0][0]
    stored = s3server.keys()
    for fmt, media_type in (("csv", "text/csv"), ("pdf", "application/pdf")):
        assert f"tenant-x/{files[fmt]['key']}" in stored
        assert s3server.content_type(f"tenant-x/{files[fmt]['key']}").startswith(media_type)
        redirect = s3_app.get(done["downloads"][fmt], headers=headers, follow_redirects=False)
        assert redirect.status_code == 307, redirect.text
        location = redirect.headers["location"]
        assert location.startswith(f"{s3server.endpoint}/{BUCKET}/tenant-x/reports/")
        assert_signed(location)
        got = httpx.get(location, timeout=30)
        assert got.status_code == 200, got.text
        assert len(got.content) == files[fmt]["bytes"]
        assert hashlib.sha256(got.content).hexdigest() == files[fmt]["sha256"]
        assert got.headers["content-type"].startswith(media_type)
        disposition = got.headers["content-disposition"]
        assert disposition.startswith("attachment;") and disposition.endswith(f'.{fmt}"')
    assert httpx.get(s3_app.get(done["downloads"]["pdf"], headers=headers, follow_redirects=False)
                     .headers["location"], timeout=30).content.startswith(b"%PDF-")
