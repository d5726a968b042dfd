"""The one serving pipeline of every calculation route: admit -> price -> charge -> execute -> record ->
respond, written once.

A route is data (CalcRoute): its request schema, its engine function, its response model and its cost
model. `CalculationDispatch` serves the declared routes straight from the ASGI scope with one dict
lookup: no route scan, no per-request dependency solving, no response re-validation (FastAPI's own
machinery cost a third of a position size's CPU; see the README's benchmark section). The same routes
are still registered with FastAPI, so OpenAPI is generated from the declarations.

1. admit: the caller (app.auth.admission, through the rate-limit gate) and its permission.
2. price: the body is parsed once (Pydantic's validate_json on the raw bytes), the broker's policy
   applied, what the request leaves to us fetched (the route's `prepare`: market quotes, history), and
   the cost model prices the completed input (app.calculations.cost).
3. charge: the priced units are charged before anything runs; above the tier's burst the request is
   refused up front.
4. execute: from the result cache when the work is worth caching, else the engine, inline when light
   and in the process pool when heavy.
5. record: the stored calculation is the response's own bytes, written off the response path.
6. respond: pre-serialised bytes; rate-limit headers are added by RequestContextMiddleware.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, TypeAdapter
from starlette.requests import ClientDisconnect, HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth.admission import Caller
from app.auth.principal import Principal
from app.auth.service import require
from app.calculations.cache import ResultCache
from app.calculations.cost import Work
from app.calculations.journal import Usage
from app.calculations.pool import CpuBudgetExceeded
from app.errors import Forbidden, UnsupportedMediaType, error_response, unexpected_response
from app.jsonbody import check as check_body
from app.services import Services, services

JSON = "application/json"
JSON_HEADER = (b"content-type", b"application/json")
HIT = (b"x-cache", b"HIT")
MISS = (b"x-cache", b"MISS")
# What the embedded widget calls (widget/app.js); a widget session may run nothing else (never a batch).
WIDGET_ROUTES = frozenset({"position-size", "projection", "portfolio"})
EXPLAIN_VALUES = (b"explain=true", b"explain=1", b"explain")
EXPLAIN_PARAM = {
    "name": "explain", "in": "query", "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "Add `explain`: the ordered calculation steps, each with formula, inputs and value.",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """An engine's answer as the pipeline needs it: the response bytes and the stored summary."""

    payload: bytes
    summary: dict[str, Any]  # at least calculationId; what the calculation store keeps besides the payload
    stored_payload: bool = True  # False: store the summary only (a batch's results are the client's to keep)


@dataclass(eq=False)
class CalcRoute:
    """A calculation route, declared as data. `engine(req, explain)` returns the response dict; it must
    be a module-level function (heavy calls are pickled to the process pool)."""

    path: str
    request: type[BaseModel]
    response: type[BaseModel] | None
    engine: Callable[[Any, bool], dict[str, Any]]
    cost: Callable[[Any, bool], Work]
    summary: str
    description: str = ""
    example: dict[str, Any] | None = None
    explain: bool = True
    tags: tuple[str, ...] = ("calculations",)
    cost_doc: str = "1 unit."
    stores_payload: bool = True  # False: the calculation store keeps the summary only
    # Async inputs the request leaves out (market quotes, price history), fetched on the event loop before
    # the request is priced: `prepare(req, caller, services)` returns the request to run, completed. It
    # never runs the engine; what it adds is part of the canonical request, so of the result cache key.
    prepare: Callable[[Any, Caller, Services], Awaitable[Any]] | None = None
    kind: str = field(init=False)
    adapter: TypeAdapter[Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.kind = self.path.rsplit("/", 1)[-1]
        self.adapter = TypeAdapter(self.request)

    def parse(self, raw: bytes, svc: Services | None = None) -> Any:
        return self.adapter.validate_json(raw)

    def apply_policy(self, req: Any, caller: Caller) -> Any:
        return caller.policy.apply(req)

    def price(self, req: Any, explain: bool) -> Work:
        return self.cost(req, explain)

    def cache_key(self, caller: Caller, req: Any, raw: bytes, explain: bool) -> str:
        # The canonical request (key order and whitespace do not matter), after the broker's policy.
        return ResultCache.key(caller.principal.broker_id, caller.broker.config_version, self.kind,
                               self.adapter.dump_json(req), explain)

    def execute(self, req: Any, explain: bool) -> Outcome:
        out = self.engine(req, explain)
        return Outcome(orjson.dumps(out), {"calculationId": out.get("calculationId")})

    def pool_args(self, req: Any, explain: bool, caller: Caller, services: Services) -> tuple[Any, ...]:
        return (req, explain)

    # A heavy call pickles its route to the pool worker: the functions and models travel by reference,
    # the TypeAdapter is rebuilt there.
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("adapter", None)
        state["prepare"] = None  # the event loop's business; a pool worker only executes
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.adapter = TypeAdapter(self.request)


def wants_explain(query: bytes) -> bool:
    if not query:
        return False
    return any(part in EXPLAIN_VALUES for part in query.split(b"&"))


def check_json(scope: Scope) -> None:
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower().decode("latin-1")
            if media != JSON and not media.endswith("+json"):
                raise UnsupportedMediaType(
                    f"Send the body as application/json (got {media}).",
                    errors=[{"field": "content-type", "pointer": "#", "code": "unsupported_media_type",
                             "detail": "expected application/json"}])
            return


async def read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def respond(send: Send, status: int, payload: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    headers = [JSON_HEADER, (b"content-length", str(len(payload)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


@dataclass(slots=True)
class Attempt:
    """What a failed calculation leaves for usage analytics: who asked, when it started, what it was charged."""

    started: float
    principal: Principal | None = None
    units: int = 0
    req: Any = None

    def usage(self, units: int | None = None) -> Usage:
        """The usage columns of this calculation (app.calculations.journal.Usage)."""
        latency_ms = round((time.perf_counter() - self.started) * 1000, 3)
        pair = getattr(self.req, "currency_pair", None)
        currency = getattr(self.req, "account_currency", None)
        risk = getattr(self.req, "risk_percentage", None)
        return (self.units if units is None else units, latency_ms, pair if isinstance(pair, str) else None,
                currency if isinstance(currency, str) else None,
                float(risk) if isinstance(risk, int | float) and not isinstance(risk, bool) else None)


async def serve(route: CalcRoute, scope: Scope, receive: Receive, send: Send, attempt: Attempt) -> None:
    svc = services(scope["app"])
    conn = HTTPConnection(scope)
    # 1. admit
    caller = await svc.ratelimits.admit(conn)
    attempt.principal = caller.principal
    require(caller.principal, "calc:run")
    if caller.principal.widget_session and route.kind not in WIDGET_ROUTES:
        raise Forbidden(f"A widget session runs the widget's calculations only ({', '.join(sorted(WIDGET_ROUTES))}); "
                        f"use an API key for {route.kind}.")
    # 2. price
    check_json(scope)
    raw = await read_body(receive)
    explain = route.explain and wants_explain(scope["query_string"])
    check_body(raw)  # duplicate keys (400) and control characters (422), as on every route (app.jsonbody)
    req = attempt.req = route.apply_policy(route.parse(raw, svc), caller)
    if route.prepare is not None:
        req = attempt.req = await route.prepare(req, caller, svc)
    work = route.price(req, explain)
    if work.heavy and work.cpu_us > svc.pool.budget_s * 1e6:
        raise_too_costly(work, svc.pool.budget_s)  # refused before it is charged, like a cost above the burst
    # 3. charge (before anything runs)
    await svc.ratelimits.charge(conn, caller, work.units)
    attempt.units = work.units
    # 4. execute: cache, inline or pool
    cache = svc.result_cache
    key = route.cache_key(caller, req, raw, explain) if work.cacheable else None
    if key is not None:
        hit = await cache.get(key, time.monotonic())
        if hit is not None:
            payload, calc_id = hit.fresh()
            svc.recorder.record(caller.principal, route.kind, raw, {"calculationId": calc_id},
                                payload if route.stores_payload else None, attempt.usage())
            await respond(send, 200, payload, (HIT,))
            return
    if work.heavy:
        outcome: Outcome = await svc.pool.run(run_in_worker, route, *route.pool_args(req, explain, caller, svc))
    else:
        outcome = route.execute(req, explain)
    # 5. record
    svc.recorder.record(caller.principal, route.kind, raw, outcome.summary,
                        outcome.payload if outcome.stored_payload else None, attempt.usage())
    # 6. respond
    if key is None:
        await respond(send, 200, outcome.payload)
        return
    cache.put(key, outcome.payload, outcome.summary.get("calculationId"), time.monotonic(), work.units)
    await respond(send, 200, outcome.payload, (MISS,))


def raise_too_costly(work: Work, budget_s: float) -> None:
    drivers = ", ".join(f"{k} {v}" for k, v in work.drivers.items())
    raise CpuBudgetExceeded(
        f"This calculation is priced at {work.cpu_us / 1e6:.1f} s of CPU ({drivers}); one request may use "
        f"at most {budget_s:.0f} s. Ask for fewer paths, observations or items.",
        errors=[{"field": k, "pointer": f"#/{k}", "code": "cpu_budget", "detail": f"{k} {v}"}
                for k, v in work.drivers.items()])


def run_in_worker(route: CalcRoute, *args: Any) -> Outcome:
    """The pool's entry point: the route's engine, called in a worker process."""
    return route.execute(*args)


class CalculationDispatch:
    """Pure-ASGI front of the calculation routes: POST to a declared path goes straight to the pipeline,
    everything else to the app. Sits inside the request-context and idempotency middleware."""

    def __init__(self, app: ASGIApp, routes: dict[str, CalcRoute]) -> None:
        self.app = app
        self.routes = {path: (route, RouteLabel(path)) for path, route in routes.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        route, scope["route"] = found  # the metrics middleware labels requests by scope["route"].path
        await handle(route, scope, receive, send)


@dataclass(frozen=True, slots=True)
class RouteLabel:
    """What Starlette's router would have put in scope["route"]: the path template, for metrics and logs."""

    path: str


async def handle(route: CalcRoute, scope: Scope, receive: Receive, send: Send) -> None:
    """The pipeline with its errors mapped to problems by the one mapping (app.errors). A calculation
    that fails after admission is a usage event too (status, latency, units charged), kept in the usage
    outbox (the calculations table holds answered calculations only)."""
    attempt = Attempt(time.perf_counter())
    try:
        await serve(route, scope, receive, send, attempt)
    except ClientDisconnect:
        return  # the client left: nobody to answer, nothing to log as an error
    except Exception as exc:
        rid = scope.get("state", {}).get("request_id")
        response = error_response(exc, rid, scope["path"]) or unexpected_response(exc, rid, scope["path"])
        if attempt.principal is not None:
            services(scope["app"]).usage.calculation_failed(attempt.principal, route.kind, response.status_code,
                                                            attempt.usage())
        await response(scope, receive, send)
