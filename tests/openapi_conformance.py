"""Every response the suite sees is checked against the published OpenAPI document.

A pytest plugin (loaded by tests/conftest.py): it wraps every app's ASGI entry, records each JSON
response (status, media type, body) and, after each test, validates what that test received against
the schema the same app publishes at /openapi.json. A test whose responses break the contract fails
with the operation, the status and the first violation. The response models forbid extra properties,
so a field the code returns but the schema does not declare is a failure too.

Checked: every `application/json` and `application/problem+json` body of a documented operation. A 2xx
status the operation does not document is a failure; an error status falls back to the Problem schema.
Not JSON (HTML docs, the widget's assets, metrics text) and undocumented paths (the docs themselves)
are skipped.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import brotli
import orjson
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

JSON_TYPES = ("application/json", "application/problem+json")


@dataclass(frozen=True)
class Seen:
    app: FastAPI
    method: str
    path: str
    status: int
    media: str
    body: bytes


SEEN: list[Seen] = []
_original_call = FastAPI.__call__


async def _recording_call(self: FastAPI, scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await _original_call(self, scope, receive, send)
        return
    state: dict[str, Any] = {"status": 0, "media": "", "chunks": [], "replay": False}

    async def tap(message: Any) -> None:
        if message["type"] == "http.response.start":
            state["status"] = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"content-type":
                    state["media"] = value.decode("latin-1").split(";", 1)[0].strip()
                elif name.lower() == b"content-encoding":
                    state["coding"] = value.decode("latin-1").strip()  # app.encoding: gzip or br
                elif name.lower() == b"idempotent-replayed":
                    state["replay"] = True  # the first response's own bytes, checked when first sent
        elif message["type"] == "http.response.body":
            if state["media"] in JSON_TYPES:
                state["chunks"].append(message.get("body", b""))
            if not message.get("more_body", False) and state["media"] in JSON_TYPES and not state["replay"]:
                body = b"".join(state["chunks"])
                coding = state.get("coding")
                if coding in ("gzip", "br"):
                    body = gzip.decompress(body) if coding == "gzip" else brotli.decompress(body)
                SEEN.append(Seen(self, scope["method"], scope["path"], state["status"], state["media"], body))
        await send(message)

    await _original_call(self, scope, receive, tap)


@dataclass
class Contract:
    document: dict[str, Any]
    registry: Registry[Any]
    paths: list[tuple[re.Pattern[str], str]]


_contracts: dict[int, Contract] = {}


def contract(app: FastAPI) -> Contract:
    found = _contracts.get(id(app))
    if found is None:
        document = app.openapi()
        registry: Registry[Any] = Registry().with_resource(
            "urn:openapi", Resource.from_contents(document, default_specification=_spec()))
        paths = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
                 for template in document["paths"]]
        found = _contracts[id(app)] = Contract(document, registry, paths)
    return found


@lru_cache(maxsize=1)
def _spec() -> Any:
    from referencing.jsonschema import DRAFT202012

    return DRAFT202012


def _rewrite(schema: Any) -> Any:
    """Point `#/components/...` refs at the registered document."""
    if isinstance(schema, dict):
        return {k: ("urn:openapi" + v if k == "$ref" and isinstance(v, str) and v.startswith("#/") else _rewrite(v))
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rewrite(v) for v in schema]
    return schema


_validators: dict[tuple[int, str, str, str, str], Draft202012Validator] = {}


def violation(seen: Seen) -> str | None:
    c = contract(seen.app)
    if "Problem" not in c.document.get("components", {}).get("schemas", {}):
        return None  # a test's own app (a probe of the middleware), not the product's contract
    template = next((t for pattern, t in c.paths if pattern.match(seen.path)), None)
    if template is None:
        return None  # not a documented operation (docs, problem-type pages)
    op = c.document["paths"][template].get(seen.method.lower())
    if op is None:
        return None  # a 405 for a method the path does not have
    responses = op.get("responses", {})
    status = str(seen.status)
    response = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
    if response is None:
        if seen.status < 400:
            return f"{seen.method} {template}: status {status} is not documented"
        schema: Any = {"$ref": "#/components/schemas/Problem"}
    else:
        content = response.get("content", {})
        media = content.get(seen.media) or content.get("application/json")
        if media is None or "schema" not in media:
            if seen.status < 400:
                return f"{seen.method} {template}: {status} {seen.media} has no documented schema"
            schema = {"$ref": "#/components/schemas/Problem"}
        else:
            schema = media["schema"]
    key = (id(seen.app), template, seen.method, status, seen.media)
    validator = _validators.get(key)
    if validator is None:
        validator = _validators[key] = Draft202012Validator(_rewrite(schema), registry=c.registry)
    body = orjson.loads(seen.body) if seen.body else None
    error = next(iter(validator.iter_errors(body)), None)
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{seen.method} {template} -> {status}: at '{where}': {error.message[:300]}"


@pytest.fixture(autouse=True)
def responses_match_the_published_schema(request: pytest.FixtureRequest) -> Iterator[None]:
    start = len(SEEN)
    yield
    seen, SEEN[start:] = SEEN[start:], []
    problems = [v for v in map(violation, seen) if v is not None]
    if problems:
        unique = list(dict.fromkeys(problems))
        pytest.fail(f"{len(problems)} response(s) break the published OpenAPI schema:\n  " + "\n  ".join(unique[:10]),
                    pytrace=False)


def pytest_configure(config: pytest.Config) -> None:
    FastAPI.__call__ = _recording_call  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    FastAPI.__call__ = _original_call  # type: ignore[method-assign]
