"""The one strict reading of request input, shared by the calculation pipeline and every FastAPI route.

- A JSON object with the same key twice is a 400 `malformed-json` problem naming the key: parsers
  disagree on which copy wins (Python and orjson keep the last, others the first), so an intermediary
  that validated one copy could be fooled by the other.
- A control character (U+0000-U+001F, U+007F-U+009F) in any string, key or value, at any depth, and
  in any query or path parameter, is a 422 `validation-error` naming the field. NUL cannot be stored by
  Postgres (it answered 500); the others have no business in names, emails, symbols or URLs.

JSON cannot carry a raw control character inside a string (the parser refuses it), so one can only
arrive escaped (`\\u0000`, `\\n`) or as the UTF-8 of DEL or a C1 control: the value walk runs only
when the raw bytes hold a backslash, 0x7F or 0xC2. The duplicate check needs the object's pairs,
so it is one extra parse with the standard library (about 8 us for a position size, 26 ms for a
10,000-item batch).

`check` first tries a proof that needs no pairs (`proven_clean`, orjson, about 5x cheaper): without a
backslash every string is written verbatim, so each `:` byte of the body is either the separator of
one object member or inside a string, and orjson writing the parsed value back gives one `:` per
member it kept plus the same strings' colons. A duplicate key is a member the parser dropped, so the
two counts are equal only when nothing was dropped. Anything else (a backslash, DEL or C1 bytes,
JSON orjson refuses, unequal counts) goes to the full check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import orjson
from fastapi import HTTPException
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from app.errors import AppError, InvalidField, MalformedJSON, dotted, pointer

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_MAYBE_CONTROL = (b"\\", b"\x7f", b"\xc2")


class _Duplicate(Exception):
    pass


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as its pairs, in order (only to find where a duplicate is)."""


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Duplicate
    return out


def _duplicate_at(node: Any, path: tuple[Any, ...]) -> tuple[tuple[Any, ...], str] | None:
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, _value in node:
            if key in seen:
                return path, key
            seen.add(key)
        for key, value in node:
            found = _duplicate_at(value, (*path, key))
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _duplicate_at(value, (*path, i))
            if found is not None:
                return found
    return None


def _printable(text: str) -> str:
    return CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def control_error(path: tuple[Any, ...]) -> InvalidField:
    field = dotted(tuple(_printable(p) if isinstance(p, str) else p for p in path)) or "body"
    error = InvalidField(field, "control characters (U+0000-U+001F, U+007F-U+009F) are not allowed",
                         "control_character")
    error.errors[0]["pointer"] = pointer(path)
    return error


def _control_at(node: Any, path: tuple[Any, ...]) -> tuple[Any, ...] | None:
    if isinstance(node, str):
        return path if CONTROL.search(node) else None
    if isinstance(node, dict):
        for key, value in node.items():
            if CONTROL.search(key):
                return (*path, key)
            found = _control_at(value, (*path, key))
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _control_at(value, (*path, i))
            if found is not None:
                return found
    return None


def loads(raw: bytes) -> Any:
    """The body's JSON value, or the problem that refuses it. Invalid JSON raises json.JSONDecodeError
    (or UnicodeDecodeError), which each caller already turns into its malformed-JSON answer."""
    try:
        doc = json.loads(raw, object_pairs_hook=_unique_object)
    except _Duplicate:
        found = _duplicate_at(json.loads(raw, object_pairs_hook=_Pairs), ())
        path, key = found if found is not None else ((), "?")
        where = dotted(path)
        raise MalformedJSON(
            f"Duplicate key {key!r} in {'the body' if not where else where}: send each key once.",
            errors=[{"field": dotted((*path, key)), "pointer": pointer((*path, key)), "code": "duplicate_key",
                     "detail": "the key appears more than once in its object"}]) from None
    if any(marker in raw for marker in _MAYBE_CONTROL):
        bad = _control_at(doc, ())
        if bad is not None:
            raise control_error(bad)
    return doc


def proven_clean(raw: bytes) -> bool:
    """True only when `raw` is JSON with no duplicate key and no control character (see the module's
    docstring for why the colon counts prove it); False means "not proven", not "refused"."""
    if any(marker in raw for marker in _MAYBE_CONTROL):
        return False
    try:
        kept = orjson.dumps(orjson.loads(raw)).count(b":")
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # refused or too deep for orjson: not proven
        return False
    return kept == raw.count(b":")


def check(raw: bytes) -> None:
    """Refuse duplicate keys and control characters; invalid JSON is left to the caller's own parser (its
    message stays the one it always gave)."""
    if proven_clean(raw):
        return
    try:
        loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return


def check_params(items: Iterable[tuple[str, str]], where: str) -> None:
    """Query or path parameters: the same refusal of control characters, naming the parameter."""
    for name, value in items:
        if CONTROL.search(name) or CONTROL.search(value):
            error = InvalidField(_printable(name), f"control characters are not allowed in a {where} parameter",
                                 "control_character")
            error.errors[0]["pointer"] = f"{where}:{_printable(name)}"
            raise error


class _Refused(HTTPException):
    """Carries a refusal out of FastAPI's body reading, which re-raises HTTPExceptions untouched (anything
    else it turns into a bare 400)."""

    def __init__(self, error: AppError) -> None:
        super().__init__(error.status, error.detail)
        self.error = error


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = loads(body)
            except AppError as exc:
                raise _Refused(exc) from None
        return self._json


class StrictRoute(APIRoute):
    """The route class of every FastAPI router: bodies read by `loads`, query and path parameters checked
    for control characters, before the endpoint or any dependency runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            check_params(request.query_params.multi_items(), "query")
            check_params(((k, str(v)) for k, v in request.path_params.items()), "path")
            try:
                return await handler(StrictJsonRequest(request.scope, request.receive, request._send))
            except _Refused as refused:
                raise refused.error from None

        return strict
