"""Idempotency's domain errors; app.errors.app_error_response maps them (and every other AppError) once."""

from __future__ import annotations

from app.errors import AppError

HEADER = "Idempotency-Key"


def _field(code: str, detail: str) -> list[dict[str, str]]:
    return [{"field": HEADER, "pointer": "#", "code": code, "detail": detail}]


class IdempotencyKeyInvalid(AppError):
    status = 400
    slug = "idempotency-key-invalid"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=_field("invalid", detail))


class IdempotencyKeyReused(AppError):
    """The draft's 422: the key is bound to another request (body, path, query or credential)."""

    status = 422
    slug = "idempotency-key-reused"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=_field("reused", detail))


class IdempotencyKeyInFlight(AppError):
    """The draft's 409: the first request with this key has not finished yet."""

    status = 409
    slug = "idempotency-key-in-flight"
    headers = {"Retry-After": "1"}

    def __init__(self) -> None:
        detail = "A request with this Idempotency-Key is still in progress; retry shortly."
        super().__init__(detail, errors=_field("in_flight", detail))
