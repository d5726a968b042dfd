"""A POST route that parses the raw body with Pydantic's validate_json and answers pre-serialised bytes.

FastAPI's own body handling (json.loads + validate_python + response validation) costs ~140 us per
request on our machines (perf-notes 6); this keeps the same OpenAPI documentation (request schema,
response model, examples) without that cost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter, Request
from pydantic import BaseModel, TypeAdapter
from starlette.responses import Response

from app.auth.cache import BrokerRecord
from app.auth.principal import Principal
from app.auth.service import AuthService, require
from app.calculations.cache import ResultCache
from app.calculations.policy import BrokerPolicy
from app.errors import UnsupportedMediaType

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
DEFAULT_POLICY = BrokerPolicy()
HIT = {"X-Cache": "HIT"}
MISS = {"X-Cache": "MISS"}

# Request models whose schemas must be added to the OpenAPI components (see app.main.custom_openapi).
REQUEST_MODELS: list[type[BaseModel]] = []
# (parser, documented example, calculation) of every route: run once at startup (see warm_up).
WARM_UP: list[tuple[TypeAdapter[Any], dict[str, Any], Callable[[Any, bool], dict[str, Any]]]] = []


def warm_up() -> None:
    """Run each calculation once on its documented example before serving. The first call of a code
    path costs far more than later ones (lazy imports, first-use caches), and the result cache measures
    compute cost per route: a cold first request must not make a cheap route look costly."""
    for adapter, example, func in WARM_UP:
        with contextlib.suppress(Exception):  # an example that fails here fails its own tests instead
            func(adapter.validate_python(example), False)

EXPLAIN_PARAM = {
    "name": "explain", "in": "query", "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "Add `explain`: the ordered calculation steps, each with formula, inputs and value.",
}


def wants_explain(query: bytes) -> bool:
    if not query:
        return False
    for part in query.split(b"&"):
        if part in (b"explain=true", b"explain=1", b"explain"):
            return True
    return False


def check_json(request: Request) -> None:
    ctype = request.headers.get("content-type")
    if ctype is None:
        return
    media = ctype.split(";", 1)[0].strip().lower()
    if media != JSON and not media.endswith("+json"):
        raise UnsupportedMediaType(f"Send the body as application/json (got {media}).",
                                   errors=[{"field": "content-type", "pointer": "#", "code": "unsupported_media_type",
                                            "detail": "expected application/json"}])


async def authorise(request: Request, cost: int = 1) -> tuple[Principal, BrokerRecord | None]:
    """The caller (API key or token), charged to its tier's rate limit, and its broker record (with the
    calculation policy); everything comes from in-process caches."""
    auth: AuthService = request.app.state.auth
    principal = await request.app.state.ratelimits.admit(request, cost)
    require(principal, "calc:run")
    return principal, await auth.broker(principal.broker_id)


def record(request: Request, principal: Principal, kind: str, body: bytes, out: dict[str, Any],
           payload: bytes | None = None) -> None:
    request.app.state.recorder.record(principal, kind, body, out, payload)


def cache_key(principal: Principal, broker: BrokerRecord | None, kind: str, canonical: bytes, explain: bool) -> str:
    return ResultCache.key(principal.broker_id, broker.config_version if broker else 0, kind, canonical, explain)


def serve_hit(request: Request, principal: Principal, kind: str, body: bytes,
              fresh: tuple[bytes, str | None], stored: bool = True) -> Response:
    """A cached result as this request's own calculation (fresh id), recorded like a computed one;
    `stored=False` records the id only (batches keep a summary, not their results)."""
    payload, calc_id = fresh
    record(request, principal, kind, body, {"calculationId": calc_id}, payload if stored else None)
    return Response(payload, media_type=JSON, headers=HIT)


def json_post(router: APIRouter, path: str, model: type[M], response_model: type[BaseModel] | None,
              func: Callable[[M, bool], dict[str, Any]], *, summary: str, description: str = "",
              example: dict[str, Any] | None = None, explain: bool = True) -> None:
    adapter = TypeAdapter(model)
    REQUEST_MODELS.append(model)
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if example is not None:
        content["example"] = example

    kind = path.rsplit("/", 1)[-1]

    async def endpoint(request: Request) -> Response:
        principal, broker = await authorise(request)
        policy = broker.policy if broker else DEFAULT_POLICY
        check_json(request)
        body = await request.body()
        req = policy.apply(adapter.validate_json(body))
        explain = wants_explain(request.scope["query_string"])
        cache: ResultCache = request.app.state.result_cache
        size_class = cache.size_class(body)
        looked_up = cache.worth_lookup(kind, size_class)
        if looked_up:
            key = cache_key(principal, broker, kind, adapter.dump_json(req), explain)
            hit = await cache.get(key, time.monotonic())
            if hit is not None:
                return serve_hit(request, principal, kind, body, hit.fresh())
        started = time.thread_time_ns()  # CPU time: a preempted worker must not look costly
        out = func(req, explain)
        costly = cache.observe(kind, size_class, (time.thread_time_ns() - started) / 1000)
        payload = orjson.dumps(out)
        record(request, principal, kind, body, out, payload)  # the stored result is the response's own bytes
        if not (costly or looked_up):
            return Response(payload, media_type=JSON)  # cheaper to compute than to cache: no X-Cache
        if not looked_up:
            key = cache_key(principal, broker, kind, adapter.dump_json(req), explain)
        cache.put(key, payload, out.get("calculationId"), time.monotonic())
        return Response(payload, media_type=JSON, headers=MISS)

    if example is not None:
        WARM_UP.append((adapter, example, func))
    endpoint.__name__ = func.__name__
    router.add_api_route(
        path, endpoint, methods=["POST"], response_model=response_model, summary=summary, description=description,
        response_model_exclude_none=True,
        openapi_extra={
            "requestBody": {"required": True, "content": {JSON: content}},
            "parameters": [EXPLAIN_PARAM] if explain else [],
        },
        responses={400: {"description": "Malformed JSON (problem+json)"},
                   401: {"description": "Missing or invalid API key or token (problem+json)"},
                   403: {"description": "Origin not allowed for a publishable key, or no calc permission"},
                   413: {"description": "Body too large (problem+json)"},
                   415: {"description": "Not JSON (problem+json)"},
                   422: {"description": "Invalid input; `errors[].field` names each field (problem+json)"}},
    )
