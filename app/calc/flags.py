"""Stable machine-readable flag codes (documented in the API reference) with plain-language messages."""

from __future__ import annotations

from typing import Any

FLAG_CODES: dict[str, str] = {
    "RAISED_TO_MIN_LOT_RISK_EXCEEDS_TARGET":
        "The exact size is below the minimum lot; the minimum lot is used and risks more than the target.",
    "BELOW_MIN_LOT_NO_TRADE": "The exact size is below the minimum lot; with minLotPolicy 'refuse' no trade is sized.",
    "CAPPED_AT_MAX_LOT": "The exact size exceeds the maximum lot; the size is capped at the maximum lot.",
    "EXCEEDS_MAX_SIZE_BY_MARGIN": "The free margin cannot carry this size at the applied leverage.",
    "RISK_EXCEEDS_TARGET": "Rounding to the nearest lot step risks more than the target.",
    "LEVERAGE_CAPPED": "The requested leverage is above a regulatory or broker cap; the cap is applied.",
    "ROUNDED_TO_LOT_STEP": "The given lots are not a multiple of the lot step; they are rounded down.",
    "NO_EDGE": "The expected value is not positive: the recommended fraction is 0.",
    "RISK_ABOVE_10_PERCENT": "More than 10 % of the account is at risk on one trade.",
    "UNBOUNDED_RISK": "At least one position has no stop: total risk counts only positions with stops.",
    "SINGULAR_COVARIANCE_FALLBACK": "The covariance matrix is singular; its eigenvalues were clipped at zero "
                                    "(covarianceFallback eigen-clip).",
    "MARGIN_UNAVAILABLE": "The margin cannot be converted to the account currency with the rates given; the "
                          "size does not depend on it. Add the rate named in data.neededRate for the margin.",
    "MARGIN_EXCEEDS_BALANCE": "The required margin is above the account balance (no freeMargin given): the "
                              "position cannot be opened at this leverage.",
    "DIRECTION_ASSUMED": "No stopLoss price, takeProfit or direction gives the side: long is assumed. Send "
                         "direction to be sure the stop is on the right side.",
    "OWN_RATE_DIFFERS_FROM_PRICE": "The instrument's own rate in conversionRates differs from the trade's price "
                                   "level by more than 1 %; the rate is used for conversion.",
    "NOT_OFFERED_TO_US_RETAIL": "Under NFA/CFTC rules CFDs on indices, metals, commodities, shares and crypto "
                                "are not offered to US retail clients; no US regulatory leverage cap applies.",
    "CORNISH_FISHER_OUT_OF_DOMAIN": "The P&L's skewness and excess kurtosis are outside the domain where the "
                                    "Cornish-Fisher expansion is a monotone quantile function (Maillard 2012), or "
                                    "it gave a negative VaR for a book with losses; var and es are the larger of "
                                    "the Gaussian and historical figures (es at least var, var at least 0 for a "
                                    "book with losses). The raw expansion is in cornishFisherVar/cornishFisherEs.",
    "EQUITY_ABOVE_FLOAT_RANGE": "Some simulated equity exceeds the largest representable number (about 1.8e308): "
                                "fan and final-equity figures above it are null; drawdown and ruin figures are "
                                "computed on log equity and are exact.",
    "HORIZON_REVALUATION_DIFFERS": "The revalued VaR or ES (positions revalued at the moved prices and conversion "
                                   "rates, revaluedVar/revaluedEs) differs from the linear figure by more than "
                                   "1 %: over this horizon, or with these moves, the linear mapping is not "
                                   "reliable.",
    "RUIN_BOUND": "The payoff is not a whole number of risk units: the root formula is an upper bound on the "
                  "risk of ruin, not its value; ask for monteCarloPaths for an estimate.",
    "ATR_CLOSE_ONLY_HISTORY": "Only closing prices are known (high and low unknown, e.g. one reference fix a day): "
                              "each true range is estimated from the close-to-close move, which underestimates "
                              "the intraday range.",
    "DEVELOPMENT_HISTORY": "The price history is the development data shipped with the project (named in "
                           "history.sources), not live market data: do not trade on these figures.",
}


def flag(code: str, message: str | None = None, **data: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message or FLAG_CODES[code]}
    if data:
        out["data"] = data
    return out


class Explain:
    """Ordered calculation steps, each with its formula, inputs and value (?explain=true)."""

    __slots__ = ("steps",)

    def __init__(self) -> None:
        self.steps: list[dict[str, Any]] = []

    def add(self, step: str, formula: str, inputs: dict[str, Any], value: Any) -> None:
        self.steps.append({"step": step, "formula": formula, "inputs": inputs, "value": value})
