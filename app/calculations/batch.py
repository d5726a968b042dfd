"""POST /calculate/batch: many position sizes in one request, each item failing on its own."""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from app.calc.errors import CalcError
from app.calc.sizing import CONVENTIONS_VERSION, item_conventions
from app.calculations import batch_fast, service
from app.calculations import schemas as s
from app.calculations.common import new_id, rate_table
from app.errors import AppError, MalformedJSON, PayloadTooLarge, _errors_from_pydantic, calc_error_item, calc_slug
from app.policy import BrokerPolicy
from app.schemas import ConversionRates

_RATES = TypeAdapter(ConversionRates)
_TOP_KEYS = frozenset({"items", "columns", "conversionRates", "format", "fields"})


BATCH_FIELDS = batch_fast.OUT_FIELDS



class BatchInvalid(AppError):
    status = 422
    slug = "validation-error"


@dataclass(slots=True)
class Batch:
    n: int
    items: list[Any] | None              # row format
    columns: dict[str, Any] | None       # column format: field -> list (or one value for every item)
    rates: dict[str, Any] | None
    fmt: str
    fields: tuple[str, ...]

    def item(self, i: int) -> Any:
        if self.items is not None:
            return self.items[i]
        assert self.columns is not None
        row = {k: (v[i] if isinstance(v, list) else v) for k, v in self.columns.items()}
        return {k: v for k, v in row.items() if v is not None}


def parse(body: bytes, limit: int) -> Batch:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJSON(f"Invalid JSON: {exc}", errors=[{"field": "body", "pointer": "#",
                                                             "code": "json_invalid", "detail": str(exc)}]) from None
    if not isinstance(doc, dict):
        raise BatchInvalid("The body must be an object with `items` or `columns`.",
                           errors=[_err("body", "#", "model_type", "expected an object")])
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise BatchInvalid(f"Unknown field(s): {', '.join(unknown)}",
                           errors=[_err(k, f"#/{k}", "extra_forbidden", "unknown field") for k in unknown])
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
    items, columns = doc.get("items"), doc.get("columns")
    if (items is None) == (columns is None):
        raise BatchInvalid("Give `items` (a list of position-size requests) or `columns`, not both.",
                           errors=[_err("items", "#/items", "missing", "give items or columns")])
    if items is not None:
        if not isinstance(items, list) or not items:
            raise BatchInvalid("`items` must be a non-empty list.",
                               errors=[_err("items", "#/items", "list_type", "a non-empty list of position sizes")])
        n = len(items)
        field = "items"
    else:
        n = _column_length(columns)
        field = "columns"
    if n > limit:
        raise PayloadTooLarge(f"A batch holds at most {limit} items (got {n}).",
                              errors=[_err(field, f"#/{field}", "too_long", f"at most {limit} items")])
    fields = doc.get("fields", BATCH_FIELDS)
    if not isinstance(fields, list | tuple) or not fields or not all(f in BATCH_FIELDS for f in fields
                                                                      if isinstance(f, str)) \
            or not all(isinstance(f, str) for f in fields):
        raise BatchInvalid("`fields` is a non-empty list of result fields.",
                           errors=[_err("fields", "#/fields", "literal_error",
                                        f"choose from {', '.join(BATCH_FIELDS)}")])
    return Batch(n, items, columns, rates, fmt, tuple(dict.fromkeys(fields)))


def slow_items(b: Batch) -> int:
    """How many items the vectorised kernel cannot take (they run one by one): the cost model needs it
    before the batch runs. Row items with options outside the column set; columns are all fast."""
    if b.items is None:
        return 0
    fast = batch_fast.FAST_KEYS
    return sum(1 for d in b.items if type(d) is not dict or not d.keys() <= fast)


def _column_length(columns: Any) -> int:
    if not isinstance(columns, dict) or not columns:
        raise BatchInvalid("`columns` must be an object of field -> list.",
                           errors=[_err("columns", "#/columns", "dict_type", "an object of field -> list")])
    unknown = sorted(set(columns) - batch_fast.FAST_KEYS)
    if unknown:
        raise BatchInvalid(
            f"Column(s) not available in the column format: {', '.join(unknown)}; send `items` for them.",
            errors=[_err(f"columns.{k}", f"#/columns/{k}", "extra_forbidden",
                         f"columns take {', '.join(sorted(batch_fast.FAST_KEYS))}") for k in unknown])
    lengths = {k: len(v) for k, v in columns.items() if isinstance(v, list)}
    if not lengths:
        raise BatchInvalid("At least one column must be a list.",
                           errors=[_err("columns", "#/columns", "list_type", "at least one list column")])
    n = max(lengths.values())
    short = sorted(k for k, m in lengths.items() if m != n)
    if short or n == 0:
        raise BatchInvalid("Every list column must have the same, non-zero length.",
                           errors=[_err(f"columns.{k}", f"#/columns/{k}", "length_mismatch",
                                        f"expected {n} values") for k in short or list(lengths)])
    return n


def _err(field: str, ptr: str, code: str, detail: str) -> dict[str, Any]:
    return {"field": field, "pointer": ptr, "code": code, "detail": detail}


def item_error(index: int, status: int, slug: str, detail: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": f"/problems/{slug}", "status": status, "detail": detail, "errors": errors}


def scalar_item(index: int, item: Any, shared: dict[str, Any] | None, explain: bool = False,
                policy: BrokerPolicy | None = None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One item through the full single-request path: (result, None) or (None, error)."""
    prefix = ("items", index)
    try:
        if isinstance(item, dict) and shared and "conversionRates" not in item:
            item = {**item, "conversionRates": shared}
        req = s.PositionSizeRequest.model_validate(item, strict=True)
        if policy is not None:
            req = policy.apply(req)
        out = service.position_size(req, explain)
        return out, None
    except ValidationError as exc:
        errs = _errors_from_pydantic(list(exc.errors()), prefix)
        fields = ", ".join(dict.fromkeys(e["field"] for e in errs))
        return None, item_error(index, 422, "validation-error", f"Invalid field(s): {fields}", errs)
    except CalcError as exc:
        return None, item_error(index, 422, calc_slug(exc), exc.detail, [calc_error_item(exc, index)])



def run(body: bytes, limit: int, explain: bool = False, policy: BrokerPolicy | None = None) -> bytes:
    return run_with_summary(body, limit, explain, policy)[0]


def run_with_summary(body: bytes, limit: int, explain: bool = False,
                     policy: BrokerPolicy | None = None) -> tuple[bytes, dict[str, Any]]:
    """The response body and its head (calculationId, counts) for the calculation store."""
    # The cyclic garbage collector would walk the parsed batch (hundreds of thousands of objects)
    # several times per request; nothing here creates reference cycles, so pause it for the call.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _run(body, limit, explain, policy or BrokerPolicy())
    finally:
        if enabled:
            gc.enable()


def _run(body: bytes, limit: int, explain: bool, policy: BrokerPolicy) -> tuple[bytes, dict[str, Any]]:
    """Plain items go through the vectorised fast path; the others (unusual options, and every item
    that fails validation) through the single-request path, so both give the same numbers and errors.
    Each result has the fields of BATCH_FIELDS; `conventions` is given once for the batch."""
    b = parse(body, limit)
    n, shared, fmt = b.n, b.rates, b.fmt
    cols: dict[str, Any]
    cand: list[int]
    if explain or not policy.trivial:
        # The steps, and a broker's own policy (overrides, leverage cap), come from the single-request
        # path, item by item: the vectorised kernel knows the catalogue defaults only.
        cand, cols, rest = [], {}, list(range(n))
        if explain:
            b.fields = (*b.fields, "explain")
    elif b.items is not None:
        cand, cols, rest = batch_fast.columns_of(b.items)
    else:
        assert b.columns is not None
        cand, rest = list(range(n)), []
        cols = dict(b.columns)
    fast = batch_fast.compute(cand, cols, rate_table(shared), rest, b.fields)
    errors: dict[int, dict[str, Any]] = {}
    columns: dict[str, Any]
    if len(fast.indices) == n:  # every item took the fast path: its columns are the answer
        columns = fast.columns
        ok = [True] * n
    else:
        columns = {name: [None] * n for name in b.fields}
        ok = [False] * n
        for name, values in fast.columns.items():
            if name not in columns:
                continue
            col = columns[name]
            for i, v in zip(fast.indices, values.tolist() if hasattr(values, "tolist") else values, strict=True):
                col[i] = v
        for i in fast.indices:
            ok[i] = True
    for i in fast.rest:
        res, err = scalar_item(i, b.item(i), shared, explain, policy)
        if res is not None:
            ok[i] = True
            res["conventions"] = item_conventions(res["conventions"])
            for name in b.fields:
                columns[name][i] = res[name]
        else:
            assert err is not None
            errors[i] = err
    succeeded = sum(ok)
    head: dict[str, Any] = {"calculationId": new_id(), "count": n, "succeeded": succeeded,
                            "failed": n - succeeded, "conventions": CONVENTIONS}
    summary = dict(head)
    if fmt == "columns":
        head["columns"] = {name: columns[name] for name in b.fields}
        head["errors"] = [{"index": i, **err} for i, err in sorted(errors.items())]
        return orjson.dumps(head, option=orjson.OPT_SERIALIZE_NUMPY), summary
    names = b.fields
    lists = [c.tolist() if hasattr(c, "tolist") else c for c in (columns[name] for name in names)]
    rows = zip(*lists, strict=True)
    head["results"] = [
        {"index": i, "ok": True, "result": dict(zip(names, row, strict=True))} if ok[i]
        else {"index": i, "ok": False, "error": errors[i]}
        for i, row in enumerate(rows)
    ]
    return orjson.dumps(head), summary


CONVENTIONS = {
    "version": CONVENTIONS_VERSION,
    "note": "Each item follows the conventions of POST /position-size for its own options "
            "(defaults: conversionAt entry, rateSide mid, lotRounding down, minLotPolicy raise); each item "
            "echoes its own choices in `conventions` and the rates it used in `ratesUsed`.",
    "conversion": "shortest path in the graph of conversionRates plus the instrument's own price (fewest hops, "
                  "then USD, EUR, alphabetical)",
    "direction": "from the levels, else direction; with neither long is assumed and flagged DIRECTION_ASSUMED",
}
