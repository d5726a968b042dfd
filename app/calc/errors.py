"""Errors raised by the pure calculation layer.

They carry the public (camelCase) field that caused them, because the field names are the API
contract; the HTTP layer maps them to problem+json once (app/errors.py).
"""

from __future__ import annotations


class CalcError(Exception):
    """Input that cannot produce a correct number."""

    code = "INVALID_INPUT"

    def __init__(self, field: str, detail: str, code: str | None = None) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail
        if code is not None:
            self.code = code

    def __reduce__(self) -> tuple[object, ...]:
        # Raised in a process-pool worker and re-raised in the server: keep every field across pickling.
        return (type(self), (self.field, self.detail, self.code))


class UnknownInstrument(CalcError):
    code = "UNKNOWN_INSTRUMENT"


class UnknownCurrency(CalcError):
    code = "UNKNOWN_CURRENCY"


class MissingRate(CalcError):
    code = "MISSING_CONVERSION_RATE"

    def __init__(self, field: str, detail: str, needed: str) -> None:
        super().__init__(field, detail)
        self.needed = needed

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.field, self.detail, self.needed))
