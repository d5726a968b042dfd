"""Randomised property test of conversion (issue 13, point 7): position size, pip value and margin across
account currencies, instruments and rate forms (direct, inverse, via USD, via a third currency, two hops,
the instrument's own price, bid/ask) against a small independent reference calculator.

The reference needs no path search: every case is drawn from one consistent world in which each currency
C has a value v_C in a common numeraire, every rate XY given is v_X / v_Y (bid/ask symmetric around it)
and the entry is v_base / v_quote. Whatever path the API takes, X(C -> A) must then be v_C / v_A, so
    loss per lot  = |entry - stop| x contractSize x v_Q / v_A
    pip per lot   = pipSize x contractSize x v_Q / v_A
    margin / lot  = contractSize x v_B / v_A / leverage                (FX: margin currency = base)
                  = contractSize x entry x v_Q / v_A / leverage        (CFD with leverage)
    exact lots    = balance x risk% / 100 / loss per lot
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import orjson
import pytest

from app.calc.instruments import resolve
from app.calculations import batch, service
from app.calculations import schemas as s

VALUE = {"USD": 1.0, "EUR": 1.08, "GBP": 1.27, "JPY": 1 / 150, "CHF": 1.13, "CAD": 0.73, "AUD": 0.66,
         "NZD": 0.60, "SGD": 0.74, "HKD": 0.128, "SEK": 0.095, "NOK": 0.093, "ZAR": 0.055, "XAU": 2400.0,
         "BTC": 60_000.0}
ACCOUNTS = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SGD"]
INSTRUMENTS = ["EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD", "EURGBP", "EURJPY",
               "GBPJPY", "AUDJPY", "EURCHF", "GBPCHF", "AUDNZD", "CADJPY", "CHFJPY", "USDSGD", "USDHKD",
               "USDZAR", "EURSEK", "USDNOK", "XAUUSD", "BTCUSD", "US500"]
FORMS = ["direct", "inverse", "via-usd", "via-third", "two-hops", "own-price", "bid-ask"]
LEVERAGE = 10.0


def sym(a: str, b: str) -> str:
    return a + b


def market(a: str, b: str) -> str:
    """A plausible market orientation (any orientation is accepted; this varies the forms)."""
    order = ["XAU", "BTC", "EUR", "GBP", "AUD", "NZD", "USD", "CAD", "CHF", "JPY"]
    ra = order.index(a) if a in order else 99
    rb = order.index(b) if b in order else 99
    return a + b if ra <= rb else b + a


def links(form: str, need: list[str], acc: str, rng: np.random.Generator) -> list[tuple[str, str]]:
    """Currency pairs (as node pairs) that connect every currency in `need` to the account currency."""
    pool = [c for c in VALUE if c not in need and c != acc and c not in ("USD", "XAU", "BTC")]
    out: list[tuple[str, str]] = []
    if form in ("direct", "inverse", "bid-ask"):
        out = [(c, acc) for c in need]
    elif form == "via-usd":
        out = [(c, "USD") for c in need] + [(acc, "USD")]
    elif form == "via-third":
        t = str(rng.choice(pool))
        out = [(c, t) for c in need] + [(acc, t)]
    elif form == "two-hops":
        t1, t2 = (str(x) for x in rng.choice(pool, 2, replace=False))
        out = [(c, t1) for c in need] + [(t1, t2), (t2, acc)]
    elif form == "own-price":
        out = [(need[-1], acc)]  # only the base reaches the account; the quote goes through the own price
    return [(a, b) for a, b in out if a != b]


def case(rng: np.random.Generator, i: int) -> tuple[dict[str, Any], dict[str, float], str]:
    acc = ACCOUNTS[i % len(ACCOUNTS)]
    symbol = INSTRUMENTS[int(rng.integers(len(INSTRUMENTS)))]
    form = FORMS[i % len(FORMS)]
    spec = resolve(symbol)
    v = {c: x * math.exp(float(rng.normal(0, 0.05))) for c, x in VALUE.items()}
    quote = spec.quote
    base = spec.base if spec.base in v else None  # an index CFD has no currency base
    price = v[base] / v[quote] if base else float(rng.uniform(4000, 6000))
    entry = float(f"{price:.6g}")
    if base:  # the world is scaled so the entry (rounded to 6 digits) is exactly v_base / v_quote
        v[base] = entry * v[quote]
    need = [quote] + ([base] if base and spec.margin_mode == "fx" else [])
    rates: dict[str, Any] = {}
    for a, b in links(form, need, acc, rng):
        key = sym(b, a) if form == "inverse" else market(a, b)
        x, y = key[:3], key[3:]
        mid = v[x] / v[y]
        if form == "bid-ask":
            half = mid * 1e-4
            rates[key] = {"bid": mid - half, "ask": mid + half}
        else:
            rates[key] = mid
    stop = entry * (1 - float(rng.uniform(0.002, 0.03)))
    stop = float(f"{stop:.6g}")
    body = {"accountBalance": float(rng.choice([1_000, 10_000, 250_000])), "accountCurrency": acc,
            "currencyPair": symbol, "entryPrice": entry, "stopLoss": stop,
            "riskPercentage": float(rng.choice([0.5, 1.0, 2.0])), "leverage": LEVERAGE,
            "conversionRates": rates}
    x_q = v[quote] / v[acc]
    distance = abs(entry - stop)
    if spec.margin_mode == "fx":
        assert base is not None
        margin = spec.contract_size * v[base] / v[acc] / LEVERAGE
    else:
        margin = spec.contract_size * entry * x_q / LEVERAGE
    loss = distance * spec.contract_size * x_q
    expected = {"lossPerLot": loss, "pipValuePerLot": spec.pip_size * spec.contract_size * x_q,
                "marginPerLot": margin, "exactLotSize": body["accountBalance"] * body["riskPercentage"] / 100 / loss}
    return body, expected, form


CASES = [case(np.random.default_rng(20261202 + i), i) for i in range(350)]


def close(got: float, want: float) -> bool:
    # r10 rounds outputs to 1e-10 absolute; everything else is float arithmetic along a path of <= 4 legs.
    return abs(got - want) <= 2e-10 + 1e-9 * abs(want)


def test_every_form_and_account_is_drawn() -> None:
    assert {f for _, _, f in CASES} == set(FORMS)
    assert {b["accountCurrency"] for b, _, _ in CASES} == set(ACCOUNTS)
    assert len({b["currencyPair"] for b, _, _ in CASES}) >= 20


@pytest.mark.parametrize("chunk", range(7))
def test_position_size_matches_the_reference(chunk: int) -> None:
    refused = []
    for body, want, form in CASES[chunk::7]:
        try:
            got = service.position_size(s.PositionSizeRequest.model_validate(body, strict=True))
        except Exception as exc:  # noqa: BLE001 - every case is computable: a refusal is a failure
            refused.append((form, body["accountCurrency"], body["currencyPair"], body["conversionRates"], str(exc)))
            continue
        for key in ("lossPerLot", "pipValuePerLot", "exactLotSize"):
            assert close(got[key], want[key]), (form, body, key, got[key], want[key])
        assert got["marginPerLot"] is not None, (form, body, got["flags"])
        assert close(got["marginPerLot"], want["marginPerLot"]), (form, body, got["marginPerLot"], want)
        assert got["conversionPaths"] or body["accountCurrency"] == resolve(body["currencyPair"]).quote
        if form == "direct":  # one hop for the loss conversion when the pair is given directly
            assert all(p["hops"] == 1 for p in got["conversionPaths"]), got["conversionPaths"]
        assert not re.search(rb"[:\[,]\s*-0(\.0+)?\s*[,\]}]", orjson.dumps(got))
    assert not refused, refused


def test_pip_value_and_margin_endpoints_match_the_reference() -> None:
    for body, want, form in CASES[::5]:
        spec = resolve(body["currencyPair"])
        pv = service.pip_value(s.PipValueRequest.model_validate(
            {"accountCurrency": body["accountCurrency"], "currencyPair": body["currencyPair"],
             "price": body["entryPrice"], "conversionRates": body["conversionRates"]}, strict=True))
        assert close(pv["pipValuePerLot"], want["pipValuePerLot"]), (form, body, pv)
        m = service.margin(s.MarginRequest.model_validate(
            {"accountCurrency": body["accountCurrency"], "currencyPair": body["currencyPair"], "lots": 1.0,
             "price": body["entryPrice"], "leverage": LEVERAGE, "conversionRates": body["conversionRates"]},
            strict=True))
        assert close(m["requiredMargin"], want["marginPerLot"]), (form, body, m, spec.margin_mode)


def test_batch_agrees_with_the_reference() -> None:
    items = [b for b, _, f in CASES if f != "bid-ask"]
    wants = [w for _, w, f in CASES if f != "bid-ask"]
    # The batch shares one table: run each item with its own rates (row items keep their conversionRates).
    out = orjson.loads(batch.run(orjson.dumps({"items": items}), 10_000))
    for res, want, body in zip(out["results"], wants, items, strict=True):
        assert res["ok"], (body, res)
        r = res["result"]
        assert close(r["lossPerLot"], want["lossPerLot"]) and close(r["pipValuePerLot"], want["pipValuePerLot"])
        assert isinstance(r["ratesUsed"], dict) and r["conventions"]["version"]
