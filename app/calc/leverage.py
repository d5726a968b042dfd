"""Applied leverage = min(requested, broker maximum, regulatory cap for the trader's jurisdiction)."""

from __future__ import annotations

import math
from typing import Literal

from app.calc.instruments import NFA_MAJOR, InstrumentSpec

Jurisdiction = Literal["esma", "fca", "asic", "nfa", "none"]

# ESMA product intervention (2018), adopted by FCA (2019) and ASIC (2021) for retail clients.
ESMA_CAPS: dict[str, float] = {
    "fx-major": 30, "fx-other": 20, "gold": 20, "index-major": 20, "index-other": 10,
    "commodity-other": 10, "equity": 5, "crypto": 2,
}


# ASIC Corporations (Product Intervention Order - Contracts for Difference) Instrument 2020/986 (made
# 22 October 2020, in force for retail clients from 29 March 2021; extended by Instrument 2022/259): 30:1 for
# an exchange rate of a major currency pair; 20:1 for a minor currency pair, gold or a major stock market
# index; 10:1 for other commodities and minor indices; 5:1 for shares and other assets; 2:1 for crypto-assets.
# A major currency pair is two of the Australian, Canadian and US dollar, the British pound, the euro, the
# Japanese yen and the Swiss franc -- ESMA's six plus AUD, so AUDUSD and EURAUD are 30:1 in Australia, 20:1
# in the EU. Checked in the review of issue 13 against published summaries of the instrument, not against the
# text of its section 4 (definitions), which the search available then did not reach; the same holds for
# the list of major stock market indices, for which the catalogue's ESMA/FCA list (index-major) is kept.
ASIC_MAJOR = frozenset({"AUD", "CAD", "USD", "GBP", "EUR", "JPY", "CHF"})


def regulatory_cap(spec: InstrumentSpec, jurisdiction: str) -> float:
    """The retail leverage cap; inf when the jurisdiction sets none (or, for NFA, when the product is
    not offered to US retail clients at all: CFDs other than FX, see sizing.not_offered_to_us_retail)."""
    fx = spec.asset_class.startswith("fx")
    if jurisdiction == "asic" and fx:
        return 30 if spec.base in ASIC_MAJOR and spec.quote in ASIC_MAJOR else 20
    if jurisdiction in ("esma", "fca", "asic"):
        return ESMA_CAPS[spec.leverage_class]
    if jurisdiction == "nfa":
        if not fx:
            return math.inf
        # NFA: 50:1 on pairs of major currencies, 20:1 on the other currency pairs.
        return 50 if spec.base in NFA_MAJOR and spec.quote in NFA_MAJOR else 20
    return math.inf


def resolve_leverage(spec: InstrumentSpec, requested: float | None, jurisdiction: str | None,
                     broker_max: float | None = None) -> tuple[float, str, dict[str, float | None]]:
    """(applied leverage, the rule that set it, all the limits considered).

    With no requested leverage and no cap from a jurisdiction or broker, the ESMA retail cap for the
    instrument's class applies (rule "esma-default"): the conservative retail default.
    """
    juris = jurisdiction or "none"
    reg = regulatory_cap(spec, juris)
    candidates: list[tuple[float, str]] = []
    if requested is not None:
        candidates.append((requested, "requested"))
    if math.isfinite(reg):
        candidates.append((reg, juris))
    if broker_max is not None:
        candidates.append((broker_max, "broker"))
    if not candidates:
        applied, rule = float(ESMA_CAPS[spec.leverage_class]), "esma-default"
    else:
        applied, rule = min(candidates, key=lambda c: c[0])
        # A tie with the requested value means the request was honoured.
        if requested is not None and applied == requested:
            rule = "requested"
    limits: dict[str, float | None] = {
        "requested": requested,
        "regulatory": reg if math.isfinite(reg) else None,
        "broker": broker_max,
    }
    return float(applied), rule, limits
