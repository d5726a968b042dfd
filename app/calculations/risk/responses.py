"""Response models of the risk routes (VaR/ES, stress, drawdown): the wire format, field for field.

`Omitted` fields are left out when they do not apply (never null); `X | None` is sent as null.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from app.schemas import Flag, HistoryWindow, MarketAnswer, Omitted, OutModel, RatesUsed

VarMethod = Literal["historical", "parametric", "ewma", "cornish-fisher", "monte-carlo"]


# ---- VaR ----

class VarResult(OutModel):
    confidence: float
    var: float = Field(description="Value at risk: a positive loss, account currency, over horizonDays")
    es: float = Field(description="Expected shortfall: a positive loss, account currency")
    var_fraction: float | None = Field(description="var / gross exposure; null for a zero gross exposure")
    es_fraction: float | None = Field(description="es / gross exposure; null for a zero gross exposure")
    revalued_var: float | None = Field(description="VaR by exact revaluation over horizonDays (conventions."
                                       "horizonRevaluation); null when a conversion passes through a price of zero")
    revalued_es: float | None = Field(description="ES by exact revaluation over horizonDays")
    var_standard_error: float = Omitted("monte-carlo")
    es_standard_error: float = Omitted("monte-carlo")
    z_cornish_fisher: float = Omitted("cornish-fisher: the adjusted quantile")
    gaussian_var: float = Omitted("cornish-fisher: the normal VaR with the same mean and population variance")
    cornish_fisher_var: float = Omitted("cornish-fisher: the raw expansion's VaR; it is `var` only inside Maillard's "
                                        "domain (else flag CORNISH_FISHER_OUT_OF_DOMAIN)")
    cornish_fisher_es: float = Omitted("cornish-fisher: the raw expansion's ES (closed-form tail mean)")


class VarComponent(OutModel):
    """One position's share of the VaR at the first confidence (componentsConfidence)."""

    index: int
    currency_pair: str
    exposure: float = Field(description="Signed, account currency")
    component_var: float = Field(description="Euler allocation: exposure x marginalVar; the components sum to "
                                             "the VaR")
    contribution: float | None = Field(description="componentVar / VaR; null when the VaR is not positive")
    marginal_var: float = Field(description="dVaR / d exposure")
    incremental_var: float = Field(description="VaR - VaR without this position")
    standalone_var: float = Field(description="VaR of this position alone")


class PnlStatistics(OutModel):
    """Of the book's daily P&L over the history (today's exposures), account currency."""

    mean: float
    std_dev: float = Field(description="Sample (ddof 1)")
    std_dev_population: float
    annualised_volatility: float = Field(description="stdDev x sqrt(periodsPerYear)")
    periods_per_year: int
    skewness: float = Omitted("Population; left out for a (near) constant P&L")
    excess_kurtosis: float = Omitted("Population; left out for a (near) constant P&L")


class VarScenario(OutModel):
    index: int = Field(description="Observation (0-based) that sets the historical VaR")
    date: str | None = Field(description="Its label from returns.dates; null without dates")


class VarMonteCarlo(OutModel):
    paths: int
    seed: int = Field(description="The seed used (drawn at random when the request gave none)")
    generator: str
    standard_error: str


class VarRevaluation(OutModel):
    """How revaluedVar/revaluedEs were computed, and whether they differ materially from var/es."""

    basis: Literal["scenarios", "quantile-scenario"] = Field(
        description="scenarios: every historical day or simulated path revalued, the same estimators applied; "
                    "quantile-scenario: the 1-day move along the covariance direction that gives the linear loss, "
                    "revalued")
    held_conversion_pairs: list[str] = Field(
        description="Pairs of a quote -> account conversion with no returns series: held at today's rate")
    material_difference_threshold: float = Field(description="Relative difference (of var/es) above which the "
                                                             "two figures differ materially")
    differs_materially: bool = Field(description="Some confidence's revalued VaR or ES differs from the linear "
                                                 "figure by more than the threshold (flag "
                                                 "HORIZON_REVALUATION_DIFFERS)")


class VarConventions(OutModel):
    sign: str
    exposure_mapping: str
    horizon_scaling: str
    horizon_revaluation: str
    components: str
    method: VarMethod
    quantile: str = Omitted("historical")
    es: str = Omitted("historical, parametric, cornish-fisher")
    components_method: str = Omitted("historical, cornish-fisher, monte-carlo")
    distribution: str = Omitted("parametric, ewma, monte-carlo")
    mean: str = Omitted("parametric, ewma")
    covariance: str = Omitted("parametric, ewma")
    z: str = Omitted("parametric")
    expansion: str = Omitted("cornish-fisher")
    domain: str = Omitted("cornish-fisher: Maillard's domain and the fallback outside it")
    estimator: str = Omitted("monte-carlo")


class VarResponse(MarketAnswer):
    calculation_id: str
    account_currency: str
    method: VarMethod
    horizon_days: float
    observations: int
    results: list[VarResult] = Field(description="One per confidence, in the request's order")
    components: list[VarComponent]
    components_confidence: float
    diversification_benefit: float = Field(description="sumOfStandaloneVar - VaR")
    sum_of_standalone_var: float
    gross_exposure: float = Field(description="Sum of |exposure|, account currency")
    net_exposure: float
    pnl_statistics: PnlStatistics
    flags: list[Flag]
    rates_used: RatesUsed
    revaluation: VarRevaluation
    conventions: VarConventions
    sigma: float = Omitted("parametric, ewma: standard deviation of the 1-day P&L, account currency")
    sigma_horizon: float = Omitted("parametric, ewma: sigma x sqrt(horizonDays)")
    var_scenarios: list[VarScenario] = Omitted("historical: the observation(s) that set the VaR")
    monte_carlo: VarMonteCarlo = Omitted("monte-carlo")
    history: HistoryWindow = Omitted("Without returns: the market history the returns were computed from")


# ---- stress ----

class ConversionLeg(OutModel):
    """One hop of a quote -> account conversion, in path order."""

    pair: str = Field(description="The pair as quoted in the rate table (base + quote)")
    direction: Literal["multiply", "divide"] = Field(
        description="multiply: the amount is in the pair's base currency and is multiplied by the rate; divide: it "
                    "is in the quote currency and is divided by it (the pair used inverted). A shock factor k on the "
                    "pair moves the conversion by k (multiply) or 1/k (divide)")


class StressPosition(OutModel):
    index: int
    currency_pair: str
    exposure: float
    return_: float = Field(alias="return", description="Relative move applied to the pair")
    shock_from: Literal["pair", "currency", "none"]
    pnl: float = Field(description="Exact revaluation: exposure x return x conversionFactor")
    linear_pnl: float = Field(description="exposure x return (delta), without the move of the conversion rate")
    conversion_factor: float = Field(description="X1 / X0 of the quote -> account conversion under the scenario")
    conversion_path: list[str] | None = Field(
        description="The pairs of the quote -> account conversion ([] when the quote is the account currency); "
                    "null when no rate path is known (conversionFactor from the currency shocks)")
    conversion_legs: list[ConversionLeg] | None = Field(
        description="conversionPath with the direction of each hop; null when no rate path is known")


class StressScenarioResult(OutModel):
    name: str
    source: Literal["request", "builtin"]
    description: str
    period: str | None = Field(description="Built-in scenarios: the dates of the historical move")
    total_pnl: float
    total_linear_pnl: float = Field(description="Sum of linearPnl")
    total_pnl_fraction: float | None = Field(description="totalPnl / gross exposure; null for a zero exposure")
    positions: list[StressPosition]


class WorstScenario(OutModel):
    name: str
    total_pnl: float


class WorstWindow(OutModel):
    days: int
    pnl: float = Field(description="Worst sum of `days` consecutive daily P&Ls of today's book")
    start_index: int
    end_index: int
    start_date: str | None = Field(description="null without returns.dates")
    end_date: str | None = Field(description="null without returns.dates")
    pnl_by_position: list[float]


class StressHistorical(OutModel):
    observations: int
    worst_windows: list[WorstWindow]


class StressConventions(OutModel):
    pnl: str
    linear_pnl: str
    exposure_mapping: str
    currency_shock: str
    historical_windows: str


class StressResponse(MarketAnswer):
    calculation_id: str
    account_currency: str
    scenarios: list[StressScenarioResult]
    rates_used: RatesUsed
    worst_scenario: WorstScenario = Omitted("With at least one scenario")
    historical: StressHistorical = Omitted("With returns")
    conventions: StressConventions


# ---- drawdown ----

class UnderwaterSpell(OutModel):
    start_index: int
    end_index: int
    bars: int
    recovered: bool


class DrawdownConventions(OutModel):
    drawdown: str
    first_peak: str
    indices: str


class DrawdownResponse(OutModel):
    calculation_id: str
    bars: int
    input: Literal["equity", "pnl"]
    initial_equity: float | None
    max_drawdown: float = Field(description="Compounded fraction, <= 0")
    max_drawdown_percentage: float
    max_drawdown_money: float = Field(description="<= 0")
    peak_index: int | None = Field(description="-1 = initialEquity; null without a drawdown")
    trough_index: int | None
    recovery_index: int | None = Field(description="First bar back at or above the peak; null while under water")
    recovered: bool
    peak_equity: float
    trough_equity: float
    current_drawdown: float
    current_drawdown_money: float
    underwater_bars: int
    longest_underwater: UnderwaterSpell | None
    peak_date: str | None = Omitted("With dates ('initial' for index -1; null without a drawdown)")
    trough_date: str | None = Omitted("With dates")
    recovery_date: str | None = Omitted("With dates")
    drawdown_series: list[float] = Omitted("With includeSeries: the drawdown of every bar")
    conventions: DrawdownConventions
