"""Request and response of PUT /api/v1/brokers/{brokerId}/quotes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, WithJsonSchema, field_validator, model_validator

from app.calc.instruments import CATALOGUE, normalise_symbol, split_pair
from app.integrations.market_data.broker_feed import MAX_PUSH
from app.schemas import ApiModel, OutModel

Price = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class QuoteIn(ApiModel):
    symbol: Annotated[str, Field(min_length=1, max_length=32, description="A currency pair or catalogue symbol")]
    bid: Price
    ask: Price
    mid: Price | None = None
    # An aware RFC 3339 time: when the price was made at the broker (not when it is sent).
    time: Annotated[AwareDatetime, Field(strict=False)]

    @field_validator("symbol")
    @classmethod
    def known_symbol(cls, v: str) -> str:
        symbol = normalise_symbol(v)
        if split_pair(symbol) is None and symbol not in CATALOGUE:
            raise ValueError(f"unknown symbol {v!r}: a currency pair such as EURUSD or a catalogue instrument")
        return symbol

    @field_validator("time")
    @classmethod
    def in_range(cls, v: datetime) -> datetime:
        try:
            return v.astimezone(UTC)
        except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC equivalent
            raise ValueError("time out of range") from None

    @model_validator(mode="after")
    def ordered(self) -> QuoteIn:
        if self.bid > self.ask:
            raise ValueError("bid must not be above ask")
        if self.mid is not None and not self.bid <= self.mid <= self.ask:
            raise ValueError("mid must lie between bid and ask")
        return self


class QuotesPush(ApiModel):
    # Items are checked one by one (QuoteIn, in the router), so a bad quote is refused with its index while
    # the good ones are stored; only the envelope is checked here. The published schema shows QuoteIn items.
    quotes: Annotated[list[Any], Field(min_length=1, max_length=MAX_PUSH, description=f"1 to {MAX_PUSH} quotes"),
                      WithJsonSchema({"type": "array", "minItems": 1, "maxItems": MAX_PUSH,
                                      "items": QuoteIn.model_json_schema(by_alias=True)})]


class QuoteFieldError(OutModel):
    field: str = Field(description="The field at fault, e.g. quotes[3].bid")
    pointer: str = Field(description="JSON pointer into the request body")
    code: str
    detail: str


class QuoteError(OutModel):
    """The problem detail of one refused quote."""

    index: int
    type: str
    status: int
    detail: str
    errors: list[QuoteFieldError]


class PushResult(OutModel):
    accepted: int = Field(description="Quotes stored (a quote older than the stored one for its symbol is "
                                      "accepted but keeps the newer price)")
    rejected: int
    errors: list[QuoteError] = Field(description="One per refused quote, by its index in `quotes`")
    received_at: datetime
