"""The calculations filled from market history: /atr by symbol and period, /var without returns, /portfolio
with historyDays. Each gives bit-for-bit the numbers of the same request with the series given explicitly,
names its window and sources, flags development history, and refuses bad input with a problem naming the
field."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.integrations.market_data.history.ecb import EcbDevelopmentHistory
from app.integrations.market_data.history.oanda import OandaHistory
from app.integrations.market_data.history.repository import HistoryRepository
from app.integrations.market_data.history.service import HistoryService
from tests.helpers_auth import sql
from tests.oanda_server import TOKEN, OandaServer, make_bars

pytestmark = pytest.mark.usefixtures("no_server_errors")
CALC = "/api/v1/calculate/"
VOLATILE = {"calculationId", "history", "flags"}


def post(client: TestClient, path: str, body: dict[str, Any], status: int = 200) -> dict[str, Any]:
    r = client.post(CALC + path, json=body)
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


def same_numbers(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert {k: v for k, v in a.items() if k not in VOLATILE} == {k: v for k, v in b.items() if k not in VOLATILE}


def ecb_closes(symbol: str, last: int) -> tuple[list[str], list[float]]:
    """The shipped ECB fixes of `symbol`, the last `last` days, read straight from the provider."""
    bars = asyncio.run(EcbDevelopmentHistory().fetch_daily(symbol, date(2000, 1, 1), date(2100, 1, 1)))[-last:]
    return [b.day.isoformat() for b in bars], [b.close for b in bars]


def codes(r: dict[str, Any]) -> list[str]:
    return [f["code"] for f in r.get("flags", [])]


# ---- development history (the test environment's chain: OANDA not configured, then the shipped ECB data) ----

def test_atr_by_symbol_matches_the_same_closes_given(client: TestClient) -> None:
    by_symbol = post(client, "atr", {"symbol": "EUR/USD", "period": 14, "days": 40})
    days, closes = ecb_closes("EURUSD", 40)
    given = post(client, "atr", {"close": closes, "period": 14})
    same_numbers(by_symbol, given)
    assert by_symbol["trueRangeMethod"] == "close-to-close" and len(by_symbol["trueRange"]) == 39
    h = by_symbol["history"]
    assert (h["from"], h["to"], h["observations"]) == (days[0], days[-1], 40)
    src = h["sources"][0]
    assert src["source"] == "ecb-development" and src["development"] and src["closeOnly"] and h["development"]
    assert "DEVELOPMENT HISTORY" in src["label"] and "ECB" in src["label"]
    assert codes(by_symbol) == ["ATR_CLOSE_ONLY_HISTORY", "DEVELOPMENT_HISTORY"]
    assert codes(given) == ["ATR_CLOSE_ONLY_HISTORY"]  # closes given: close-only, but not development data
    # Close to close: |C_t - C_(t-1)|, first ATR the mean of 14, then Wilder.
    tr = [abs(closes[i] - closes[i - 1]) for i in range(1, 40)]
    assert by_symbol["trueRange"][0] == round(tr[0], 10)
    assert by_symbol["atr"][13] == round(sum(tr[:14]) / 14, 10)


def test_atr_window_from_to(client: TestClient) -> None:
    r = post(client, "atr", {"symbol": "USDJPY", "period": 5, "from": "2026-09-01", "to": "2026-09-30"})
    assert r["history"]["from"] == "2026-09-01" and r["history"]["to"] == "2026-09-30"
    assert r["history"]["observations"] == 22  # ECB fixing days in September 2026


def var_body(**extra: Any) -> dict[str, Any]:
    return {"accountCurrency": "USD", "method": "historical", "confidence": [0.95, 0.99],
            "positions": [{"currencyPair": "EURUSD", "exposure": 100000},
                          {"currencyPair": "USDJPY", "exposure": -50000},
                          {"currencyPair": "GBPUSD", "lots": 1, "side": "long", "price": 1.27}], **extra}


def explicit_returns(symbols: list[str], n: int) -> dict[str, Any]:
    closes = {s: ecb_closes(s, n + 1) for s in symbols}
    days = closes[symbols[0]][0]
    assert all(c[0] == days for c in closes.values())  # the ECB fixes every currency on the same days
    return {"dates": days[1:], "series": {s: [c[1][t] / c[1][t - 1] - 1.0 for t in range(1, n + 1)]
                                          for s, c in closes.items()}}


@pytest.mark.parametrize("method", ["historical", "parametric", "cornish-fisher"])
def test_var_without_returns_matches_the_same_returns_given(client: TestClient, method: str) -> None:
    fetched = post(client, "var", var_body(method=method, historyDays=120))
    given = post(client, "var", var_body(method=method, returns=explicit_returns(["EURUSD", "USDJPY", "GBPUSD"], 120)))
    same_numbers(fetched, given)
    h = fetched["history"]
    assert h["observations"] == 120 and fetched["observations"] == 120
    assert [s["symbol"] for s in h["sources"]] == ["EURUSD", "USDJPY", "GBPUSD"]
    assert all(s["source"] == "ecb-development" and s["bars"] == 121 for s in h["sources"])
    assert h["returnMethod"].startswith("simple") and "intersection" in h["alignment"]
    assert "DEVELOPMENT_HISTORY" in codes(fetched) and "DEVELOPMENT_HISTORY" not in codes(given)
    assert "history" not in given


def test_var_default_window_is_250_days(client: TestClient) -> None:
    r = post(client, "var", var_body(method="parametric"))
    assert r["history"]["observations"] == 250 == r["observations"]


def test_portfolio_with_history_days_matches_the_same_returns_given(client: TestClient) -> None:
    base = {"accountCurrency": "USD", "accountBalance": 10000, "positions": [
        {"currencyPair": "EURUSD", "side": "long", "lots": 0.5, "entryPrice": 1.1, "stopLossPips": 30},
        {"currencyPair": "GBPUSD", "side": "short", "lots": 0.3, "entryPrice": 1.27, "stopLossPips": 40}]}
    fetched = post(client, "portfolio", {**base, "historyDays": 60})
    given = post(client, "portfolio", {**base, "returns": explicit_returns(["EURUSD", "GBPUSD"], 60)})
    same_numbers(fetched, given)
    assert "correlationAdjustedRisk" in fetched and fetched["history"]["observations"] == 60
    assert "DEVELOPMENT_HISTORY" in codes(fetched)
    plain = post(client, "portfolio", base)  # no historyDays: computed at the stops alone, nothing fetched
    assert "history" not in plain and "correlation" not in plain


@pytest.mark.parametrize(("path", "body", "field"), [
    ("atr", {"symbol": "EURUSD", "high": [1.1], "low": [1.0], "close": [1.05]}, "symbol"),
    ("atr", {"symbol": "EURUSD", "previousAtr": 0.01, "trueRange": 0.02}, "symbol"),
    ("atr", {"days": 30, "close": [1.0, 1.1, 1.2]}, "days"),
    ("atr", {"symbol": "EURUSD", "days": 30, "from": "2026-01-01"}, "days"),
    ("atr", {"symbol": "EURUSD", "period": 14, "days": 10}, "days"),
    ("atr", {"symbol": "EURUSD", "from": "2026-10-01", "to": "2026-09-01"}, "from"),
    ("atr", {"symbol": "NOTAPAIR"}, "symbol"),
    ("atr", {"symbol": "EURUSD", "to": "1900-01-01"}, "to"),
    ("atr", {"symbol": "EURUSD", "days": 1}, "days"),
    ("atr", {"symbol": "USDTRY", "period": 3}, "symbol"),
    ("var", {**var_body(), "historyDays": 1}, "historyDays"),
    ("var", {**var_body(), "historyDays": 50, "returns": {"series": {"EURUSD": [0.01, 0.02]}}}, "historyDays"),
    ("var", {**var_body(), "positions": [{"currencyPair": "XAUUSD", "exposure": 1000}]}, "positions[0].currencyPair"),
    ("portfolio", {"accountCurrency": "USD", "historyEnd": "2026-10-01", "positions": [
        {"currencyPair": "EURUSD", "side": "long", "lots": 1}]}, "historyDays"),
])
def test_bad_history_input_is_a_problem_naming_the_field(client: TestClient, path: str, body: dict[str, Any],
                                                        field: str) -> None:
    r = client.post(CALC + path, json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in r.json()["errors"]], r.json()


def test_missing_history_names_the_symbol_and_the_providers_tried(client: TestClient) -> None:
    r = client.post(CALC + "atr", json={"symbol": "USDTRY", "period": 3})
    body = r.json()
    assert r.status_code == 422 and "USDTRY" in body["detail"]
    err = body["errors"][0]
    assert err["code"] == "HISTORY_UNAVAILABLE" and err["symbol"] == "USDTRY"
    assert err["providersTried"] == ["oanda: not configured (FOREXRISK_HISTORY_OANDA_BASE_URL and "
                                     "FOREXRISK_HISTORY_OANDA_TOKEN)", "ecb-development: does not serve USDTRY"]


# ---- a configured vendor: OHLC candles from the loopback OANDA server ----

@pytest.fixture
def vendor(client: TestClient) -> Iterator[OandaServer]:
    """The app's history service swapped for one whose chain is the loopback OANDA server, then the
    development history; put back afterwards."""
    server = OandaServer(bars={"EUR_USD": make_bars(date(2026, 1, 5), date(2026, 12, 1)),
                               "USD_JPY": make_bars(date(2026, 1, 5), date(2026, 12, 1), base=150.0)}).start()
    services = client.app.state.services  # type: ignore[attr-defined]
    original = services.history
    sql(client, "delete from market_daily_bars where source = 'oanda'")
    sql(client, "delete from market_history_coverage where source = 'oanda'")
    http = httpx.AsyncClient(timeout=5)
    services.history = HistoryService(HistoryRepository(services.db),
                                      [OandaHistory(http, server.base_url, TOKEN, retries=1, backoff=0.0),
                                       EcbDevelopmentHistory()], today=lambda: date(2026, 12, 2))
    yield server
    services.history = original
    client.portal.call(http.aclose)
    server.stop()


def test_atr_by_symbol_from_vendor_candles_matches_the_same_candles_given(client: TestClient,
                                                                         vendor: OandaServer) -> None:
    by_symbol = post(client, "atr", {"symbol": "EURUSD", "period": 14, "days": 60})
    bars = vendor.bars["EUR_USD"][-60:]
    given = post(client, "atr", {"high": [b["h"] for b in bars], "low": [b["l"] for b in bars],
                                 "close": [b["c"] for b in bars], "period": 14})
    same_numbers(by_symbol, given)
    assert "flags" not in by_symbol and "trueRangeMethod" not in by_symbol
    src = by_symbol["history"]["sources"][0]
    assert src["source"] == "oanda" and not src["development"] and not src["closeOnly"]
    assert by_symbol["history"]["to"] == bars[-1]["day"].isoformat()


def test_result_cache_key_includes_where_the_history_came_from(client: TestClient) -> None:
    body = var_body(method="parametric", historyDays=30)
    first = client.post(CALC + "var", json=body)
    again = client.post(CALC + "var", json=body)
    assert first.status_code == again.status_code == 200
    if "X-Cache" not in first.headers:
        pytest.fail("expected /var to be cacheable for this test")
    assert again.headers["X-Cache"] == "HIT"
    # Same closes and returns, another provenance: a different key, so a fresh answer naming its own source.
    services = client.app.state.services  # type: ignore[attr-defined]
    original = services.history

    class Renamed(EcbDevelopmentHistory):
        name = "ecb-development-copy"

    services.history = HistoryService(HistoryRepository(services.db), [Renamed()])
    try:
        other = client.post(CALC + "var", json=body)
    finally:
        services.history = original
    assert other.headers["X-Cache"] == "MISS"
    assert other.json()["history"]["sources"][0]["source"] == "ecb-development-copy"
    same_numbers(first.json(), other.json())
