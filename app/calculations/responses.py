"""Response models of the calculation routes: the wire format each engine returns, field for field.

The pipeline sends the engine's dict as it is (no re-validation on the hot path), so these models are
the published contract; tests/openapi_conformance.py checks every response the suite sees against them.
A field the code leaves out when it does not apply is `Omitted` (not required, never null); `X | None`
marks a field the code sends as null.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, RootModel

from app.calc.instruments import MarginMode
from app.schemas import (
    Direction,
    ExplainStep,
    Flag,
    HistoryWindow,
    MarketAnswer,
    Omitted,
    OutModel,
    Quote,
    RatesUsed,
)

LeverageRule = Literal["requested", "esma", "fca", "asic", "nfa", "broker", "esma-default"]
MinLotPolicy = Literal["raise", "refuse"]
Explained = Annotated[list[ExplainStep], Field(description="With ?explain=true: the ordered calculation steps")]


class LeverageLimits(OutModel):
    """Every limit considered for the applied leverage (x:1); null where none applies."""

    requested: float | None
    regulatory: float | None = Field(description="Cap of the jurisdiction for this instrument's class")
    broker: float | None = Field(description="The broker's configured maximum")


# ---- lots ----

class LotsResponse(OutModel):
    calculation_id: str
    currency_pair: str
    units: float
    lots: float = Field(description="units / contractSize, unrounded")
    standard_lots: float = Field(description="units / 100,000")
    mini_lots: float = Field(description="units / 10,000")
    micro_lots: float = Field(description="units / 1,000")
    contract_lots: float
    tradeable_lots: float = Field(description="Rounded to the lot step, then the min/max lot policy; 0 = no trade")
    tradeable_units: float
    contract_size: float
    lot_step: float
    min_lot: float
    max_lot: float
    min_units: float
    step_units: float
    max_units: float
    flags: list[Flag]
    explain: Explained = Omitted()


# ---- portfolio ----

class PortfolioPositionRisk(OutModel):
    currency_pair: str
    side: Direction
    lots: float
    units: float
    risk_at_stop: float | None = Field(description="Money lost at the stop, account currency; null without a stop")
    stop_distance_pips: float = Omitted("With a stop")
    required_margin: float | None = Field(description="null (flag MARGIN_UNAVAILABLE) when no rate converts it")
    notional: float | None = Field(description="Account currency; null (flag MARGIN_UNAVAILABLE) when no rate "
                                   "converts it")
    leverage: float
    leverage_cap: LeverageRule
    rates_used: RatesUsed
    risk_share: float = Omitted("Share of the total risk at the stops (0..1); with a stop and a positive total")


class LargestContributor(OutModel):
    index: int
    currency_pair: str
    risk_at_stop: float


class NetExposure(OutModel):
    amount: float = Field(description="Net units of the currency (long > 0)")
    account_value: float | None = Field(description="In the account currency; null when no rate converts it")


class Correlation(OutModel):
    pairs: list[str]
    matrix: list[list[float]] = Field(description="Pearson correlation of the pairs' returns, in `pairs` order")
    observations: int
    method: Literal["pearson"]


class PortfolioResponse(MarketAnswer):
    calculation_id: str
    account_currency: str
    positions: list[PortfolioPositionRisk]
    risk_by_position: list[float | None] = Field(description="riskAtStop per position (null without a stop)")
    total_risk: float = Field(description="Sum of riskAtStop, account currency")
    total_risk_complete: bool = Field(description="false: some position has no stop (UNBOUNDED_RISK)")
    total_margin: float | None = Field(description="Sum of requiredMargin; null when a position's margin cannot be "
                                       "converted (MARGIN_UNAVAILABLE)")
    total_margin_complete: bool = Field(description="false: some position's margin could not be converted "
                                        "(MARGIN_UNAVAILABLE), totalMargin is null")
    margin_by_position: list[float | None] = Field(description="requiredMargin per position (null when unavailable)")
    rates_used: RatesUsed
    flags: list[Flag]
    largest_contributor: LargestContributor = Omitted("The position with the largest risk at its stop")
    total_risk_percentage: float = Omitted("With accountBalance: totalRisk in % of the balance")
    margin_percentage: float = Omitted("With accountBalance and totalMarginComplete: totalMargin in % of the balance")
    free_margin_after: float = Omitted("With accountBalance or freeMargin, and totalMarginComplete")
    net_exposure_by_currency: dict[str, NetExposure]
    net_exposure_complete: bool = Field(description="false: a position's currencies could not be netted")
    correlation_adjusted_risk: float = Omitted(
        "With returns: sqrt(r' C r), r = signed riskAtStop, C the correlation of the pairs (a heuristic)")
    sum_of_risks: float = Omitted("With returns: sum of |riskAtStop|")
    correlation: Correlation = Omitted("With returns")
    history: HistoryWindow = Omitted("With historyDays: the market history the returns were computed from")
    explain: Explained = Omitted()


# ---- multi-leg ----

class Leg(OutModel):
    entry_price: float
    weight: float
    exact_lots: float
    lots: float = Field(description="Floored to the lot step")
    stop_distance_pips: float
    risk: float = Field(description="Loss of this leg at the stop, commission included, account currency")


class MultiLegResponse(MarketAnswer):
    calculation_id: str
    direction: Direction
    stop_loss: float
    legs: list[Leg]
    risk_by_leg: list[float]
    lots_by_leg: list[float]
    target_risk_amount: float
    total_risk: float
    total_lots: float
    rates_used: RatesUsed
    risk_percentage: float = Omitted("With accountBalance: totalRisk in % of the balance")
    explain: Explained = Omitted()


# ---- projection ----

class ProjectionSequence(OutModel):
    """`outcomes` given: the equity path of that one W/L sequence."""

    calculation_id: str
    method: Literal["sequence"]
    balance_path: list[float] = Field(description="Balance after each trade")
    final_balance: float
    return_percentage: float
    max_drawdown_percentage: float
    trades: int
    wins: int
    explain: Explained = Omitted()


class Fan(OutModel):
    """Equity percentiles per step (step 0 = startBalance); null above the float range (about 1.8e308,
    flag EQUITY_ABOVE_FLOAT_RANGE)."""

    p5: list[float | None]
    p25: list[float | None]
    p50: list[float | None]
    p75: list[float | None]
    p95: list[float | None]


class FinalEquityPercentiles(OutModel):
    """null above the float range (flag EQUITY_ABOVE_FLOAT_RANGE)."""

    p5: float | None
    p25: float | None
    p50: float | None
    p75: float | None
    p95: float | None


class DrawdownProbability(OutModel):
    threshold_percentage: float
    probability: float = Field(description="Share of paths whose maximum drawdown reaches the threshold")


class TradeStatistics(OutModel):
    """Of the `trades` list (R multiples). A ratio that is infinite (no losing trade) is null."""

    count: int
    non_zero: int = Field(description="Trades with a non-zero result: the base of the win rate")
    win_rate: float
    average_win: float
    average_loss: float = Field(description="Positive")
    payoff_ratio: float | None = Field(description="averageWin / averageLoss; null without a losing trade")
    profit_factor: float | None = Field(description="Gross win / gross loss; null without a losing trade")
    expectancy: float = Field(description="Mean R per trade")
    std_dev: float = Field(description="Sample standard deviation (ddof 1) of R")
    kelly_fraction: float | None = Field(description="null without a winning trade (undefined)")
    half_kelly: float | None


class FixedRiskQuantiles(OutModel):
    q05: float
    q50: float
    q95: float


class ProjectionAnalytic(OutModel):
    fixed_risk_amount: float = Field(description="Money risked per trade in the fixed-risk closed form")
    fixed_risk_pnl_mean: float
    fixed_risk_pnl_std_dev: float
    fixed_risk_pnl_quantiles: FixedRiskQuantiles = Field(description="Normal (CLT) P&L after numberOfTrades")
    fixed_fraction_median_equity: float
    fixed_fraction_mean_equity: float


class ProjectionConventions(OutModel):
    trade: str
    sizing: str
    drawdown: str
    ruin: str
    analytic: str
    generator: str


class ProjectionMonteCarlo(OutModel):
    """No `outcomes`: a Monte Carlo projection from winRate + rewardToRisk, or bootstrapped `trades`."""

    calculation_id: str
    method: Literal["monte-carlo"]
    source: Literal["trades", "win-rate"]
    paths: int
    number_of_trades: int
    seed: int = Field(description="The seed used (drawn at random when the request gave none)")
    compounding: bool
    start_balance: float
    fan: Fan
    fan_percentiles: list[float]
    median_final_equity: float | None = Field(description="null above the float range (flag "
                                                     "EQUITY_ABOVE_FLOAT_RANGE)")
    mean_final_equity: float | None = Field(description="null above the float range (flag EQUITY_ABOVE_FLOAT_RANGE)")
    final_equity_percentiles: FinalEquityPercentiles
    probability_of_loss: float
    drawdown_probabilities: list[DrawdownProbability]
    median_max_drawdown: float = Field(description="Fraction, <= 0")
    ruin_level: float
    ruin_probability: float
    ruin_standard_error: float
    flags: list[Flag]
    trade_statistics: TradeStatistics = Omitted("With trades")
    analytic: ProjectionAnalytic
    conventions: ProjectionConventions


class ProjectionResponse(RootModel[Annotated[ProjectionSequence | ProjectionMonteCarlo,
                                             Field(discriminator="method")]]):
    """`method` sequence (outcomes given) or monte-carlo."""


# ---- ATR ----

class AtrSeriesResponse(OutModel):
    """From high/low/close series."""

    calculation_id: str
    true_range: list[float]
    atr: list[float | None] = Field(description="Wilder ATR per bar; null before the first `period` bars")
    latest_atr: float
    period: int
    true_range_method: Literal["close-to-close"] = Omitted(
        "Closes only (no high/low): each true range is |close - previous close|, one per close after the first")
    flags: list[Flag] = Omitted("ATR_CLOSE_ONLY_HISTORY (closes only), DEVELOPMENT_HISTORY")
    history: HistoryWindow = Omitted("With symbol: the daily bars used (window, source, label)")
    explain: Explained = Omitted()


class AtrUpdateResponse(OutModel):
    """From previousAtr and trueRange: one Wilder update."""

    calculation_id: str
    atr: float
    period: int
    method: Literal["wilder"]
    formula: str
    explain: Explained = Omitted()


class AtrResponse(RootModel[AtrSeriesResponse | AtrUpdateResponse]):
    """A series (high/low/close given) or one update (previousAtr, trueRange)."""


# ---- cross rate, convert ----

class Rounding(OutModel):
    decimals: int
    mode: Literal["half-up"]


class CrossRateResponse(MarketAnswer):
    calculation_id: str
    target: str
    bid: float
    ask: float
    mid: float
    spread: float = Field(description="ask - bid, unrounded")
    path: list[str] = Field(description="The quoted pairs multiplied, in order")
    currency_path: list[str] = Field(description="The currencies visited, base first, quote last")
    rates_used: RatesUsed
    bid_unrounded: float = Omitted("With decimals")
    ask_unrounded: float = Omitted("With decimals")
    rounding: Rounding = Omitted("With decimals")
    explain: Explained = Omitted()


class ConversionRate(OutModel):
    bid: float
    ask: float
    mid: float


class ConvertResponse(MarketAnswer):
    calculation_id: str
    from_currency: str = Field(alias="from")
    to_currency: str = Field(alias="to")
    amount: float
    path: list[str] = Field(description="The quoted pairs multiplied, in order")
    currency_path: list[str] = Field(description="The currencies visited, `from` first, `to` last")
    rate: ConversionRate = Field(description="Units of `to` per unit of `from`")
    mid: float = Field(description="amount at the mid rate")
    loss: float = Field(description="amount at the ask (an amount owed in `from`)")
    profit: float = Field(description="amount at the bid (an amount received in `from`)")
    rates_used: RatesUsed
    explain: Explained = Omitted()


# ---- position-size conventions (also per batch item) ----

class ItemConventions(OutModel):
    """The options one position size used (a batch item echoes these; the prose is given once per batch)."""

    version: str
    conversion_at: Literal["entry", "stop"]
    rate_side: Literal["mid", "conservative"]
    lot_rounding: Literal["down", "nearest"]
    min_lot_policy: MinLotPolicy
    margin_mode: MarginMode
    pip_size: float


class PositionSizeConventions(ItemConventions):
    commission: str
    spread: str
    direction: str
    conversion: str
    own_rate_check: str


# ---- batch ----

class BatchItemResult(OutModel):
    """One position size: the `fields` asked for (default: all), as in POST /position-size."""

    direction: Direction = Omitted()
    stop_loss: float = Omitted()
    stop_distance_pips: float = Omitted()
    position_size: float = Omitted("Tradeable units")
    lot_size: float = Omitted("Tradeable lots")
    exact_position_size: float = Omitted()
    exact_lot_size: float = Omitted()
    target_risk_amount: float = Omitted()
    max_loss: float = Omitted()
    risk_percentage: float = Omitted()
    loss_per_lot: float = Omitted()
    pip_value: float = Omitted()
    pip_value_per_lot: float = Omitted()
    required_margin: float | None = Omitted("null (flag MARGIN_UNAVAILABLE) when no rate converts it")
    margin_percentage: float | None = Omitted("null with requiredMargin")
    leverage: float = Omitted()
    leverage_cap: LeverageRule = Omitted()
    flags: list[Flag] = Omitted()
    rates_used: RatesUsed = Omitted("The rates this item converted with")
    conventions: ItemConventions = Omitted("This item's own options")
    explain: Explained = Omitted("With ?explain=true")


class FieldError(OutModel):
    field: str = Field(description="The field at fault, e.g. items[3].stopLoss")
    pointer: str = Field(description="JSON pointer into the request body")
    code: str
    detail: str
    needed_rate: str = Omitted("MISSING_CONVERSION_RATE: the pair that would convert")


class ItemProblem(OutModel):
    """The problem detail of one failed item."""

    type: str
    status: int
    detail: str
    errors: list[FieldError]


class BatchRowOk(OutModel):
    index: int
    ok: Literal[True]
    result: BatchItemResult


class BatchRowFailed(OutModel):
    index: int
    ok: Literal[False]
    error: ItemProblem


class BatchColumns(OutModel):
    """One array per requested field, in item order; null at a failed item."""

    direction: list[Direction | None] = Omitted()
    stop_loss: list[float | None] = Omitted()
    stop_distance_pips: list[float | None] = Omitted()
    position_size: list[float | None] = Omitted()
    lot_size: list[float | None] = Omitted()
    exact_position_size: list[float | None] = Omitted()
    exact_lot_size: list[float | None] = Omitted()
    target_risk_amount: list[float | None] = Omitted()
    max_loss: list[float | None] = Omitted()
    risk_percentage: list[float | None] = Omitted()
    loss_per_lot: list[float | None] = Omitted()
    pip_value: list[float | None] = Omitted()
    pip_value_per_lot: list[float | None] = Omitted()
    required_margin: list[float | None] = Omitted()
    margin_percentage: list[float | None] = Omitted()
    leverage: list[float | None] = Omitted()
    leverage_cap: list[LeverageRule | None] = Omitted()
    flags: list[list[Flag] | None] = Omitted()
    rates_used: list[dict[str, float | Quote] | None] = Omitted()
    conventions: list[ItemConventions | None] = Omitted()
    explain: list[list[ExplainStep] | None] = Omitted("With ?explain=true")


class BatchItemError(ItemProblem):
    index: int


class BatchConventions(OutModel):
    version: str
    note: str
    conversion: str = Field(description="How every item's conversion path is chosen")
    direction: str = Field(description="How every item's direction is set")


class PositionSizeBatchResponse(OutModel):
    calculation_id: str
    count: int
    succeeded: int
    failed: int
    conventions: BatchConventions
    results: list[BatchRowOk | BatchRowFailed] = Omitted(
        "format rows: one per item, in order: {index, ok: true, result} or {index, ok: false, error}")
    columns: BatchColumns = Omitted("format columns")
    errors: list[BatchItemError] = Omitted("format columns: the failed items")
