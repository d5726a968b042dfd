"""Request and response schemas of the calculation API (the field names are the public contract)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from app.calculations.responses import Explained, LeverageLimits, LeverageRule, PositionSizeConventions
from app.calculations.risk.schemas import HistoryDay, HistoryDays, HistoryInputs, ReturnsHistory
from app.instruments.schemas import Instrument
from app.schemas import (
    ApiModel,
    ConversionPaths,
    ConversionRates,
    Currency,
    Direction,
    Distance,
    ExplainStep,
    Flag,
    InstrumentOverride,
    Jurisdiction,
    LeverageValue,
    Lots,
    MarketAnswer,
    MarketRates,
    Money,
    MoneyNonNeg,
    Omitted,
    OutModel,
    Price,
    Probability,
    RatesUsed,
    Symbol,
    Units,
)


class TakeProfitLevel(ApiModel):
    price: Price
    share: Annotated[float, Field(gt=0, le=1, description="Fraction of the position closed at this price")]


class PositionSizeRequest(MarketRates):
    account_balance: Money
    account_currency: Currency
    currency_pair: Symbol
    entry_price: Price | None = Field(
        default=None, description="Required, unless a direction is given and marketRates is on: then the ask "
        "for a long, the bid for a short, from the broker's quote chain")
    stop_loss: Price | None = Field(default=None, description="Stop price (direction follows from it)")
    stop_loss_pips: Distance | None = None
    stop_loss_points: Distance | None = Field(default=None, description="Stop distance in ticks (MT5 points)")
    atr: Distance | None = Field(default=None, description="Average true range, in price units")
    atr_multiplier: Annotated[float, Field(gt=0, le=100)] = 1.0
    spread: Annotated[float, Field(ge=0, le=1e6)] | None = Field(
        default=None, description="Spread as a price distance (0.00008 on EURUSD); or give spreadPips")
    spread_pips: Annotated[float, Field(ge=0, le=1e6)] | None = Field(
        default=None, description="Spread in pips of the instrument (0.8); converted with its pipSize")
    spread_adjust_stop: bool = Field(default=False, description="Push an ATR stop out by the spread")
    risk_percentage: Annotated[float, Field(gt=0, le=100)] | None = None
    risk_amount: Money | None = None
    lots: Lots | None = Field(default=None, description="Reverse mode: the risk of this size")
    direction: Direction | None = None
    take_profit: Price | Annotated[list[TakeProfitLevel], Field(min_length=1, max_length=10)] | None = None
    leverage: LeverageValue | None = None
    jurisdiction: Jurisdiction | None = None
    commission_per_lot: MoneyNonNeg = Field(default=0.0, description="One way, in account currency")
    free_margin: MoneyNonNeg | None = None
    conversion_rates: ConversionRates | None = None
    instrument: InstrumentOverride | None = None
    min_lot_policy: Literal["raise", "refuse"] = "raise"
    conversion_at: Literal["entry", "stop"] = "entry"
    rate_side: Literal["mid", "conservative"] = "mid"
    lot_rounding: Literal["down", "nearest"] = "down"


POSITION_SIZE_EXAMPLE = {
    "accountBalance": 10000, "accountCurrency": "USD", "currencyPair": "EURUSD", "entryPrice": 1.1850,
    "stopLoss": 1.1820, "riskPercentage": 2, "leverage": 30,
}


class TakeProfitLeg(OutModel):
    price: float
    share: float
    lots: float
    pips: float
    gross_profit: float
    risk_reward_ratio: float


class PositionSizeResponse(MarketAnswer):
    calculation_id: str
    direction: Direction
    stop_distance_pips: float
    position_size: float = Field(description="Tradeable units (lotSize x contractSize)")
    lot_size: float = Field(description="Tradeable lots, rounded to the lot step")
    exact_position_size: float
    exact_lot_size: float
    target_risk_amount: float
    max_loss: float = Field(description="Money lost at the stop with the tradeable size, commission included")
    risk_percentage: float = Field(description="Actual risk at the tradeable size, in % of balance")
    pip_value: float
    pip_value_per_lot: float
    required_margin: float | None = Field(description="null (flag MARGIN_UNAVAILABLE) when no rate converts it")
    margin_percentage: float | None
    leverage: float
    leverage_cap: LeverageRule = Field(description="Rule that set the leverage: requested, esma, fca, asic, nfa, "
                                       "broker, esma-default")
    potential_profit: float | None = None
    risk_reward_ratio: float | None = None
    take_profits: list[TakeProfitLeg] | None = None
    flags: list[Flag]
    rates_used: RatesUsed
    conversion_paths: ConversionPaths
    conventions: PositionSizeConventions
    explain: list[ExplainStep] | None = None
    direction_source: Literal["stopLoss", "direction", "takeProfit", "assumed"] = Field(
        description="What set the direction: the stop's side, the request, the take-profit's side, or long assumed")
    entry_price: float
    stop_loss: float = Field(description="The stop price (computed from a pips, points or ATR stop)")
    stop_distance: float = Field(description="Price units")
    target_risk_percentage: float = Field(description="The target risk in % of balance")
    loss_per_lot: float = Field(description="Loss of one lot at the stop, round-turn commission included")
    commission: float = Field(description="Round-turn commission of the tradeable size")
    margin_per_lot: float | None = Field(description="null (flag MARGIN_UNAVAILABLE) when no rate converts it")
    notional: float | None = Field(description="Notional of the tradeable size, account currency; null with "
                                   "marginPerLot")
    leverage_limits: LeverageLimits
    pip_value_needed: float = Field(description="Pip value that loses exactly the target at the stop")
    target_risk_amount_quote: float = Field(description="The target risk in the quote currency")
    max_loss_at_stop_rate: float = Field(
        description="maxLoss with the quote->account rate taken at the stop (differs for a self-converting pair)")
    exact_pip_value: float
    exact_required_margin: float | None = Field(description="null (flag MARGIN_UNAVAILABLE) when no rate converts it")
    exact_margin_percentage: float | None
    spread: float = Field(description="The spread used, as a price distance (spreadPips x pipSize when given in "
                          "pips); 0 without one")
    max_lots_by_margin: float = Omitted("With freeMargin: the most lots the free margin carries")
    margin_limited_lot_size: float = Omitted("With freeMargin, when the size exceeds it (EXCEEDS_MAX_SIZE_BY_MARGIN)")
    margin_limited_position_size: float = Omitted("Units of marginLimitedLotSize")
    break_even_win_rate: float = Omitted("With takeProfit")
    instrument: Instrument


class PipValueRequest(MarketRates):
    account_currency: Currency
    currency_pair: Symbol
    lots: Lots | None = None
    units: Units | None = None
    price: Price | None = Field(default=None, description="Price of the pair, used when it converts itself")
    conversion_rates: ConversionRates | None = None
    instrument: InstrumentOverride | None = None


class PipValueResponse(MarketAnswer):
    calculation_id: str
    pip_value: float
    pip_value_per_lot: float
    pip_value_per_unit: float
    pip_value_quote: float
    tick_value_per_lot: float
    rates_used: RatesUsed
    currency_pair: str
    account_currency: str
    quote_currency: str
    pip_size: float
    tick_size: float
    points_per_pip: float
    units: float
    lots: float
    pip_value_per_lot_quote: float
    tick_value: float
    quote_to_account_rate: float = Field(description="X(quote -> account) used for the values")
    pip_value_base: float = Omitted("Pip value in the base currency (a pair whose base is not the account's)")
    base_currency: str = Omitted("With pipValueBase")
    explain: Explained = Omitted()
    conversion_paths: ConversionPaths


class MarginRequest(MarketRates):
    account_currency: Currency
    currency_pair: Symbol
    lots: Lots | None = None
    units: Units | None = None
    price: Price | None = Field(default=None, description="Instrument price (fill price); default: the pair's "
                                "rate from conversionRates, ask for a buy and bid for a sell")
    leverage: LeverageValue | None = None
    jurisdiction: Jurisdiction | None = None
    account_balance: Money | None = None
    free_margin: MoneyNonNeg | None = None
    side: Direction | None = None
    open_price: Price | None = Field(default=None, description="Open price of the position, for unrealised P&L")
    conversion_rates: ConversionRates | None = None
    instrument: InstrumentOverride | None = None


class MarginResponse(MarketAnswer):
    calculation_id: str
    required_margin: float
    notional: float
    leverage: float
    leverage_cap: LeverageRule
    effective_leverage: float
    max_lots_by_margin: float = Omitted("With freeMargin or accountBalance: freeMarginBefore / marginPerLot, "
                                        "floored to the lot step")
    free_margin_before: float = Omitted("With freeMargin or accountBalance: the freeMargin given, else the equity "
                                        "(balance + unrealizedPnl, or the balance)")
    free_margin_source: Literal["freeMargin", "equity", "accountBalance"] = Omitted(
        "With freeMarginBefore: what it is (freeMargin given; equity with openPrice and side; else the balance)")
    free_margin_after: float = Omitted("With freeMarginBefore: freeMarginBefore - requiredMargin")
    flags: list[Flag]
    rates_used: RatesUsed
    currency_pair: str
    account_currency: str
    units: float
    lots: float
    price: float | None = Field(description="The fill price used; null for an FX margin computed without it")
    margin_mode: Literal["fx", "cfd", "cfd-leverage"]
    margin_rate: float
    leverage_limits: LeverageLimits
    margin_per_lot: float
    margin_currency: str
    margin_requirement_rate: float | None = Field(description="requiredMargin / notional (null for a zero notional)")
    margin_in_margin_currency: float = Omitted("FX margin mode: the margin in the margin currency")
    unrealized_pnl: float = Omitted("With openPrice, side and accountBalance")
    equity: float = Omitted("With openPrice, side and accountBalance: balance + unrealizedPnl")
    margin_percentage: float = Omitted("With accountBalance")
    free_margin: float = Omitted("Same as freeMarginAfter (its older name)")
    margin_level: float | None = Omitted("With accountBalance: equity / requiredMargin x 100 (null for zero margin)")
    max_lots_by_margin_exact: float = Omitted("With freeMarginBefore: freeMarginBefore / marginPerLot, unrounded")
    explain: Explained = Omitted()
    conversion_paths: ConversionPaths


class PnlRequest(MarketRates):
    account_currency: Currency
    currency_pair: Symbol
    side: Direction
    open_price: Price
    close_price: Price
    lots: Lots | None = None
    units: Units | None = None
    commission_per_lot: MoneyNonNeg = 0.0
    swap: Annotated[float, Field(ge=-1e13, le=1e13)] = 0.0
    conversion_rates: ConversionRates | None = None
    instrument: InstrumentOverride | None = None


class PnlResponse(MarketAnswer):
    calculation_id: str
    pips: float
    pnl_quote: float
    gross_pnl: float
    net_pnl: float
    flags: list[Flag] = Field(description="OWN_RATE_DIFFERS_FROM_PRICE when the pair's own rate is far from "
                              "closePrice")
    rates_used: RatesUsed
    currency_pair: str
    side: Direction
    account_currency: str
    quote_currency: str
    units: float
    lots: float
    price_change: float = Field(description="closePrice - openPrice")
    commission: float = Field(description="Round-turn commission")
    swap: float
    pnl: float = Field(description="Same as netPnl")
    return_on_notional: float = Field(description="Price move / openPrice, signed by the side")
    explain: Explained = Omitted()
    conversion_paths: ConversionPaths


class RiskRewardRequest(MarketRates):
    """Give price levels (entryPrice, stopLoss, takeProfit), or money amounts (riskAmount, rewardAmount),
    or the ratio alone (rewardToRisk)."""

    entry_price: Price | None = None
    stop_loss: Price | None = None
    take_profit: Price | Annotated[list[TakeProfitLevel], Field(min_length=1, max_length=10)] | None = None
    currency_pair: Symbol | None = None
    pip_size: Annotated[float, Field(gt=0, le=1e6)] | None = None
    risk_amount: Money | None = None
    reward_amount: Money | None = None
    reward_to_risk: Annotated[float, Field(gt=0, le=1e6)] | None = None
    cost_per_trade: MoneyNonNeg = Field(default=0.0, description="Round-turn cost, in money (with amounts)")
    cost_pips: Annotated[float, Field(ge=0, le=1e6)] = Field(
        default=0.0, description="Round-turn cost in pips (with price levels): spread plus commission")
    lots: Lots | None = None
    commission_per_lot: MoneyNonNeg = Field(default=0.0, description="One way; with levels and lots")
    account_currency: Currency | None = None
    conversion_rates: ConversionRates | None = None
    win_rate: Probability | None = None
    instrument: InstrumentOverride | None = None


class UnroundedRatios(OutModel):
    """The ratios to 15 significant digits (the top-level ones are rounded to 10 decimals)."""

    risk_reward_ratio: float
    gross_risk_reward_ratio: float
    break_even_win_rate: float
    break_even_win_rate_without_costs: float


class RewardAtTakeProfit(OutModel):
    price: float
    share: float
    reward: float = Field(description="Account currency")


class RiskRewardResponse(MarketAnswer):
    calculation_id: str
    risk_reward_ratio: float
    break_even_win_rate: float
    expectancy_r: float | None = None
    expectancy: float | None = None
    gross_risk_reward_ratio: float = Field(description="reward / risk, before costs")
    break_even_win_rate_without_costs: float
    unrounded: UnroundedRatios
    risk_with_costs: float = Omitted("With a cost: risk + round-turn cost")
    reward_net_of_costs: float = Omitted("With a cost: reward - round-turn cost")
    direction: Direction = Omitted("Price levels")
    risk_distance: float = Omitted("Price levels: |entry - stop|, price units")
    reward_distance: float = Omitted("Price levels: share-weighted |takeProfit - entry|, price units")
    risk_pips: float = Omitted("Price levels with a pip size")
    reward_pips: float = Omitted("Price levels with a pip size")
    cost_pips: float = Omitted("Price levels with costPips")
    lots: float = Omitted("Price levels with lots")
    risk_amount: float = Omitted("Money amounts, or price levels with lots (account currency)")
    reward_amount: float = Omitted("Money amounts, or price levels with lots (account currency)")
    commission: float = Omitted("Round-turn cost in money")
    rates_used: RatesUsed = Omitted("Price levels with lots")
    conversion_paths: ConversionPaths = Omitted("Price levels with lots")
    take_profits: list[RewardAtTakeProfit] = Omitted("Price levels with lots")
    explain: Explained = Omitted()


class KellyRequest(ApiModel):
    win_rate: Probability | None = None
    # From 1e-6: (1 - W) / R of a denormal R is infinite, which JSON can only say as null.
    payoff_ratio: Annotated[float, Field(ge=1e-6, le=1e6)] | None = None
    trades: Annotated[list[Annotated[float, Field(ge=-1e13, le=1e13)]], Field(min_length=2, max_length=100_000)] \
        | None = Field(default=None, description="Trade results (money or R multiples)")


class KellyUnits(OutModel):
    """What each figure of a Kelly from trades is measured in."""

    trades: str
    kelly_fraction: str
    log_optimal_risk_fraction: str
    vince_optimal_f: str


class KellyResponse(OutModel):
    calculation_id: str
    kelly_fraction: float
    half_kelly: float
    recommended_fraction: float
    log_optimal_fraction: float = Omitted("With trades: same as logOptimalRiskFraction")
    flags: list[Flag]
    recommended_half_kelly: float
    win_rate: float
    payoff_ratio: float
    expectancy_r: float
    trades: int = Omitted("With trades: their count")
    worst_loss: float = Omitted("With trades: the worst result (negative)")
    log_optimal_growth_per_trade: float = Omitted("With winning and losing trades: mean log growth at the optimum")
    log_optimal_risk_fraction: float = Omitted("With trades: the growth-optimal fraction of equity to risk per 1R "
                                               "(root of mean(r / (1 + f r)) = 0), comparable with kellyFraction")
    vince_optimal_f: float = Omitted("With trades: Vince's optimal f, the fraction of equity lost if the worst "
                                     "trade repeats (logOptimalRiskFraction x |worstLoss|)")
    units: KellyUnits = Omitted("With winning and losing trades: the unit of each figure")
    explain: Explained = Omitted()


class RiskOfRuinRequest(ApiModel):
    win_rate: Probability
    payoff_ratio: Annotated[float, Field(gt=0, le=1000)] = 1.0
    capital_units: Annotated[float, Field(gt=0, le=1e6)] | None = Field(
        default=None, description="Capital in units of the fixed risk per trade")
    risk_fraction: Annotated[float, Field(gt=0, lt=1)] | None = Field(
        default=None, description="Fixed-fractional risk per trade (0.01 = 1 %)")
    ruin_level: Annotated[float, Field(gt=0, lt=1)] = Field(
        default=0.5, description="Ruin = equity ever below this fraction of the start")
    monte_carlo_paths: Annotated[int, Field(ge=0, le=100_000)] = 0
    monte_carlo_trades: Annotated[int, Field(ge=1, le=10_000)] = 1000
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None


class RuinMonteCarlo(OutModel):
    paths: int
    trades: int
    seed: int | None = Field(description="The request's seed; null when none was given")
    ruin_probability: float
    standard_error: float
    horizon: str = Omitted("capitalUnits without riskFraction: the simulation counts ruin within monteCarloTrades "
                           "trades (the root is for ever)")


class RiskOfRuinResponse(OutModel):
    calculation_id: str
    risk_of_ruin: float = Omitted("With capitalUnits: ruinRoot^capitalUnits (see riskOfRuinKind)")
    fixed_fractional_ruin_bound: float = Omitted("With riskFraction: ruinLevel^lundbergExponent (1 without one)")
    edge: float
    win_rate: float
    payoff_ratio: float
    expectancy_r: float
    flags: list[Flag]
    ruin_root: float = Field(description="x in (0, 1] with p x^(b+1) - x + q = 0; riskOfRuin = x^capitalUnits")
    capital_units: float = Omitted("With capitalUnits")
    method: Literal["root", "root-bound"] = Omitted(
        "With capitalUnits: root (x^capitalUnits is exact: whole payoff and capital) or root-bound (an upper bound)")
    risk_of_ruin_kind: Literal["exact", "bound"] = Omitted("With capitalUnits: whether riskOfRuin is the value or an "
                                                          "upper bound (flag RUIN_BOUND)")
    risk_fraction: float = Omitted("With riskFraction")
    ruin_level: float = Omitted("With riskFraction")
    lundberg_exponent: float | None = Omitted("With riskFraction; null when the log growth is not positive")
    fixed_fractional_ruin_kind: Literal["bound"] = Omitted("With riskFraction: fixedFractionalRuinBound is an upper "
                                                          "bound (Lundberg)")
    monte_carlo: RuinMonteCarlo = Omitted("With monteCarloPaths")
    explain: Explained = Omitted()


class LotsRequest(ApiModel):
    currency_pair: Symbol
    lots: Annotated[float, Field(ge=0, le=1e7)] | None = None
    units: Annotated[float, Field(ge=0, le=1e13)] | None = None
    min_lot_policy: Literal["raise", "refuse"] = "raise"
    lot_rounding: Literal["down", "nearest"] = "down"
    instrument: InstrumentOverride | None = None


class PortfolioPosition(ApiModel):
    currency_pair: Symbol
    side: Direction
    lots: Lots | None = None
    units: Units | None = None
    entry_price: Price | None = None
    stop_loss: Price | None = None
    stop_loss_pips: Distance | None = None
    stop_distance: Distance | None = Field(default=None, description="Stop distance in price units")
    leverage: LeverageValue | None = None
    instrument: InstrumentOverride | None = None


class PortfolioRequest(HistoryInputs, MarketRates):
    account_currency: Currency
    account_balance: Money | None = None
    free_margin: MoneyNonNeg | None = None
    jurisdiction: Jurisdiction | None = None
    positions: Annotated[list[PortfolioPosition], Field(min_length=1, max_length=50)]
    conversion_rates: ConversionRates | None = None
    returns: ReturnsHistory | None = Field(
        default=None, description="Daily returns per pair: adds the correlation-adjusted risk at the stops")
    history_days: HistoryDays | None = Field(
        default=None, description="Instead of returns: this many daily simple returns per pair from the market "
        "history (named in `history`); adds the correlation-adjusted risk")
    history_end: HistoryDay | None = Field(
        default=None, description="With historyDays: the last day of the window (default: the last complete day)")


class MultiLegEntry(ApiModel):
    price: Price
    weight: Annotated[float, Field(gt=0, le=1000)] = 1.0


class MultiLegRequest(MarketRates):
    account_currency: Currency
    currency_pair: Symbol
    entries: Annotated[list[MultiLegEntry], Field(min_length=1, max_length=20)]
    stop_loss: Price
    direction: Direction | None = None
    risk_amount: Money | None = None
    risk_percentage: Annotated[float, Field(gt=0, le=100)] | None = None
    account_balance: Money | None = None
    commission_per_lot: MoneyNonNeg = 0.0
    conversion_rates: ConversionRates | None = None
    instrument: InstrumentOverride | None = None


class ProjectionRequest(ApiModel):
    """`outcomes`: the equity path of that W/L sequence. Otherwise a Monte Carlo projection from
    `winRate` + `rewardToRisk`, or by bootstrapping `trades` (R multiples)."""

    start_balance: Money
    risk_percentage: Annotated[float, Field(gt=0, le=100)]
    reward_to_risk: Annotated[float, Field(gt=0, le=1e4)] | None = None
    outcomes: Annotated[list[Literal["W", "L"]], Field(min_length=1, max_length=100_000)] | None = None
    compounding: bool = True
    win_rate: Probability | None = None
    trades: Annotated[list[Annotated[float, Field(ge=-1e4, le=1e4)]], Field(min_length=2, max_length=100_000)] \
        | None = Field(default=None, description="Past trade results in R multiples, resampled with replacement")
    number_of_trades: Annotated[int, Field(ge=1, le=10_000)] = 100
    paths: Annotated[int, Field(ge=100, le=100_000)] = 10_000
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    fixed_risk_amount: Money | None = Field(
        default=None, description="Money risked per trade without compounding (default startBalance x risk%)")
    drawdown_thresholds: Annotated[list[Annotated[float, Field(gt=0, le=100)]], Field(min_length=1, max_length=10)] \
        = Field(default_factory=lambda: [10.0, 20.0, 30.0, 50.0], description="Drawdowns (%) to give P(reach) for")
    ruin_level: Annotated[float, Field(ge=0, lt=1)] = Field(
        default=0.5, description="Ruin = equity ever at or below this fraction of startBalance")


class AtrRequest(HistoryInputs):
    """Give candles (high, low, close; or close alone, a close-to-close estimate), or previousAtr with
    trueRange, or `symbol`: its daily bars are taken from the market history (window: `days` bars up to
    `to`, or `from`..`to`), and the answer names the window and source in `history`."""

    period: Annotated[int, Field(ge=1, le=1000)] = 14
    previous_atr: Distance | None = None
    true_range: Annotated[float, Field(ge=0, le=1e9)] | None = None
    high: Annotated[list[Price], Field(max_length=100_000)] | None = None
    low: Annotated[list[Price], Field(max_length=100_000)] | None = None
    close: Annotated[list[Price], Field(max_length=100_000)] | None = Field(
        default=None, description="Closes; alone (no high and low) each true range is |close - previous close| "
                                  "(flag ATR_CLOSE_ONLY_HISTORY)")
    symbol: Symbol | None = Field(default=None, description="Instead of candles: the pair whose daily history "
                                  "is used (EURUSD)")
    days: Annotated[int, Field(ge=2, le=5000)] | None = Field(
        default=None, description="With symbol: the number of daily bars (default 250), ending at `to`")
    from_day: HistoryDay | None = Field(default=None, alias="from", description="With symbol: first day (ISO date)")
    to_day: HistoryDay | None = Field(default=None, alias="to", description="With symbol: last day (ISO date; "
                                      "default and cap: the last complete day)")


class CrossRateRequest(MarketRates):
    target: Symbol
    conversion_rates: ConversionRates | None = None
    decimals: Annotated[int, Field(ge=0, le=12)] | None = Field(
        default=None, description="Also round bid/ask half-up to this many decimals")


class ConvertRequest(MarketRates):
    amount: Annotated[float, Field(ge=-1e13, le=1e13)]
    from_currency: Currency = Field(alias="from")
    to_currency: Currency = Field(alias="to")
    conversion_rates: ConversionRates | None = None


class BatchRequest(ApiModel):
    """Documentation of the batch body; app/calculations/batch.py parses it (per item, so one bad item
    fails alone). Give `items` or `columns`."""

    items: Annotated[list[dict[str, Any]], Field(max_length=10_000)] | None = Field(
        default=None, description="Position-size requests (the body of POST /position-size), up to 10,000")
    columns: dict[str, Any] | None = Field(
        default=None, description="Instead of items: field -> list of values, or one value for every item. "
        "Fields: accountBalance, accountCurrency, currencyPair, entryPrice, stopLoss, stopLossPips, "
        "riskPercentage, riskAmount, leverage, commissionPerLot, direction, minLotPolicy, jurisdiction")
    conversion_rates: ConversionRates | None = Field(
        default=None, description="Shared by every item (an item's own conversionRates win)")
    format: Literal["rows", "columns"] = Field(
        default="rows", description="rows: `results` in order; columns: one array per result field")
    fields: list[str] | None = Field(default=None, description="Result fields to return (default: all)")
