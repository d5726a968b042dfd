"""Fast path of the batch: plain items (the common fields only) become columns and go through the
NumPy kernel in one pass. Anything else, and every item that would fail, takes the single-request
path instead, so errors and unusual options behave exactly as in POST /position-size.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from numpy.typing import NDArray

from app.calc import batch as kernel
from app.calc.conversion import Quote, RateTable
from app.calc.errors import CalcError
from app.calc.flags import flag
from app.calc.instruments import CURRENCIES, InstrumentSpec, resolve
from app.calc.leverage import ESMA_CAPS, regulatory_cap
from app.calc.numbers import r10, step_decimals
from app.calc.sizing import OWN_RATE_FLAG, item_conventions, own_pair
from app.calc.sizing import conventions as sizing_conventions
from app.calculations.schemas import PositionSizeRequest

NUM = ("accountBalance", "entryPrice", "stopLoss", "stopLossPips", "riskPercentage", "riskAmount", "leverage",
       "commissionPerLot")
STR = ("accountCurrency", "currencyPair", "direction", "minLotPolicy", "jurisdiction")
FAST_KEYS = frozenset(NUM + STR)
REQUIRED = ("accountBalance", "entryPrice")
# The result fields, in the order a row gives them.
OUT_FIELDS = ("direction", "stopLoss", "stopDistancePips", "positionSize", "lotSize", "exactPositionSize",
              "exactLotSize", "targetRiskAmount", "maxLoss", "riskPercentage", "lossPerLot", "pipValue",
              "pipValuePerLot", "requiredMargin", "marginPercentage", "leverage", "leverageCap", "flags",
              "ratesUsed", "conventions")
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
    columns: dict[str, Any]            # output field -> values (list or float array), aligned with indices
    rest: list[int] = field(default_factory=list)  # items for the single-request path


def _numeric(vals: Any, name: str, ok: NDArray[np.bool_]) -> NDArray[np.float64]:
    if not isinstance(vals, list):  # one value for every item (or the field is absent)
        vals = [vals]
        arr = _numeric(vals, name, ok[:1])
        if not ok[0]:
            ok[:] = False
        return np.full(ok.shape, arr[0])
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


MISSING = -2  # code of an absent (null) value; -1 is an invalid one


def _codes(vals: Any, make: Any, n: int) -> tuple[NDArray[np.int64], list[Any]]:
    """Map each value to a code into `table` (make(value) once per distinct string; invalid -> -1,
    null -> MISSING). One C-level dict lookup per item instead of per-item resolution; a single
    value (not a list) stands for every item."""
    if not isinstance(vals, list):
        one, made = _codes([vals], make, 1)
        return np.full(n, one[0]), made
    table: list[Any] = []
    index: dict[Any, int] = {None: MISSING}
    if set(map(type, vals)) <= {str, type(None)}:
        distinct: set[Any] = set(vals)
    else:  # numbers, objects or lists where a string belongs: those items are invalid
        distinct = {v for v in vals if type(v) is str}
        vals = [v if type(v) is str or v is None else _INVALID for v in vals]
        index[_INVALID] = -1
    for v in distinct:
        if v is None:
            continue
        made = make(v)
        if made is None:
            index[v] = -1
        else:
            index[v] = len(table)
            table.append(made)
    return np.fromiter(map(index.__getitem__, vals), dtype=np.int64, count=len(vals)), table


_INVALID = object()


def _spec(symbol: str) -> InstrumentSpec | None:
    try:
        return resolve(symbol)
    except CalcError:
        return None


def _currency(raw: str) -> str | None:
    c = raw.strip().upper()
    return c if c in CURRENCIES else None


def _power_law(table: RateTable, spec: InstrumentSpec, src: str, account: str,
               used: dict[str, None]) -> tuple[float, int] | None:
    """X(src -> account) as c x price^e (e in -1, 0, 1), price being the instrument's own rate when
    the shared table lacks it; None when a rate is missing. The path does not depend on the price (the
    graph's shape does not change), so one law serves every item. `used` collects the symbols used."""
    pair = own_pair(spec)
    try:
        if pair is None or table.has(*pair):
            t = table.copy()
            x = t.convert_factor(src, account, instrument=spec.symbol)
            used.update(dict.fromkeys(t.used))
            return x, 0
        t1, t2 = table.copy(), table.copy()
        t1.set(pair[0], pair[1], Quote(1.0, 1.0))
        t2.set(pair[0], pair[1], Quote(2.0, 2.0))
        x1 = t1.convert_factor(src, account, instrument=spec.symbol)
        x2 = t2.convert_factor(src, account, instrument=spec.symbol)
    except CalcError:
        return None
    used.update(dict.fromkeys(t1.used))
    ratio = x2 / x1
    e = 1 if abs(ratio - 2.0) < 1e-9 else (-1 if abs(ratio - 0.5) < 1e-9 else 0)
    return x1, e


def _apply(c: NDArray[np.float64], e: NDArray[np.int64], price: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.where(e == 1, c * price, np.where(e == -1, c / price, c))
    return out


def columns_of(items: list[Any]) -> tuple[list[int], dict[str, Any], list[int]]:
    """(candidate item positions, their columns, other positions) for a list of row objects."""
    cand = [i for i, d in enumerate(items) if type(d) is dict and d.keys() <= FAST_KEYS]
    rest: list[int] = []
    if len(cand) != len(items):
        cand_set = set(cand)
        rest = [i for i in range(len(items)) if i not in cand_set]
    ds = [items[i] for i in cand] if rest else items
    cols: dict[str, Any] = {}
    for name in NUM + STR:
        col = [d.get(name) for d in ds]
        cols[name] = None if col.count(None) == len(col) else col  # absent everywhere: one null
    return cand, cols, rest


def compute(cand: list[int], cols: dict[str, Any], shared: RateTable, rest: list[int],
            fields: Iterable[str] = OUT_FIELDS) -> FastResult:
    """cols: field -> list of values aligned with cand, or a single value for every item. Only `fields`
    are in the result's columns."""
    n = len(cand)
    if n == 0:
        return FastResult([], {}, sorted(rest))
    ok = np.ones(n, dtype=bool)
    num = {name: _numeric(cols.get(name), name, ok) for name in NUM}
    for name in REQUIRED:
        ok &= ~np.isnan(num[name])
    acc_code, acc_table = _codes(cols.get("accountCurrency"), _currency, n)
    sym_code, spec_table = _codes(cols.get("currencyPair"), _spec, n)
    ok &= (acc_code >= 0) & (sym_code >= 0)
    lit_code: dict[str, NDArray[np.int64]] = {}
    lit_values: dict[str, list[Any]] = {}
    for name, allowed in LITERALS.items():
        code, table = _codes(cols.get(name), lambda v, a=allowed: v if v in a else None, n)
        ok &= code != -1
        lit_code[name] = np.where(code == MISSING, -1, code)
        lit_values[name] = table

    balance, entry, sl, pips = num["accountBalance"], num["entryPrice"], num["stopLoss"], num["stopLossPips"]
    has_sl, has_pips = ~np.isnan(sl), ~np.isnan(pips)
    pct, amount = num["riskPercentage"], num["riskAmount"]
    has_pct, has_amt = ~np.isnan(pct), ~np.isnan(amount)
    ok &= has_sl ^ has_pips
    ok &= has_pct ^ has_amt
    ok &= ~(has_amt & (amount > balance))
    ok &= ~(has_sl & (np.abs(sl - entry) < 1e-9))  # at or near zero distance: the scalar path explains it
    dir_table = np.array([{"long": 1, "short": -1}[v] for v in lit_values["direction"]] + [0], dtype=np.int64)
    given_dir = dir_table[lit_code["direction"]]  # code -1 picks the trailing 0: no direction given
    sl_long = sl < entry
    ok &= ~(has_sl & (((given_dir == 1) & ~sl_long) | ((given_dir == -1) & sl_long)))

    # Conversion laws per distinct (instrument, account currency).
    n_acc = max(len(acc_table), 1)
    combo = np.where(ok, sym_code * n_acc + acc_code, -1)
    uniq, inverse = np.unique(combo, return_inverse=True)
    law_q = np.full((uniq.size, 2), np.nan)
    law_m = np.full((uniq.size, 2), np.nan)
    used_by_law: list[dict[str, None]] = [{} for _ in range(uniq.size)]  # ordered sets: the order of use
    for u, key in enumerate(uniq.tolist()):
        if key < 0:
            continue
        spec, acc = spec_table[key // n_acc], acc_table[key % n_acc]
        q = _power_law(shared, spec, spec.quote, acc, used_by_law[u])
        m = _power_law(shared, spec, spec.margin_currency, acc, used_by_law[u]) if spec.margin_mode == "fx" else q
        if q is not None and m is not None:
            law_q[u], law_m[u] = q, m
    ok &= ~np.isnan(law_q[inverse, 0])

    # Per-instrument attributes, gathered by code.
    def attr(get: Any) -> NDArray[np.float64]:
        return np.array([float(get(sp)) for sp in spec_table] or [0.0])[sym_code[sel]]

    # Items the kernel does not flag the way the single-request path does go there instead: an own-pair
    # rate that disagrees with the entry (flag or 422) and NFA on a non-FX CFD (not offered to US retail).
    own_rate = np.array([_own_rate(shared, sp) for sp in spec_table] or [math.nan])
    with np.errstate(invalid="ignore", divide="ignore"):
        ok &= ~(np.abs(own_rate[np.where(sym_code >= 0, sym_code, 0)] / entry - 1.0) > OWN_RATE_FLAG)
    nfa_code = lit_values["jurisdiction"].index("nfa") if "nfa" in lit_values["jurisdiction"] else -2
    non_fx = np.array([not sp.asset_class.startswith("fx") for sp in spec_table] or [False])
    ok &= ~((lit_code["jurisdiction"] == nfa_code) & non_fx[np.where(sym_code >= 0, sym_code, 0)])
    sel = np.flatnonzero(ok)
    rest = rest + [cand[k] for k in np.flatnonzero(~ok)]
    if sel.size == 0:
        return FastResult([], {}, sorted(rest))
    contract = attr(lambda sp: sp.contract_size)
    pip = attr(lambda sp: sp.pip_size)
    step = attr(lambda sp: sp.lot_step)
    scale = attr(lambda sp: 10.0 ** step_decimals(sp.lot_step))
    mrate = attr(lambda sp: sp.margin_rate)
    is_fx = attr(lambda sp: sp.margin_mode == "fx") > 0
    is_cfd = attr(lambda sp: sp.margin_mode == "cfd") > 0
    esma = attr(lambda sp: ESMA_CAPS[sp.leverage_class])
    inv = inverse[sel]
    cq, eq, cm, em = law_q[inv, 0], law_q[inv, 1], law_m[inv, 0], law_m[inv, 1]

    e_, sl_, is_sl = entry[sel], sl[sel], has_sl[sel]
    long_ = np.where(is_sl, sl_ < e_, given_dir[sel] != -1)
    # Stop distance exactly as the scalar path: r10 of the price difference, or pips x pipSize.
    distance = np.where(is_sl, kernel.r10(np.abs(e_ - np.where(is_sl, sl_, e_))), pips[sel] * pip)
    stop = np.where(is_sl, sl_, kernel.r10(np.where(long_, e_ - distance, e_ + distance)))
    xq = _apply(cq, eq, e_)
    bal = balance[sel]
    target = np.where(has_pct[sel], bal * pct[sel] / 100.0, amount[sel])

    # Leverage: min(requested, regulatory cap); nothing given -> the ESMA retail cap (esma-default).
    juris_names = [*lit_values["jurisdiction"], "none"]
    j_code = np.where(lit_code["jurisdiction"][sel] < 0, len(juris_names) - 1, lit_code["jurisdiction"][sel])
    caps = np.array([[regulatory_cap(sp, j) for j in juris_names] for sp in spec_table])
    reg = caps[sym_code[sel], j_code]
    requested = num["leverage"][sel]
    has_req = ~np.isnan(requested)
    applied = np.where(has_req, np.fmin(requested, reg), np.where(np.isfinite(reg), reg, esma))
    xm = _apply(cm, em, e_)
    notional_lot = np.where(is_fx, contract * xm, contract * e_ * xq)
    mpl = np.where(is_cfd, notional_lot * mrate, notional_lot / applied * mrate)
    commission = num["commissionPerLot"][sel]
    refuse_code = lit_values["minLotPolicy"].index("refuse") if "refuse" in lit_values["minLotPolicy"] else -2
    min_lot = attr(lambda sp: sp.min_lot)
    max_lot = attr(lambda sp: sp.max_lot)
    res, bits = kernel.position_sizes(kernel.SizeArrays(
        balance=bal, entry=e_, distance=distance, target=target, commission=np.nan_to_num(commission),
        xq=xq, contract=contract, pip=pip, lot_step=step, step_scale=scale, min_lot=min_lot, max_lot=max_lot,
        raise_min=lit_code["minLotPolicy"][sel] != refuse_code, margin_per_lot=mpl,
    ))
    # A stop at or below zero fails in the single-request path, with its message.
    keep = stop > 0
    lev_capped = has_req & (applied < requested)
    bits = bits | np.where(lev_capped, kernel.LEV_CAPPED, 0)
    bits = bits | np.where(~is_sl & (given_dir[sel] == 0), kernel.DIRECTION_ASSUMED, 0)
    rule_names = np.array(["requested", *juris_names[:-1], "esma-default"], dtype=object)
    rule_idx = np.where(has_req & (applied == requested), 0,
                        np.where(j_code < len(juris_names) - 1, j_code + 1, len(rule_names) - 1))
    lots = res["lots"]
    r = kernel.r10
    # Only the fields asked for are built: the per-item objects (flags, ratesUsed, conventions) cost far
    # more than the arithmetic.
    want = frozenset(fields)
    numeric: dict[str, Any] = {
        "stopLoss": lambda: stop,
        "stopDistancePips": lambda: r(distance / pip),
        "positionSize": lambda: r(lots * contract),
        "lotSize": lambda: lots,
        "exactPositionSize": lambda: r(res["exact"] * contract),
        "exactLotSize": lambda: r(res["exact"]),
        "targetRiskAmount": lambda: r(target),
        "maxLoss": lambda: r(res["max_loss"]),
        "riskPercentage": lambda: r(res["risk_pct"]),
        "lossPerLot": lambda: r(res["loss_per_lot"]),
        "pipValue": lambda: r(res["pip_value"]),
        "pipValuePerLot": lambda: r(res["pip_value_per_lot"]),
        "requiredMargin": lambda: r(res["margin"]),
        "marginPercentage": lambda: r(res["margin_pct"]),
        "leverage": lambda: applied,
    }
    # A stop at or below zero fails in the single-request path, with its message.
    keep = stop > 0
    kidx = np.flatnonzero(keep)
    all_kept = kidx.size == sel.size
    indices = [cand[k] for k in sel.tolist()]
    if not all_kept:
        rest += [indices[k] for k in np.flatnonzero(~keep)]
        indices = [indices[k] for k in kidx]
    # Float columns stay arrays (orjson writes them directly); object columns are lists.
    cols_out: dict[str, Any] = {}
    for name, make in numeric.items():
        if name in want:
            v = make()
            cols_out[name] = v if all_kept else v[kidx]
    kept = kidx.tolist()
    if "direction" in want:
        cols_out["direction"] = [("short", "long")[x] for x in long_[kidx].tolist()]
    if "leverageCap" in want:
        cols_out["leverageCap"] = rule_names[rule_idx[kidx]].tolist()
    if "flags" in want:
        no_flags: list[dict[str, Any]] = []  # shared by every unflagged item (serialised, never mutated)
        flag_lists: list[list[dict[str, Any]]] = [no_flags] * int(sel.size)
        for k in np.flatnonzero(bits).tolist():
            flag_lists[k] = _flags(int(bits[k]), spec_table[sym_code[sel[k]]], float(target[k]),
                                   float(res["max_loss"][k]), float(requested[k]), float(applied[k]),
                                   str(rule_names[rule_idx[k]]), float(res["margin"][k]), float(bal[k]))
        cols_out["flags"] = flag_lists if all_kept else [flag_lists[k] for k in kept]
    sym_sel = sym_code[sel]
    if "ratesUsed" in want:
        cols_out["ratesUsed"] = _rates_used(shared, spec_table, used_by_law, inv[kidx], sym_sel[kidx], e_[kidx])
    if "conventions" in want:
        policy_names = [*lit_values["minLotPolicy"], "raise"]
        cols_out["conventions"] = _conventions(spec_table, policy_names, sym_sel[kidx],
                                               lit_code["minLotPolicy"][sel][kidx])
    return FastResult(indices, cols_out, sorted(rest))


def _rates_used(shared: RateTable, spec_table: list[InstrumentSpec], used_by_law: list[dict[str, None]],
                law: NDArray[np.int64], sym: NDArray[np.int64], entry: NDArray[np.float64]) -> list[Any]:
    """ratesUsed per item, as the single-request path gives it: the shared rates on the item's path, and
    the instrument's own pair at the item's entry when the path used it and the shared rates lack it.
    One JSON fragment per conversion law (shared by its items) unless the entry is in it."""
    public = {sym: shared.quotes[(sym[:3], sym[3:])].public() for sym in {s for u in used_by_law for s in u}
              if (sym[:3], sym[3:]) in shared.quotes}
    out: list[Any] = [None] * int(law.size)
    # The law fixes the instrument (and the account currency): one key per distinct law.
    laws, first, where = np.unique(law, return_index=True, return_inverse=True)
    for g, (u, k0) in enumerate(zip(laws.tolist(), first.tolist(), strict=True)):
        spec = spec_table[int(sym[k0])]
        own = spec.symbol if own_pair(spec) is not None else None
        items = np.flatnonzero(where == g).tolist()
        used = list(used_by_law[u])  # in the order of use, as the single-request path gives it
        if own is None or own not in used or own in public:
            one = orjson.Fragment(orjson.dumps({s: public[s] for s in used}))  # written once, copied per item
            for k in items:
                out[k] = one
            continue
        at = used.index(own)
        before = {s: public[s] for s in used[:at]}
        after = {s: public[s] for s in used[at + 1:]}
        if before or after:
            made = [{**before, own: e, **after} for e in entry[items].tolist()]
        else:
            made = [{own: e} for e in entry[items].tolist()]
        for k, d in zip(items, made, strict=True):
            out[k] = d
    return out


def _conventions(spec_table: list[InstrumentSpec], policy_names: list[str], sym: NDArray[np.int64],
                 policy: NDArray[np.int64]) -> list[Any]:
    """conventions per item: one JSON fragment per (instrument, minLotPolicy), shared by its items."""
    n_pol = len(policy_names)
    key = sym * n_pol + np.where(policy < 0, n_pol - 1, policy)
    # Written once per distinct dict: orjson copies the bytes for each item.
    table = {k: orjson.Fragment(orjson.dumps(item_conventions(sizing_conventions(
        spec_table[k // n_pol], "entry", "mid", "down", policy_names[k % n_pol])))) for k in np.unique(key).tolist()}
    return list(map(table.__getitem__, key.tolist()))


def _own_rate(table: RateTable, spec: InstrumentSpec) -> float:
    pair = own_pair(spec)
    return table.quotes[pair].mid if pair is not None and table.has(*pair) else math.nan


def _flags(bits: int, spec: InstrumentSpec, target: float, max_loss: float, requested: float, applied: float,
           rule: str, margin: float, balance: float) -> list[dict[str, Any]]:
    out = []
    for bit, code in kernel.FLAG_BITS.items():
        if not bits & bit:
            continue
        if bit == kernel.DIRECTION_ASSUMED:
            data: dict[str, Any] = {"direction": "long"}
        elif bit == kernel.MARGIN_OVER_BALANCE:
            data = {"requiredMargin": r10(margin), "accountBalance": balance,
                    "marginPercentage": r10(margin / balance * 100.0)}
        elif bit == kernel.CAPPED:
            data = {"maxLot": spec.max_lot}
        elif bit in (kernel.RAISED, kernel.REFUSED):
            data = {"minLot": spec.min_lot}
        elif bit == kernel.EXCEEDS:
            data = {"targetRisk": r10(target), "actualRisk": r10(max_loss)}
        elif bit == kernel.LEV_CAPPED:
            data = {"requested": requested, "applied": applied, "rule": rule}
        else:  # ABOVE_10
            data = {}
        out.append(flag(code, **data))
    return out
