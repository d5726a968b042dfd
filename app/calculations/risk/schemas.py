"""Request schemas of the risk API (VaR/ES, stress, drawdown). Field names are the public contract."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr

from app.schemas import (
    ApiModel,
    ConversionRates,
    Currency,
    Direction,
    InstrumentOverride,
    Lots,
    MarketRates,
    Price,
    Symbol,
)

MAX_OBSERVATIONS = 20_000
MAX_POSITIONS = 50

Return = Annotated[float, Field(ge=-1, le=100, description="Daily simple return (0.01 = +1 %)")]
SignedMoney = Annotated[float, Field(ge=-1e13, le=1e13)]
Confidence = Annotated[float, Field(gt=0.5, lt=1)]
Shock = Annotated[float, Field(gt=-1, le=10, description="Relative move (-0.05 = -5 %)")]


HistoryDay = Annotated[date, Field(ge=date(1990, 1, 1), le=date(2100, 12, 31))]
HistoryDays = Annotated[int, Field(ge=2, le=5000, description="Daily returns (observations) taken from the market "
                                   "history")]


class HistoryInputs(ApiModel):
    """A request whose series the route's prepare step may fill from the market history. What it filled
    from (window, sources, labels) rides along privately, never from the body: the engine names it in the
    answer, and the result cache key includes it."""

    _history: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def history_used(self) -> dict[str, Any] | None:
        return self._history


class ReturnsHistory(ApiModel):
    dates: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=MAX_OBSERVATIONS)] | None = Field(
        default=None, description="One label per observation (ISO dates), oldest first")
    series: Annotated[
        dict[Annotated[str, Field(max_length=16)], Annotated[list[Return], Field(max_length=MAX_OBSERVATIONS)]],
        Field(min_length=1, max_length=MAX_POSITIONS),
    ] = Field(description="pair -> daily simple returns of its price, oldest first, all the same length",
              examples=[{"EURUSD": [0.001, -0.002, 0.0005], "USDJPY": [-0.0004, 0.003, 0.001]}])


class RiskPosition(ApiModel):
    """Signed exposure in the account currency (P&L = exposure x pair return), or lots with a side."""

    currency_pair: Symbol
    exposure: SignedMoney | None = Field(default=None, description="Signed account-currency value; long > 0")
    lots: Lots | None = None
    side: Direction | None = None
    price: Price | None = Field(default=None, description="Current price of the pair, for lots")
    instrument: InstrumentOverride | None = None


Positions = Annotated[list[RiskPosition], Field(min_length=1, max_length=MAX_POSITIONS)]


class VarRequest(HistoryInputs, MarketRates):
    account_currency: Currency
    positions: Positions
    returns: ReturnsHistory | None = Field(
        default=None, description="Daily simple returns per pair. Left out: historyDays returns per pair are taken "
        "from the market history, and the answer names the window and sources in `history`")
    history_days: HistoryDays | None = Field(
        default=None, description="Without returns: observations per pair (default 250, server setting)")
    history_end: HistoryDay | None = Field(
        default=None, description="Without returns: the last day of the window (default: the last complete day)")
    method: Literal["historical", "parametric", "ewma", "cornish-fisher", "monte-carlo"] = "historical"
    confidence: Confidence | Annotated[list[Confidence], Field(min_length=1, max_length=10)] = Field(
        default_factory=lambda: [0.95, 0.99], description="One confidence or several; components use the first")
    horizon_days: Annotated[float, Field(ge=1, le=260)] = Field(
        default=1, description="Scales sigma (and every linear VaR/ES) by sqrt(T), the mean by T; revaluedVar and "
        "revaluedEs revalue each position at the h-day moves instead")
    quantile_method: Literal["discrete", "discrete-loss", "linear"] = Field(
        default="discrete", description="historical: discrete = k-th worst P&L with k = ceil(alpha n - 1e-9); "
        "discrete-loss = lower quantile of the losses at the confidence (skfolio); linear = numpy/empyrical type 7")
    es_method: Literal["rockafellar-uryasev", "tail-mean"] = Field(
        default="rockafellar-uryasev", description="historical ES: fractional boundary weight (riskfolio, skfolio) "
        "or the plain mean of the floor((n-1) alpha) + 1 worst (empyrical)")
    ewma_lambda: Annotated[float, Field(gt=0, lt=1)] = 0.94
    mean_adjusted: bool = Field(default=False, description="parametric/ewma/monte-carlo: subtract the sample mean "
                                "(default zero mean, RiskMetrics)")
    ddof: Literal[0, 1] = Field(default=1, description="Covariance divisor n - ddof (1: sample covariance)")
    paths: Annotated[int, Field(ge=100, le=1_000_000)] | None = Field(
        default=None, description="monte-carlo paths; default min(100,000, 1,000,000 / pairs)")
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = Field(
        default=None, description="monte-carlo seed; a random one is drawn and reported when omitted")
    covariance_fallback: Literal["none", "eigen-clip"] = Field(
        default="none", description="A singular covariance is a 422 unless eigen-clip is asked for")
    periods_per_year: Annotated[int, Field(ge=1, le=366)] = Field(
        default=252, description="For the annualised volatility of the P&L (252, 260 or 365)")
    conversion_rates: ConversionRates | None = None


VAR_EXAMPLE = {
    "accountCurrency": "USD",
    "positions": [{"currencyPair": "EURUSD", "exposure": 100000}, {"currencyPair": "USDJPY", "exposure": -50000}],
    "returns": {"dates": ["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"],
                "series": {"EURUSD": [0.001, -0.004, 0.002, -0.001], "USDJPY": [-0.002, 0.003, 0.001, 0.0]}},
    "method": "parametric", "confidence": [0.95, 0.99],
}


class NamedScenario(ApiModel):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    description: Annotated[str, Field(max_length=500)] | None = None
    shocks: Annotated[dict[Annotated[str, Field(max_length=16)], Shock], Field(min_length=1, max_length=200)] = Field(
        description="pair (EURUSD) or currency (CHF) -> relative move")


class StressRequest(MarketRates):
    account_currency: Currency
    positions: Positions
    shocks: Annotated[dict[Annotated[str, Field(max_length=16)], Shock], Field(min_length=1, max_length=200)] | None \
        = Field(default=None, description="pair or currency -> move; a currency moves against every other one",
                examples=[{"CHF": 0.15, "GBPUSD": -0.05}])
    scenarios: Annotated[list[NamedScenario], Field(max_length=50)] | None = None
    builtin_scenarios: Literal["all"] | Annotated[list[str], Field(max_length=20)] | None = Field(
        default=None, description="Built-in historical scenarios by name, or 'all' (the default when no shocks, "
        "scenarios or returns are given)")
    returns: ReturnsHistory | None = Field(default=None, description="History: worst realised windows")
    windows: Annotated[list[Annotated[int, Field(ge=1, le=260)]], Field(min_length=1, max_length=5)] = Field(
        default_factory=lambda: [1, 5], description="Window lengths (days) for the worst realised P&L")
    conversion_rates: ConversionRates | None = None


class DrawdownRequest(ApiModel):
    equity: Annotated[list[Annotated[float, Field(gt=0, le=1e15)]], Field(min_length=1,
                                                                          max_length=MAX_OBSERVATIONS)] | None = None
    pnl: Annotated[list[SignedMoney], Field(min_length=1, max_length=MAX_OBSERVATIONS)] | None = Field(
        default=None, description="P&L per bar instead of equity; needs initialEquity")
    initial_equity: Annotated[float, Field(gt=0, le=1e15)] | None = Field(
        default=None, description="Starting equity, the first peak (a first-bar loss counts)")
    dates: Annotated[list[Annotated[str, Field(max_length=32)]], Field(max_length=MAX_OBSERVATIONS)] | None = None
    include_series: bool = Field(default=False, description="Add the drawdown of every bar (underwater curve)")
