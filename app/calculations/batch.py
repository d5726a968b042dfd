"""POST /calculate/batch: many position sizes in one request, each item failing on its own."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from app.calc.errors import CalcError
from app.calc.sizing import CONVENTIONS_VERSION
from app.calculations import batch_fast, service
from app.calculations import schemas as s
from app.errors import AppError, MalformedJSON, PayloadTooLarge, _errors_from_pydantic, calc_error_item, calc_slug
from app.schemas import ConversionRates

_RATES = TypeAdapter(ConversionRates)
_TOP_KEYS = frozenset({"items", "conversionRates", "format"})


class BatchInvalid(AppError):
    status = 422
    slug = "validation-error"


def parse(body: bytes, limit: int) -> tuple[list[Any], dict[str, Any] | None, str]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"Invalid JSON: {exc}", errors=[{"field": "body", "pointer": "#",
                                                             "code": "json_invalid", "detail": str(exc)}]) from None
    if not isinstance(doc, dict):
        raise BatchInvalid("The body must be an object with `items`.", errors=[_err("body", "#", "model_type",
                                                                                     "expected an object")])
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise BatchInvalid(f"Unknown field(s): {', '.join(unknown)}",
                           errors=[_err(k, f"#/{k}", "extra_forbidden", "unknown field") for k in unknown])
    items = doc.get("items")
    if not isinstance(items, list) or not items:
        raise BatchInvalid("`items` must be a non-empty list.", errors=[_err("items", "#/items", "list_type",
                                                                              "a non-empty list of position sizes")])
    if len(items) > limit:
        raise PayloadTooLarge(f"A batch holds at most {limit} items (got {len(items)}).",
                              errors=[_err("items", "#/items", "too_long", f"at most {limit} items")])
    fmt = doc.get("format", "rows")
    if fmt not in ("rows", "columns"):
        raise BatchInvalid("`format` is rows or columns.", errors=[_err("format", "#/format", "literal_error",
                                                                         "expected 'rows' or 'columns'")])
    rates = doc.get("conversionRates")
    if rates is not None:
        try:
            _RATES.validate_python(rates, strict=True)
        except ValidationError as exc:
            errs = _errors_from_pydantic(list(exc.errors()), ("conversionRates",))
            raise BatchInvalid("Invalid conversionRates.", errors=errs) from None
    return items, rates, fmt


def _err(field: str, ptr: str, code: str, detail: str) -> dict[str, Any]:
    return {"field": field, "pointer": ptr, "code": code, "detail": detail}


def item_error(index: int, status: int, slug: str, detail: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": f"/problems/{slug}", "status": status, "detail": detail, "errors": errors}


def scalar_item(index: int, item: Any, shared: dict[str, Any] | None) -> tuple[dict[str, Any] | None,
                                                                              dict[str, Any] | None]:
    """One item through the full single-request path: (result, None) or (None, error)."""
    prefix = ("items", index)
    try:
        if isinstance(item, dict) and shared and "conversionRates" not in item:
            item = {**item, "conversionRates": shared}
        req = s.PositionSizeRequest.model_validate(item, strict=True)
        out = service.position_size(req)
        return out, None
    except ValidationError as exc:
        errs = _errors_from_pydantic(list(exc.errors()), prefix)
        fields = ", ".join(dict.fromkeys(e["field"] for e in errs))
        return None, item_error(index, 422, "validation-error", f"Invalid field(s): {fields}", errs)
    except CalcError as exc:
        return None, item_error(index, 422, calc_slug(exc), exc.detail, [calc_error_item(exc, index)])


BATCH_FIELDS = ("direction", "stopLoss", "stopDistancePips", "positionSize", "lotSize", "exactPositionSize",
                "exactLotSize", "targetRiskAmount", "maxLoss", "riskPercentage", "lossPerLot", "pipValue",
                "pipValuePerLot", "requiredMargin", "marginPercentage", "leverage", "leverageCap", "flags")


def run(body: bytes, limit: int) -> bytes:
    """Plain items go through the vectorised fast path; the others (unusual options, and every item
    that fails validation) through the single-request path, so both give the same numbers and errors.
    Each result has the fields of BATCH_FIELDS; `conventions` is given once for the batch."""
    items, shared, fmt = parse(body, limit)
    n = len(items)
    fast = batch_fast.compute(items, service.rate_table(shared))
    columns: dict[str, list[Any]] = {name: [None] * n for name in BATCH_FIELDS}
    ok = [False] * n
    errors: dict[int, dict[str, Any]] = {}
    for name, values in fast.columns.items():
        col = columns[name]
        for i, v in zip(fast.indices, values, strict=True):
            col[i] = v
    for i in fast.indices:
        ok[i] = True
    for i in fast.rest:
        res, err = scalar_item(i, items[i], shared)
        if res is not None:
            ok[i] = True
            for name in BATCH_FIELDS:
                columns[name][i] = res[name]
        else:
            assert err is not None
            errors[i] = err
    succeeded = sum(ok)
    head: dict[str, Any] = {"calculationId": service.new_id(), "count": n, "succeeded": succeeded,
                            "failed": n - succeeded, "conventions": CONVENTIONS}
    if fmt == "columns":
        head["columns"] = columns
        head["errors"] = [{"index": i, **err} for i, err in sorted(errors.items())]
        return orjson.dumps(head)
    names = BATCH_FIELDS
    rows = zip(*(columns[name] for name in names), strict=True)
    head["results"] = [
        {"index": i, "ok": True, "result": dict(zip(names, row, strict=True))} if ok[i]
        else {"index": i, "ok": False, "error": errors[i]}
        for i, row in enumerate(rows)
    ]
    return orjson.dumps(head)


CONVENTIONS = {
    "version": CONVENTIONS_VERSION,
    "note": "Each item follows the conventions of POST /position-size for its own options "
            "(defaults: conversionAt entry, rateSide mid, lotRounding down, minLotPolicy raise).",
}
