"""Domain errors and the one place that turns every error into RFC 9457 problem+json."""

from __future__ import annotations

import re
from typing import Any

import asyncpg
import orjson
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.calc.errors import CalcError, MissingRate
from app.db.errors import database_unreachable

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)

# slug -> (title, what it means); served at /problems/{slug} so every `type` URI resolves.
PROBLEM_TYPES: dict[str, tuple[str, str]] = {
    "validation-error": ("Request validation failed", "One or more fields are missing, malformed or out of range."),
    "malformed-json": ("Malformed JSON", "The request body is not valid JSON."),
    "invalid-input": ("Invalid calculation input", "The values are well-formed but cannot produce a result."),
    "unknown-instrument": ("Unknown instrument", "The symbol is not in the catalogue and no full spec was given."),
    "unknown-currency": ("Unknown currency", "The currency code is not an ISO 4217 code we support."),
    "missing-conversion-rate": ("Missing conversion rate", "A rate needed for a currency conversion was not given."),
    "payload-too-large": ("Payload too large", "The request body or batch exceeds the documented limit."),
    "not-found": ("Not found", "No resource at this path."),
    "method-not-allowed": ("Method not allowed", "The path exists but not for this HTTP method."),
    "unsupported-media-type": ("Unsupported media type", "Send the body as application/json."),
    "internal-error": ("Internal error", "An unexpected error; it has been logged with the request id."),
    "unauthorized": ("Unauthorized", "No valid API key or access token was presented."),
    "forbidden": ("Forbidden", "The credential is valid but may not do this."),
    "origin-not-allowed": ("Origin not allowed", "The page's origin is not on the broker's allow-list."),
    "conflict": ("Conflict", "The request conflicts with the current state of the resource."),
    "mfa-required": ("MFA required", "This account needs a one-time code from its authenticator."),
    "too-many-attempts": ("Too many attempts", "Too many failed attempts; wait before trying again."),
    "sso-error": ("SSO error", "The single sign-on exchange failed or its state did not match."),
    "service-unavailable": ("Service unavailable", "A dependency is down; retry after the indicated time."),
    "cpu-budget-exceeded": ("CPU budget exceeded", "The calculation needs more CPU than one request may use; "
                            "ask for fewer paths, observations or items."),
    "quote-unavailable": ("Quote unavailable", "No provider of the broker's quote chain has a fresh quote the "
                          "calculation needs; send the price or rate in the request."),
    "quote-providers-unavailable": ("Quote providers unavailable", "A market-data provider of the broker's chain "
                                    "failed; retry after the indicated time, or send the rate in the request."),
    "rate-limited": ("Rate limit exceeded", "The tier's request budget is used up; retry after the indicated time."),
    "billing-unavailable": ("Billing unavailable", "This deployment has no Stripe account configured "
                            "(STRIPE_API_KEY), or Stripe could not be reached; retry later."),
    "webhook-signature-invalid": ("Webhook signature invalid", "The Stripe-Signature header does not match the "
                                  "body and the endpoint's secret, or its timestamp is too old."),
    "idempotency-key-invalid": ("Invalid Idempotency-Key", "The key must be 1 to 255 visible ASCII characters, "
                                "sent once."),
    "idempotency-key-reused": ("Idempotency-Key reused", "The key was already used with a different request "
                               "or by another credential; send a new key."),
    "idempotency-key-in-flight": ("Request in progress", "A request with this key is still running; retry "
                                  "after the indicated time."),
}


class AppError(Exception):
    """Base for domain errors raised by services; mapped once to problem+json."""

    status = 400
    slug = "invalid-input"
    # Extra response headers (e.g. Retry-After) a subclass wants on its problem response.
    headers: dict[str, str] | None = None

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []

    def __reduce__(self) -> tuple[object, ...]:
        # Raised in a process-pool worker and re-raised in the server: keep detail and errors.
        return (_rebuild, (type(self), self.detail, self.errors))


def _rebuild(cls: type[AppError], detail: str, errors: list[dict[str, Any]]) -> AppError:
    exc = cls.__new__(cls)
    AppError.__init__(exc, detail, errors=errors)
    return exc


class Unauthorized(AppError):
    status = 401
    slug = "unauthorized"

    def __init__(self, detail: str = "Missing or invalid credentials.", *,
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail, errors=errors)


class Forbidden(AppError):
    status = 403
    slug = "forbidden"


class OriginNotAllowed(AppError):
    status = 403
    slug = "origin-not-allowed"


class NotFound(AppError):
    """Also what another tenant's object looks like: same status, same body shape, nothing confirms it exists."""

    status = 404
    slug = "not-found"


class Conflict(AppError):
    """409: the request is well-formed but clashes with what exists (a rotated key, a taken name)."""

    status = 409
    slug = "conflict"


class InvalidField(AppError):
    """A well-formed value the domain refuses (a duplicate email, an unknown config key)."""

    status = 422
    slug = "validation-error"

    def __init__(self, field: str, detail: str, code: str = "invalid") -> None:
        loc = tuple(field.split("."))
        super().__init__(f"Invalid field(s): {field}",
                         errors=[{"field": field, "pointer": pointer(loc), "code": code, "detail": detail}])


class MfaRequired(AppError):
    status = 401
    slug = "mfa-required"


class TooManyAttempts(AppError):
    status = 429
    slug = "too-many-attempts"


class RateLimited(AppError):
    """429; the RateLimit headers and Retry-After come from the decision the middleware attaches."""

    status = 429
    slug = "rate-limited"


class SsoError(AppError):
    status = 400
    slug = "sso-error"


class ServiceUnavailable(AppError):
    status = 503
    slug = "service-unavailable"


class BillingUnavailable(AppError):
    status = 503
    slug = "billing-unavailable"
    headers = {"Retry-After": "60"}


class WebhookSignatureInvalid(AppError):
    status = 400
    slug = "webhook-signature-invalid"


class PayloadTooLarge(AppError):
    status = 413
    slug = "payload-too-large"


class MalformedJSON(AppError):
    status = 400
    slug = "malformed-json"


class UnsupportedMediaType(AppError):
    status = 415
    slug = "unsupported-media-type"


def pointer(loc: tuple[Any, ...] | list[Any]) -> str:
    """JSON pointer (RFC 6901) fragment for a pydantic error location."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "#/" + "/".join(parts) if parts else "#"


def dotted(loc: tuple[Any, ...] | list[Any]) -> str:
    out = ""
    for p in loc:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def problem(
    request_id: str | None,
    status: int,
    slug: str,
    detail: str,
    *,
    instance: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    title = PROBLEM_TYPES.get(slug, ("Error", ""))[0]
    body: dict[str, Any] = {
        "type": f"/problems/{slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if errors:
        body["errors"] = errors
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


_UNION_TAG = re.compile(r"^(constrained-)?(float|int|str|bool|list\[.*|dict\[.*|function-.*|union\[.*|[A-Z]\w*)$")


def _is_tag(part: Any) -> bool:
    # Union members add their type name to the location (e.g. takeProfit.constrained-float); the
    # client's own path has no such part. An all-capitals key (a symbol like EURUSD in
    # conversionRates) is the client's, so only names that look like types are dropped.
    if not isinstance(part, str) or not _UNION_TAG.match(part):
        return False
    return not (part.isupper() and part.isalpha())


def _errors_from_pydantic(raw: list[Any], prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for e in raw:
        parts = [p for p in e.get("loc", ()) if p != "body"]
        loc = tuple(prefix) + tuple(p for p in parts if not _is_tag(p))
        msg = str(e.get("msg", "invalid value"))
        ctx = e.get("ctx") or {}
        if e.get("type") == "value_error" and "error" in ctx:
            msg = str(ctx["error"])
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        key = dotted(loc) or "body"
        if key in seen:  # one entry per field: the first union member's complaint is enough
            continue
        seen.add(key)
        out.append({"field": key, "pointer": pointer(loc), "code": e.get("type"), "detail": msg})
    return out


def validation_problem(request_id: str | None, raw: list[Any], instance: str | None) -> Response:
    if any(e.get("type") in ("json_invalid", "json_type") for e in raw):
        e = next(e for e in raw if e.get("type") in ("json_invalid", "json_type"))
        detail = str(e.get("msg", "invalid JSON"))
        return problem(request_id, 400, "malformed-json", detail, instance=instance,
                       errors=[{"field": "body", "pointer": "#", "code": e.get("type"), "detail": detail}])
    errors = _errors_from_pydantic(raw)
    fields = ", ".join(dict.fromkeys(err["field"] for err in errors))
    return problem(request_id, 422, "validation-error", f"Invalid field(s): {fields}", instance=instance,
                   errors=errors)


def calc_problem(request_id: str | None, exc: CalcError, instance: str | None, index: int | None = None) -> Response:
    return problem(request_id, 422, calc_slug(exc), exc.detail, instance=instance,
                   errors=[calc_error_item(exc, index)])


def calc_slug(exc: CalcError) -> str:
    return {
        "UNKNOWN_INSTRUMENT": "unknown-instrument",
        "UNKNOWN_CURRENCY": "unknown-currency",
        "MISSING_CONVERSION_RATE": "missing-conversion-rate",
    }.get(exc.code, "invalid-input")


def calc_error_item(exc: CalcError, index: int | None = None) -> dict[str, Any]:
    loc: tuple[Any, ...] = tuple(exc.field.split("."))
    if index is not None:
        loc = ("items", index, *loc)
    item: dict[str, Any] = {"field": dotted(loc), "pointer": pointer(loc), "code": exc.code, "detail": exc.detail}
    if isinstance(exc, MissingRate):
        item["neededRate"] = exc.needed
    return item


def request_id_of(request: Request) -> str | None:
    rid = request.scope.get("state", {}).get("request_id")
    return str(rid) if rid else None


def app_error_response(exc: AppError, request_id: str | None, instance: str | None) -> Response:
    """The one mapping of a domain error to its problem response (handlers and pure-ASGI middleware)."""
    headers = {"WWW-Authenticate": 'Bearer realm="forexrisk"'} if exc.status == 401 else None
    if exc.status == 503:
        headers = {"Retry-After": "5"}
    if exc.headers:
        headers = {**(headers or {}), **exc.headers}
    return problem(request_id, exc.status, exc.slug, exc.detail, instance=instance, errors=exc.errors,
                   headers=headers)


def error_response(exc: BaseException, request_id: str | None, instance: str | None) -> Response | None:
    """The one mapping of an exception to its problem response: domain errors, engine errors and
    validation errors; None for anything else (an unexpected error, logged by the caller as a 500)."""
    if isinstance(exc, AppError):
        return app_error_response(exc, request_id, instance)
    if isinstance(exc, CalcError):
        return calc_problem(request_id, exc, instance)
    if isinstance(exc, ValidationError | RequestValidationError):
        return validation_problem(request_id, list(exc.errors()), instance)
    if database_unreachable(exc):  # stored data while Postgres is down: retry later, not a 500
        log.warning("database_unreachable", path=instance, error=f"{type(exc).__name__}: {exc}")
        return app_error_response(ServiceUnavailable("Stored data cannot be reached right now (database "
                                                     "unavailable); retry after the indicated time."),
                                  request_id, instance)
    return None


def unexpected_response(exc: BaseException, request_id: str | None, instance: str) -> Response:
    log.error("unhandled_error", path=instance, exc_info=exc)
    return problem(request_id, 500, "internal-error", "Unexpected error; quote the request id when reporting it.",
                   instance=instance)


def install_error_handlers(app: FastAPI) -> None:
    async def on_error(request: Request, exc: Exception) -> Response:
        mapped = error_response(exc, request_id_of(request), request.url.path)
        return mapped if mapped is not None else unexpected_response(exc, request_id_of(request), request.url.path)

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large",
                415: "unsupported-media-type"}.get(exc.status_code, "invalid-input")
        return problem(request_id_of(request), exc.status_code, slug, str(exc.detail),
                       instance=request.url.path, headers=dict(exc.headers or {}))

    # Database errors are named so they are answered here (503 when Postgres is unreachable) instead of
    # passing through the outermost server-error layer.
    for kind in (AppError, CalcError, ValidationError, RequestValidationError, OSError, SQLAlchemyError,
                 asyncpg.PostgresError, asyncpg.InterfaceError, Exception):
        app.add_exception_handler(kind, on_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
