"""Instrument catalogue, symbol normalisation and per-request / per-broker overrides.

Spec fields follow docs/calc-conventions.md. Defaults are the common retail MT5/cTrader symbol models;
a broker (or a request) overrides any of them for its own symbols.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from app.calc.errors import CalcError, UnknownCurrency, UnknownInstrument

AssetClass = Literal["fx-major", "fx-minor", "fx-exotic", "metal", "index", "commodity", "crypto", "equity"]
# Regulatory leverage class (ESMA/FCA/ASIC product-intervention categories; NFA uses fx-major only).
LeverageClass = Literal["fx-major", "fx-other", "gold", "index-major", "index-other", "commodity-other",
                        "equity", "crypto"]
MarginMode = Literal["fx", "cfd", "cfd-leverage"]

# ISO 4217 codes we accept as account or conversion currencies (plus metals quoted as currencies).
CURRENCIES: frozenset[str] = frozenset(
    "USD EUR GBP JPY CHF CAD AUD NZD SGD HKD ZAR MXN TRY SEK NOK DKK PLN HUF CZK CNH CNY THB ILS INR "
    "KRW BRL RUB AED SAR RON BGN ISK KWD QAR TWD IDR MYR PHP CLP COP XAU XAG XPT XPD".split()
)
# Crypto assets that may be nodes of the conversion graph (BTCUSD, ETHBTC in conversionRates).
CRYPTO = frozenset({"BTC", "ETH", "LTC", "XRP", "SOL", "BCH", "ADA", "DOT", "DOG"})
RATE_NODES = CURRENCIES | CRYPTO
ESMA_MAJOR = frozenset({"USD", "EUR", "JPY", "GBP", "CAD", "CHF"})
NFA_MAJOR = frozenset({"USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK"})
# Quote currencies whose pip is the second decimal.
TWO_DECIMAL_PIP = frozenset({"JPY", "HUF", "THB", "KRW", "ISK", "CLP", "IDR", "INR", "RUB", "TWD", "PHP"})


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    symbol: str
    base: str
    quote: str
    margin_currency: str
    contract_size: float
    pip_size: float
    tick_size: float
    digits: int
    lot_step: float
    min_lot: float
    max_lot: float
    asset_class: AssetClass
    leverage_class: LeverageClass
    margin_mode: MarginMode
    description: str
    margin_rate: float = 1.0  # multiplier on 1/leverage (MT5 "initial margin rate"); 1 = none

    def public(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "description": self.description,
            "base": self.base,
            "quote": self.quote,
            "profitCurrency": self.quote,
            "marginCurrency": self.margin_currency,
            "contractSize": self.contract_size,
            "pipSize": self.pip_size,
            "tickSize": self.tick_size,
            "digits": self.digits,
            "lotStep": self.lot_step,
            "minLot": self.min_lot,
            "maxLot": self.max_lot,
            "assetClass": self.asset_class,
            "leverageClass": self.leverage_class,
            "marginMode": self.margin_mode,
            "marginRate": self.margin_rate,
        }


MAJORS = "EURUSD GBPUSD USDJPY USDCHF AUDUSD USDCAD NZDUSD".split()
MINORS = (
    "EURGBP EURJPY EURCHF EURAUD EURCAD EURNZD GBPJPY GBPCHF GBPAUD GBPCAD GBPNZD AUDJPY AUDCHF "
    "AUDCAD AUDNZD NZDJPY NZDCHF NZDCAD CADJPY CADCHF CHFJPY"
).split()
EXOTICS = (
    "USDSGD USDHKD USDZAR USDMXN USDTRY USDSEK USDNOK USDDKK USDPLN USDHUF USDCZK USDCNH USDTHB "
    "EURSEK EURNOK EURPLN EURTRY EURHUF EURCZK EURZAR EURSGD GBPSGD AUDSGD SGDJPY"
).split()

_NAMES = {
    "USD": "US dollar", "EUR": "euro", "GBP": "pound sterling", "JPY": "Japanese yen", "CHF": "Swiss franc",
    "CAD": "Canadian dollar", "AUD": "Australian dollar", "NZD": "New Zealand dollar",
}


def fx_leverage_class(base: str, quote: str) -> LeverageClass:
    return "fx-major" if base in ESMA_MAJOR and quote in ESMA_MAJOR else "fx-other"


def _fx(symbol: str, asset_class: AssetClass) -> InstrumentSpec:
    base, quote = symbol[:3], symbol[3:]
    pip = 0.01 if quote in TWO_DECIMAL_PIP else 0.0001
    digits = 3 if pip == 0.01 else 5
    desc = f"{_NAMES.get(base, base)} vs {_NAMES.get(quote, quote)}"
    return InstrumentSpec(
        symbol=symbol, base=base, quote=quote, margin_currency=base, contract_size=100_000.0,
        pip_size=pip, tick_size=pip / 10, digits=digits, lot_step=0.01, min_lot=0.01, max_lot=100.0,
        asset_class=asset_class, leverage_class=fx_leverage_class(base, quote), margin_mode="fx",
        description=desc,
    )


def _cfd(symbol: str, base: str, quote: str, contract: float, pip: float, tick: float, digits: int,
         asset_class: AssetClass, leverage_class: LeverageClass, desc: str,
         lot_step: float = 0.01, min_lot: float = 0.01, max_lot: float = 100.0) -> InstrumentSpec:
    return InstrumentSpec(
        symbol=symbol, base=base, quote=quote, margin_currency=quote, contract_size=contract, pip_size=pip,
        tick_size=tick, digits=digits, lot_step=lot_step, min_lot=min_lot, max_lot=max_lot,
        asset_class=asset_class, leverage_class=leverage_class, margin_mode="cfd-leverage", description=desc,
    )


def _build() -> dict[str, InstrumentSpec]:
    out: dict[str, InstrumentSpec] = {}
    for s in MAJORS:
        out[s] = _fx(s, "fx-major")
    for s in MINORS:
        out[s] = _fx(s, "fx-minor")
    for s in EXOTICS:
        out[s] = _fx(s, "fx-exotic")
    # Metals: gold's "pip" differs between brokers (0.01 or 0.10); ours is 0.01 = one tick. Override
    # pipSize per request or per broker, or give stops as prices.
    others = [
        _cfd("XAUUSD", "XAU", "USD", 100, 0.01, 0.01, 2, "metal", "gold", "Gold vs US dollar (100 oz)"),
        _cfd("XAGUSD", "XAG", "USD", 5000, 0.01, 0.001, 3, "metal", "commodity-other",
             "Silver vs US dollar (5,000 oz)"),
        _cfd("XPTUSD", "XPT", "USD", 100, 0.01, 0.01, 2, "metal", "commodity-other", "Platinum (100 oz)"),
        _cfd("XTIUSD", "XTI", "USD", 1000, 0.01, 0.01, 2, "commodity", "commodity-other",
             "WTI crude oil (1,000 bbl)"),
        _cfd("XBRUSD", "XBR", "USD", 1000, 0.01, 0.01, 2, "commodity", "commodity-other",
             "Brent crude oil (1,000 bbl)"),
        _cfd("XNGUSD", "XNG", "USD", 10000, 0.001, 0.001, 3, "commodity", "commodity-other",
             "Natural gas (10,000 MMBtu)"),
        # Index CFDs: contract 1 = one unit of quote currency per index point per lot.
        _cfd("US500", "US500", "USD", 1, 1.0, 0.01, 2, "index", "index-major", "S&P 500 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("US30", "US30", "USD", 1, 1.0, 0.01, 2, "index", "index-major", "Dow Jones 30 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("NAS100", "NAS100", "USD", 1, 1.0, 0.01, 2, "index", "index-major", "Nasdaq 100 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("GER40", "GER40", "EUR", 1, 1.0, 0.01, 2, "index", "index-major", "DAX 40 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("UK100", "UK100", "GBP", 1, 1.0, 0.01, 2, "index", "index-major", "FTSE 100 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("FRA40", "FRA40", "EUR", 1, 1.0, 0.01, 2, "index", "index-major", "CAC 40 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("EU50", "EU50", "EUR", 1, 1.0, 0.01, 2, "index", "index-major", "Euro Stoxx 50 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("AUS200", "AUS200", "AUD", 1, 1.0, 0.01, 2, "index", "index-major", "ASX 200 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("JP225", "JP225", "JPY", 100, 1.0, 1.0, 0, "index", "index-major", "Nikkei 225 index CFD (JPY 100/pt)",
             lot_step=0.1, min_lot=0.1),
        _cfd("HK50", "HK50", "HKD", 1, 1.0, 1.0, 0, "index", "index-other", "Hang Seng 50 index CFD",
             lot_step=0.1, min_lot=0.1),
        _cfd("BTCUSD", "BTC", "USD", 1, 1.0, 0.01, 2, "crypto", "crypto", "Bitcoin vs US dollar (1 BTC)"),
        _cfd("ETHUSD", "ETH", "USD", 1, 0.1, 0.01, 2, "crypto", "crypto", "Ether vs US dollar (1 ETH)"),
        _cfd("LTCUSD", "LTC", "USD", 1, 0.01, 0.01, 2, "crypto", "crypto", "Litecoin vs US dollar (1 LTC)"),
    ]
    for spec in others:
        out[spec.symbol] = spec
    return out


CATALOGUE: dict[str, InstrumentSpec] = _build()

ALIASES = {
    "GOLD": "XAUUSD", "SILVER": "XAGUSD", "PLATINUM": "XPTUSD", "WTI": "XTIUSD", "USOIL": "XTIUSD",
    "BRENT": "XBRUSD", "UKOIL": "XBRUSD", "NATGAS": "XNGUSD",
    "SPX500": "US500", "SP500": "US500", "USA500": "US500", "SPX": "US500", "US500CASH": "US500",
    "DJ30": "US30", "WS30": "US30", "USA30": "US30", "DJI": "US30", "US30CASH": "US30",
    "USTEC": "NAS100", "NDX100": "NAS100", "NAS": "NAS100", "NASDAQ100": "NAS100", "US100": "NAS100",
    "DE40": "GER40", "DAX40": "GER40", "GER30": "GER40", "DE30": "GER40", "DAX": "GER40",
    "FTSE100": "UK100", "FTSE": "UK100", "JPN225": "JP225", "NIKKEI225": "JP225", "NI225": "JP225",
    "F40": "FRA40", "CAC40": "FRA40", "STOXX50": "EU50", "EUSTX50": "EU50", "ASX200": "AUS200",
    "XBTUSD": "BTCUSD", "BITCOIN": "BTCUSD", "ETHEREUM": "ETHUSD",
}

_SEPARATORS = re.compile(r"[\s/_\-.:]+")


def normalise_symbol(raw: str) -> str:
    """`EUR/USD`, `eur_usd`, `EUR-USD`, ` eurusd ` -> `EURUSD` (aliases such as SPX500 -> US500)."""
    s = _SEPARATORS.sub("", raw).upper()
    return ALIASES.get(s, s)


def normalise_currency(raw: str, field: str) -> str:
    c = raw.strip().upper()
    if c not in CURRENCIES:
        raise UnknownCurrency(field, f"Unknown currency '{raw}'; expected an ISO 4217 code such as USD.")
    return c


def normalise_node(raw: str, field: str) -> str:
    """A node of the conversion graph: a currency, a metal or a crypto asset (BTC)."""
    c = raw.strip().upper()
    if c not in RATE_NODES:
        raise UnknownCurrency(field, f"Unknown currency '{raw}'; expected an ISO 4217 code such as USD, a metal "
                              "(XAU) or a crypto asset (BTC).")
    return c


def split_pair(symbol: str) -> tuple[str, str] | None:
    """Base and quote of a currency pair symbol, or None when it is not one."""
    if len(symbol) == 6 and symbol[:3] in RATE_NODES and symbol[3:] in RATE_NODES:
        return symbol[:3], symbol[3:]
    spec = CATALOGUE.get(symbol)
    if spec is not None and spec.base in RATE_NODES:
        return spec.base, spec.quote
    return None


# Override keys accepted from requests and broker config (camelCase, as on the wire).
OVERRIDE_FIELDS = {
    "contractSize": "contract_size", "pipSize": "pip_size", "tickSize": "tick_size", "digits": "digits",
    "lotStep": "lot_step", "minLot": "min_lot", "maxLot": "max_lot", "marginMode": "margin_mode",
    "marginRate": "margin_rate", "baseCurrency": "base", "quoteCurrency": "quote",
    "marginCurrency": "margin_currency", "assetClass": "asset_class", "leverageClass": "leverage_class",
}


def resolve(symbol_raw: str, overrides: dict[str, Any] | None = None, field: str = "currencyPair",
            override_field: str = "instrument") -> InstrumentSpec:
    """Catalogue spec for a symbol with overrides applied.

    Unknown six-letter pairs of known currencies get the FX rule spec (exotic class). Any other
    unknown symbol needs at least `quoteCurrency`, `contractSize` and `pipSize` in the overrides.
    """
    symbol = normalise_symbol(symbol_raw)
    if not symbol:
        raise CalcError(field, "Symbol is empty.")
    ov = dict(overrides or {})
    spec = CATALOGUE.get(symbol)
    if spec is None:
        if len(symbol) == 6 and symbol[:3] in CURRENCIES and symbol[3:] in CURRENCIES:
            spec = _fx(symbol, "fx-exotic")
        elif {"quoteCurrency", "contractSize"} <= ov.keys() and ("pipSize" in ov or "pipPosition" in ov):
            quote = normalise_currency(str(ov["quoteCurrency"]), f"{override_field}.quoteCurrency")
            pip = float(ov.get("pipSize") or 10.0 ** -int(ov["pipPosition"]))
            spec = _cfd(symbol, symbol, quote, float(ov["contractSize"]), pip, pip, 2, "commodity",
                        "commodity-other", f"{symbol} (custom spec from request)")
        else:
            raise UnknownInstrument(
                field, f"Unknown instrument '{symbol_raw}'. Use a catalogue symbol (GET /api/v1/instruments) "
                f"or give instrument.quoteCurrency, instrument.contractSize and instrument.pipSize.")
    return apply_overrides(spec, ov, override_field)


def apply_overrides(spec: InstrumentSpec, ov: dict[str, Any], override_field: str) -> InstrumentSpec:
    if not ov:
        return spec
    changes: dict[str, Any] = {}
    # cTrader style: tick size 10^-digits and pip size 10^-pipPosition.
    if ov.get("pipPosition") is not None and "pipSize" not in ov:
        changes["pip_size"] = 10.0 ** -int(ov["pipPosition"])
    if ov.get("digits") is not None and "tickSize" not in ov:
        changes["tick_size"] = 10.0 ** -int(ov["digits"])
    # cTrader Open API volumes are in cents of a unit.
    if ov.get("ctraderLotSize") is not None:
        contract = float(ov["ctraderLotSize"]) / 100.0
        changes["contract_size"] = contract
        for key, target in (("ctraderMinVolume", "min_lot"), ("ctraderStepVolume", "lot_step"),
                            ("ctraderMaxVolume", "max_lot")):
            if ov.get(key) is not None:
                changes[target] = float(ov[key]) / 100.0 / contract
    for key, value in ov.items():
        attr = OVERRIDE_FIELDS.get(key)
        if attr is None or value is None:
            continue
        if attr in ("base", "quote", "margin_currency"):
            value = normalise_currency(str(value), f"{override_field}.{key}")
        changes[attr] = value
    spec = replace(spec, **changes)
    if spec.min_lot > spec.max_lot:
        raise CalcError(f"{override_field}.minLot", "minLot must not exceed maxLot.")
    return spec
