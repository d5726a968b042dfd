"""Fast path of the batch: plain items (the common fields only) become columns and go through the
NumPy kernel in one pass. Anything else, and every item that would fail, takes the single-request
path instead, so errors and unusual options behave exactly as in POST /position-size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from app.calc import batch as kernel
from app.calc.conversion import Quote, RateTable
from app.calc.errors import CalcError
from app.calc.flags import flag
from app.calc.instruments import CURRENCIES, InstrumentSpec, resolve
from app.calc.leverage import ESMA_CAPS, regulatory_cap
from app.calc.numbers import step_decimals
from app.calc.sizing import own_pair
from app.calculations.schemas import PositionSizeRequest

NUM = ("accountBalance", "entryPrice", "stopLoss", "stopLossPips", "riskPercentage", "riskAmount", "leverage",
       "commissionPerLot")
STR = ("accountCurrency", "currencyPair", "direction", "minLotPolicy", "jurisdiction")
FAST_KEYS = frozenset(NUM + STR)
REQUIRED = ("accountBalance", "entryPrice")
NUM_TYPES = frozenset({float, int, type(None)})
LITERALS = {"direction": {None, "long", "short"}, "minLotPolicy": {None, "raise", "refuse"},
            "jurisdiction": {None, "esma", "fca", "asic", "nfa", "none"}}


def _bounds() -> dict[str, tuple[float, bool, float]]:
    """(low, low exclusive, high) per numeric field, read from the request model's JSON schema so the
    fast path can never accept what the model would refuse."""
    props = PositionSizeRequest.model_json_schema(by_alias=True)["properties"]
    out: dict[str, tuple[float, bool, float]] = {}
    for name in NUM:
        sch = props[name]
        sch = next((s for s in sch.get("anyOf", [sch]) if s.get("type") == "number"), sch)
        if "exclusiveMinimum" in sch:
            low, excl = float(sch["exclusiveMinimum"]), True
        else:
            low, excl = float(sch.get("minimum", -math.inf)), False
        out[name] = (low, excl, float(sch.get("maximum", math.inf)))
    return out


BOUNDS = _bounds()


@dataclass(slots=True)
class FastResult:
    indices: list[int]                 # item positions computed here, in order
    columns: dict[str, list[Any]]      # output field -> values, aligned with indices
    rest: list[int] = field(default_factory=list)  # items for the single-request path


def _numeric(ds: list[dict[str, Any]], name: str, ok: NDArray[np.bool_]) -> NDArray[np.float64]:
    vals = [d.get(name) for d in ds]
    if not set(map(type, vals)) <= NUM_TYPES:  # strings, booleans, objects: the model reports them
        bad = np.fromiter((type(v) not in NUM_TYPES for v in vals), dtype=bool, count=len(vals))
        ok &= ~bad
        vals = [v if type(v) in NUM_TYPES else None for v in vals]
    try:
        arr = np.array(vals, dtype=np.float64)
    except OverflowError:  # an integer beyond float range
        arr = np.array([float(v) if v is not None and abs(v) < 1e300 else math.nan for v in vals])
        ok &= np.array([v is None or abs(v) < 1e300 for v in vals])
    low, excl, high = BOUNDS[name]
    present = ~np.isnan(arr)
    with np.errstate(invalid="ignore"):
        out_of_range = present & (((arr <= low) if excl else (arr < low)) | (arr > high) | ~np.isfinite(arr))
    ok &= ~out_of_range
    return arr


def _lookup(vals: list[Any], cache: dict[Any, Any], make: Any) -> list[Any]:
    out: list[Any] = []
    for v in vals:
        if type(v) is not str:
            out.append(None)
            continue
        hit = cache.get(v, cache)
        if hit is cache:
            hit = cache[v] = make(v)
        out.append(hit)
    return out


def _spec(symbol: str) -> InstrumentSpec | None:
    try:
        return resolve(symbol)
    except CalcError:
        return None


def _currency(raw: str) -> str | None:
    c = raw.strip().upper()
    return c if c in CURRENCIES else None


def _power_law(table: RateTable, spec: InstrumentSpec, src: str, account: str) -> tuple[float, int] | None:
    """X(src -> account) as c x price^e (e in -1, 0, 1), price being the instrument's own rate when
    the shared table lacks it; None when a rate is missing."""
    pair = own_pair(spec)
    try:
        if pair is None or table.has(*pair):
            return table.convert_factor(src, account), 0
        t1, t2 = table.copy(), table.copy()
        t1.set(pair[0], pair[1], Quote(1.0, 1.0))
        t2.set(pair[0], pair[1], Quote(2.0, 2.0))
        x1, x2 = t1.convert_factor(src, account), t2.convert_factor(src, account)
    except CalcError:
        return None
    ratio = x2 / x1
    e = 1 if abs(ratio - 2.0) < 1e-9 else (-1 if abs(ratio - 0.5) < 1e-9 else 0)
    return x1, e


def _apply(c: NDArray[np.float64], e: NDArray[np.int64], price: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.where(e == 1, c * price, np.where(e == -1, c / price, c))
    return out


def compute(items: list[Any], shared: RateTable) -> FastResult:
    cand = [i for i, d in enumerate(items) if type(d) is dict and d.keys() <= FAST_KEYS]
    cand_set = set(cand)
    rest = [i for i in range(len(items)) if i not in cand_set] if len(cand) != len(items) else []
    if not cand:
        return FastResult([], {}, rest)
    ds = [items[i] for i in cand]
    n = len(ds)
    ok = np.ones(n, dtype=bool)
    num = {name: _numeric(ds, name, ok) for name in NUM}
    for name in REQUIRED:
        ok &= ~np.isnan(num[name])

    accounts = _lookup([d.get("accountCurrency") for d in ds], {}, _currency)
    specs = _lookup([d.get("currencyPair") for d in ds], {}, _spec)
    lits = {}
    for name, allowed in LITERALS.items():
        vals = [d.get(name) for d in ds]
        ok &= np.fromiter(((type(v) is str or v is None) and v in allowed for v in vals), dtype=bool, count=n)
        lits[name] = vals
    ok &= np.fromiter((a is not None and s is not None for a, s in zip(accounts, specs, strict=True)),
                      dtype=bool, count=n)

    balance, entry, sl, pips = num["accountBalance"], num["entryPrice"], num["stopLoss"], num["stopLossPips"]
    has_sl, has_pips = ~np.isnan(sl), ~np.isnan(pips)
    pct, amount = num["riskPercentage"], num["riskAmount"]
    has_pct, has_amt = ~np.isnan(pct), ~np.isnan(amount)
    ok &= has_sl ^ has_pips
    ok &= has_pct ^ has_amt
    ok &= ~(has_amt & (amount > balance))
    ok &= ~(has_sl & (sl == entry))
    given_dir = np.array([{"long": 1, "short": -1}.get(v, 0) for v in lits["direction"]])
    sl_long = sl < entry
    ok &= ~(has_sl & (((given_dir == 1) & ~sl_long) | ((given_dir == -1) & sl_long)))

    # Per-item instrument fields and per-(symbol, account) conversion laws.
    idx = np.flatnonzero(ok)
    combos: dict[tuple[str, str], int] = {}
    laws: list[tuple[tuple[float, int] | None, tuple[float, int] | None]] = []
    combo_of = np.zeros(n, dtype=np.int64)
    for k in idx:
        spec, acc = specs[k], accounts[k]
        key = (spec.symbol, acc)
        c = combos.get(key)
        if c is None:
            c = combos[key] = len(laws)
            q = _power_law(shared, spec, spec.quote, acc)
            m = _power_law(shared, spec, spec.margin_currency, acc) if spec.margin_mode == "fx" else q
            laws.append((q, m))
        combo_of[k] = c
    bad_combo = np.array([q is None or m is None for q, m in laws] or [False])
    ok[idx] &= ~bad_combo[combo_of[idx]]

    sel = np.flatnonzero(ok)
    rest += [cand[k] for k in np.flatnonzero(~ok)]
    rest.sort()
    if sel.size == 0:
        return FastResult([], {}, rest)
    sp = [specs[k] for k in sel]
    acc_sel = [accounts[k] for k in sel]
    contract = np.array([s.contract_size for s in sp])
    pip = np.array([s.pip_size for s in sp])
    step = np.array([s.lot_step for s in sp])
    scale = np.array([10.0 ** step_decimals(s.lot_step) for s in sp])
    cq = np.array([laws[c][0][0] for c in combo_of[sel]])
    eq = np.array([laws[c][0][1] for c in combo_of[sel]])
    cm = np.array([laws[c][1][0] for c in combo_of[sel]])
    em = np.array([laws[c][1][1] for c in combo_of[sel]])

    e_ = entry[sel]
    sl_ = sl[sel]
    is_sl = has_sl[sel]
    long_ = np.where(is_sl, sl_ < e_, given_dir[sel] != -1)
    # Stop distance exactly as the scalar path: r10 of the price difference, or pips x pipSize.
    distance = np.where(is_sl, kernel.r10(np.abs(e_ - np.where(is_sl, sl_, e_))), pips[sel] * pip)
    stop = np.where(is_sl, sl_, kernel.r10(np.where(long_, e_ - distance, e_ + distance)))
    stop_ok = stop > 0
    xq = _apply(cq, eq, e_)
    bal = balance[sel]
    target = np.where(has_pct[sel], bal * pct[sel] / 100.0, amount[sel])

    # Leverage: min(requested, regulatory cap); nothing given -> the ESMA retail cap (esma-default).
    juris = [lits["jurisdiction"][k] or "none" for k in sel]
    cap_cache: dict[tuple[str, str], float] = {}
    reg = np.array([cap_cache.setdefault((s.symbol, j), regulatory_cap(s, j)) for s, j in zip(sp, juris, strict=True)])
    requested = num["leverage"][sel]
    has_req = ~np.isnan(requested)
    esma = np.array([float(ESMA_CAPS[s.leverage_class]) for s in sp])
    applied = np.where(has_req, np.fmin(requested, reg), np.where(np.isfinite(reg), reg, esma))
    mrate = np.array([s.margin_rate for s in sp])
    mode = [s.margin_mode for s in sp]
    is_fx = np.array([m == "fx" for m in mode])
    is_cfd = np.array([m == "cfd" for m in mode])
    xm = _apply(cm, em, e_)
    notional_lot = np.where(is_fx, contract * xm, contract * e_ * xq)
    mpl = np.where(is_cfd, notional_lot * mrate, notional_lot / applied * mrate)

    policy = [lits["minLotPolicy"][k] for k in sel]
    res, bits = kernel.position_sizes(kernel.SizeArrays(
        balance=bal, entry=e_, distance=distance, target=target, commission=num["commissionPerLot"][sel]
        if not np.isnan(num["commissionPerLot"][sel]).all() else np.zeros(sel.size),
        xq=xq, contract=contract, pip=pip, lot_step=step, step_scale=scale,
        min_lot=np.array([s.min_lot for s in sp]), max_lot=np.array([s.max_lot for s in sp]),
        raise_min=np.array([p != "refuse" for p in policy]), margin_per_lot=mpl,
    ))
    # Items whose stop would sit at or below zero fail in the single-request path.
    keep = stop_ok
    if not keep.all():
        rest += [cand[k] for k in sel[~keep]]
        rest.sort()

    lev_capped = has_req & (applied < requested)
    flags_bits = bits | np.where(lev_capped, kernel.LEV_CAPPED, 0)
    rule = [_rule(h, a, r, j) for h, a, r, j in zip(has_req.tolist(), applied.tolist(), requested.tolist(), juris,
                                                    strict=True)]
    lots = res["lots"]
    r = kernel.r10
    cols: dict[str, Any] = {
        "direction": ["long" if x else "short" for x in long_.tolist()],
        "stopLoss": stop,
        "stopDistancePips": r(distance / pip),
        "positionSize": r(lots * contract),
        "lotSize": lots,
        "exactPositionSize": r(res["exact"] * contract),
        "exactLotSize": r(res["exact"]),
        "targetRiskAmount": r(target),
        "maxLoss": r(res["max_loss"]),
        "riskPercentage": r(res["risk_pct"]),
        "lossPerLot": r(res["loss_per_lot"]),
        "pipValue": r(res["pip_value"]),
        "pipValuePerLot": r(res["pip_value_per_lot"]),
        "requiredMargin": r(res["margin"]),
        "marginPercentage": r(res["margin_pct"]),
        "leverage": applied,
        "leverageCap": rule,
    }
    flag_lists: list[list[dict[str, Any]]] = [[] for _ in range(sel.size)]
    for k in np.flatnonzero(flags_bits):
        flag_lists[k] = _flags(int(flags_bits[k]), sp[k], float(target[k]), float(res["max_loss"][k]),
                               float(requested[k]), float(applied[k]), rule[k])
    cols["flags"] = flag_lists
    indices = [cand[k] for k in sel]
    del acc_sel
    if not keep.all():
        kidx = np.flatnonzero(keep)
        indices = [indices[k] for k in kidx]
        cols = {name: (v[keep] if isinstance(v, np.ndarray) else [v[k] for k in kidx]) for name, v in cols.items()}
    out_cols = {name: (v.tolist() if isinstance(v, np.ndarray) else v) for name, v in cols.items()}
    return FastResult(indices, out_cols, rest)


def _rule(has_req: bool, applied: float, requested: float, juris: str) -> str:
    if has_req and applied == requested:
        return "requested"
    if juris != "none":
        return juris
    return "esma-default"


def _flags(bits: int, spec: InstrumentSpec, target: float, max_loss: float, requested: float, applied: float,
           rule: str) -> list[dict[str, Any]]:
    from app.calc.numbers import r10

    data: dict[int, dict[str, Any]] = {
        kernel.CAPPED: {"maxLot": spec.max_lot}, kernel.RAISED: {"minLot": spec.min_lot},
        kernel.REFUSED: {"minLot": spec.min_lot},
        kernel.EXCEEDS: {"targetRisk": r10(target), "actualRisk": r10(max_loss)},
        kernel.ABOVE_10: {}, kernel.LEV_CAPPED: {"requested": requested, "applied": applied, "rule": rule},
    }
    return [flag(code, **data[bit]) for bit, code in kernel.FLAG_BITS.items() if bits & bit]
