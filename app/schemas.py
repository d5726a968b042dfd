"""Shared schema building blocks: camelCase on the wire, strict types, finite bounded numbers."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr
from pydantic.alias_generators import to_camel

from app.calc.flags import FLAG_CODES


class ApiModel(BaseModel):
    """Request models: unknown fields are errors (a typo such as `stoploss` must not be ignored),
    numbers must be finite and strictly typed (no "1.5" strings, no booleans)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", strict=True, allow_inf_nan=False,
        frozen=True,
    )
    # Set by the calculation route from the caller's broker config, never from the body.
    _broker_max_leverage: float | None = PrivateAttr(default=None)
    # Set by the pipeline's market step (app.calculations.market) when it fetched rates: their sources.
    _market: dict[str, Any] | None = PrivateAttr(default=None)
    # Set by the same step when the chain had no fresh quote for a conversion: the symbols asked and outcomes.
    _quote_misses: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def broker_max_leverage(self) -> float | None:
        return self._broker_max_leverage


class OutModel(BaseModel):
    """Response models: the wire format, exactly. Undeclared fields are refused (the published schema says
    additionalProperties: false, and FastAPI will not send a field the model does not declare)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def Omitted(description: str | None = None, **kwargs: Any) -> Any:  # noqa: N802 (a Field factory)
    """A response field that is left out when it does not apply, and never null: not required in the
    published schema, and typed without null (use `X | None = None` only where the code sends null)."""
    return Field(default=None, description=description, json_schema_extra=_no_default, **kwargs)


class Quote(OutModel):
    bid: float
    ask: float
    mid: float = Omitted("The quote's own mid, when the request gave one ({bid, ask, mid})")


RatesUsed = Annotated[
    dict[str, float | Quote],
    Field(description="The rates a calculation converted with: symbol -> price, or {bid, ask} (with mid when "
                      "given) when sided"),
]

RateSource = Literal["conversionRates", "entryPrice", "stopLoss", "closePrice", "price"]


class ConversionLeg(OutModel):
    pair: str = Field(description="The quoted pair used (as held in the rate table, e.g. USDJPY)")
    rate: float | Quote = Field(description="Its rate: a price, or {bid, ask} (with mid when given) when sided")
    source: RateSource = Field(description="Where the rate came from: conversionRates, or the request's own price "
                               "field for the instrument's pair (entryPrice, stopLoss, closePrice, price)")


class ConversionPath(OutModel):
    """One conversion a calculation made: the shortest path in the graph of rates (fewest hops, then USD,
    EUR, alphabetical)."""

    from_currency: str = Field(alias="from")
    to_currency: str = Field(alias="to")
    path: list[str] = Field(description="The currencies visited, `from` first, `to` last")
    hops: int = Field(description="Number of pairs multiplied")
    rate: float = Field(description="The mid rate of the conversion: units of `to` per unit of `from`")
    legs: list[ConversionLeg] = Field(description="The pairs used, in order")


ConversionPaths = Annotated[
    list[ConversionPath],
    Field(description="Each conversion made: the currencies visited, the pairs used, their rates and sources"),
]


# Bounds keep every product and quotient of inputs far from float overflow (a denormal divisor such as
# 5e-324 made results infinite, i.e. null in JSON) and reject absurd values early. Prices and distances
# resolve to 10 decimals (calc-conventions), so nothing smaller than 1e-10 is meaningful there.
Money = Annotated[float, Field(ge=1e-6, le=1e13, description="Amount in the account currency")]
MoneyNonNeg = Annotated[float, Field(ge=0, le=1e13)]
Price = Annotated[float, Field(ge=1e-10, le=1e9)]
Distance = Annotated[float, Field(ge=1e-10, le=1e9)]
Lots = Annotated[float, Field(gt=0, le=1e7)]
Units = Annotated[float, Field(gt=0, le=1e13)]
LeverageValue = Annotated[float, Field(ge=1, le=10_000)]
Probability = Annotated[float, Field(ge=0, le=1)]
Currency = Annotated[str, Field(min_length=3, max_length=3, examples=["USD"])]
Symbol = Annotated[str, Field(min_length=1, max_length=32, examples=["EURUSD"])]
Direction = Literal["long", "short"]
Jurisdiction = Literal["esma", "fca", "asic", "nfa", "none"]


class SidedRate(ApiModel):
    bid: Price
    ask: Price
    mid: Price | None = Field(default=None, description="The quote's own mid (default (bid + ask) / 2)")


RateValue = Price | SidedRate
ConversionRates = Annotated[
    dict[Annotated[str, Field(max_length=16)], RateValue],
    Field(max_length=200, description="symbol -> price, or {bid, ask}; XXXYYY means YYY per 1 XXX",
          examples=[{"GBPUSD": 1.2700, "USDJPY": {"bid": 149.98, "ask": 150.02}}]),
]


class InstrumentOverride(ApiModel):
    """Per-request spec overrides; any subset. For a symbol outside the catalogue give at least
    quoteCurrency, contractSize and pipSize."""

    # Lower bounds keep every product and quotient of specs far from zero and from float underflow.
    contract_size: Annotated[float, Field(ge=1e-6, le=1e9)] | None = None
    pip_size: Annotated[float, Field(ge=1e-12, le=1e6)] | None = None
    pip_position: Annotated[int, Field(ge=-6, le=10)] | None = None
    tick_size: Annotated[float, Field(ge=1e-12, le=1e6)] | None = None
    digits: Annotated[int, Field(ge=0, le=10)] | None = None
    lot_step: Annotated[float, Field(ge=1e-8, le=1e6)] | None = None
    min_lot: Annotated[float, Field(ge=1e-8, le=1e7)] | None = None
    max_lot: Annotated[float, Field(ge=1e-8, le=1e9)] | None = None
    margin_mode: Literal["fx", "cfd", "cfd-leverage"] | None = None
    margin_rate: Annotated[float, Field(ge=1e-6, le=100)] | None = None
    base_currency: Currency | None = None
    quote_currency: Currency | None = None
    margin_currency: Currency | None = None
    # cTrader volumes are whole cents of a unit.
    ctrader_lot_size: Annotated[float, Field(ge=1, le=1e13)] | None = Field(
        default=None, description="cTrader Open API lotSize (in cents of a unit)")
    ctrader_min_volume: Annotated[float, Field(ge=1, le=1e15)] | None = None
    ctrader_step_volume: Annotated[float, Field(ge=1, le=1e15)] | None = None
    ctrader_max_volume: Annotated[float, Field(ge=1, le=1e15)] | None = None

    def as_overrides(self) -> dict[str, object]:
        return self.model_dump(by_alias=True, exclude_none=True)


class Flag(OutModel):
    """A condition the trader must see beside the figures (app.calc.flags holds every code)."""

    code: str = Field(json_schema_extra={"enum": list(FLAG_CODES)})
    message: str
    data: dict[str, object] = Omitted("The figures behind the flag (e.g. minLot, requested/applied)")


class ExplainStep(OutModel):
    step: str
    formula: str
    inputs: dict[str, object]
    value: object


class MarketRates(ApiModel):
    """Requests whose missing rates the broker's quote chain fills (app.calculations.market)."""

    market_rates: bool = Field(
        default=True, description="Fetch the rates this request leaves out (and entryPrice, when a direction "
        "is given) from the broker's quote chain. false: use only the rates given.")


class RateOrigin(OutModel):
    source: str = Field(description="Who priced the rate: `request` (given), or the provider (broker, a vendor, "
                        "snapshot)")
    given: bool = Field(description="true: the request gave it; false: fetched from the quote chain")
    time: str | None = Field(default=None, description="When the provider priced it (UTC)")
    live: bool | None = Field(default=None, description="false for a dated snapshot: not a live price")
    label: str | None = Field(default=None, description="What the source is, e.g. a snapshot and its date")
    bid: float | None = None
    ask: float | None = None
    side: Literal["ask", "bid"] | None = Field(default=None, description="The side taken, when the rate is the "
                                                "entry price filled from the market")
    field: Literal["entryPrice"] | None = Field(default=None, description="`entryPrice` when the instrument's own "
                                                "rate is the filled entry price")


class EntryFill(RateOrigin):
    value: float = Field(description="The entry price used")
    side: Literal["ask", "bid"] = Field(description="ask for a long (buy), bid for a short (sell)")
    symbol: str


class MarketData(OutModel):
    providers: list[str] = Field(description="The broker's quote chain, in the order tried")
    fetched: dict[str, RateOrigin] = Field(description="The rates fetched for this calculation")
    entry_price: EntryFill | None = Field(default=None, description="The entry price taken from the market")
    snapshot: list[str] | None = Field(default=None, description="Present when a rate came from a dated snapshot, "
                                       "not a live feed: its label")


class MarketAnswer(OutModel):
    """Answers of calculations whose rates the quote chain may fill."""

    rate_sources: dict[str, RateOrigin] | None = Field(
        default=None, description="For every rate in ratesUsed: its source, time, and whether it was given or "
        "fetched (present when the quote chain supplied any)")
    market_data: MarketData | None = Field(default=None, description="What the quote chain supplied")
class HistorySourceUsed(OutModel):
    """Where one symbol's daily history came from."""

    symbol: str
    source: str = Field(description="Provider name (oanda, ecb-development, ...)")
    label: str = Field(description="What the data is: vendor and price basis, or DEVELOPMENT HISTORY and its origin")
    development: bool = Field(description="true: the shipped development history, not market data")
    close_only: bool = Field(description="true: one price a day (open, high and low unknown)")
    first_day: str
    last_day: str
    bars: int = Field(description="Daily closes (bars) of this symbol used")


class HistoryWindow(OutModel):
    """The market history a calculation filled in (the request gave a symbol, or no returns)."""

    from_day: str = Field(alias="from", description="First day of data used (ISO date)")
    to_day: str = Field(alias="to", description="Last day of data used (ISO date)")
    observations: int = Field(description="Bars (ATR) or daily returns (VaR, portfolio) computed from")
    development: bool = Field(description="true: some series is the shipped development history (flag "
                              "DEVELOPMENT_HISTORY)")
    sources: list[HistorySourceUsed]
    return_method: str = Omitted("Returns: how they were computed from the closes")
    alignment: str = Omitted("Returns: which days were used")
