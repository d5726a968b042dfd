"""The inbound message: `{"events": [{id, type, timestamp, data}, ...]}`, up to 500 events.

Each event is checked on its own (the envelope, then its `data` by type), so a bad event is refused with its
index while the others are applied.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field, WithJsonSchema, field_validator, model_validator

from app.calc.instruments import CATALOGUE, CURRENCIES, normalise_symbol, split_pair
from app.schemas import ApiModel, Lots, OutModel, Price

MAX_EVENTS = 500
EVENT_TYPES = ("account.updated", "position.opened", "position.closed", "margin.call")
EventType = Literal["account.updated", "position.opened", "position.closed", "margin.call"]

# Ids travel in URLs (/accounts/{traderId}/risk) and job ids: a plain, bounded alphabet.
TraderId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$",
                                description="The broker's id of the trader (account)")]
ObjectId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@-]*$")]
Amount = Annotated[float, Field(ge=-1e13, le=1e13)]


def _utc(v: datetime) -> datetime:
    try:
        return v.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC equivalent
        raise ValueError("time out of range") from None


class EventIn(ApiModel):
    id: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
                             description="The platform's event id: the same id twice is applied once")]
    type: Annotated[str, Field(min_length=1, max_length=64, description=f"One of {', '.join(EVENT_TYPES)}")]
    # When the platform made the change (not when it is sent): older changes never overwrite newer ones.
    timestamp: Annotated[AwareDatetime, Field(strict=False)]
    data: dict[str, Any]

    @field_validator("timestamp")
    @classmethod
    def in_range(cls, v: datetime) -> datetime:
        return _utc(v)


class AccountUpdated(ApiModel):
    trader_id: TraderId
    currency: Annotated[str, Field(min_length=3, max_length=3, examples=["USD"])]
    balance: Amount
    equity: Amount
    free_margin: Amount
    margin: Annotated[float, Field(ge=0, le=1e13)] | None = Field(
        default=None, description="Used margin as the platform computes it (default: equity - freeMargin)")

    @field_validator("currency")
    @classmethod
    def known_currency(cls, v: str) -> str:
        if v.upper() not in CURRENCIES:
            raise ValueError(f"unknown currency {v!r}")
        return v.upper()


class PositionEvent(ApiModel):
    trader_id: TraderId
    position_id: ObjectId
    symbol: Annotated[str, Field(min_length=1, max_length=32, examples=["EURUSD"])]
    side: Literal["long", "short", "buy", "sell"]
    lots: Lots
    open_price: Price
    stop_loss: Price | None = None
    take_profit: Price | None = None

    @field_validator("symbol")
    @classmethod
    def known_symbol(cls, v: str) -> str:
        symbol = normalise_symbol(v)
        if split_pair(symbol) is None and symbol not in CATALOGUE:
            raise ValueError(f"unknown symbol {v!r}: a currency pair such as EURUSD or a catalogue instrument")
        return symbol

    @property
    def direction(self) -> Literal["long", "short"]:
        return "long" if self.side in ("long", "buy") else "short"

    @model_validator(mode="after")
    def levels_on_their_side(self) -> PositionEvent:
        long = self.direction == "long"
        if self.stop_loss is not None and (self.stop_loss >= self.open_price if long else
                                           self.stop_loss <= self.open_price):
            raise ValueError(f"stopLoss must be on the losing side of openPrice for a {self.direction} position")
        if self.take_profit is not None and (self.take_profit <= self.open_price if long else
                                             self.take_profit >= self.open_price):
            raise ValueError(f"takeProfit must be on the winning side of openPrice for a {self.direction} position")
        return self


class PositionClosed(PositionEvent):
    close_price: Price | None = None


class MarginCall(ApiModel):
    trader_id: TraderId
    margin_level: Annotated[float, Field(ge=0, le=1e9)] | None = Field(
        default=None, description="Margin level in percent when the call was made")


DATA_MODELS: dict[str, type[ApiModel]] = {
    "account.updated": AccountUpdated, "position.opened": PositionEvent, "position.closed": PositionClosed,
    "margin.call": MarginCall,
}


def _event_schema() -> dict[str, Any]:
    item = EventIn.model_json_schema(by_alias=True)
    item["properties"]["type"] = {"type": "string", "enum": list(EVENT_TYPES)}
    item["properties"]["data"] = {"oneOf": [m.model_json_schema(by_alias=True) for m in DATA_MODELS.values()]}
    return item


class EventsIn(ApiModel):
    # Items are checked one by one (the service), so a bad event is refused with its index while the good ones
    # are applied; only the envelope is checked here. The published schema shows the event items.
    events: Annotated[list[Any], Field(min_length=1, max_length=MAX_EVENTS,
                                       description=f"1 to {MAX_EVENTS} events"),
                      WithJsonSchema({"type": "array", "minItems": 1, "maxItems": MAX_EVENTS,
                                      "items": _event_schema()})]


class FieldError(OutModel):
    field: str = Field(description="The field at fault, e.g. events[3].data.lots")
    pointer: str
    code: str
    detail: str


class EventResult(OutModel):
    index: int
    id: str | None = Field(description="The event's id (null when it could not be read)")
    status: Literal["applied", "superseded", "duplicate", "refused"] = Field(
        description="applied: stored and applied to the account state; superseded: stored, but the state already "
                    "holds a newer event (by timestamp) or the position is closed, so nothing changed; duplicate: an "
                    "event id seen before, nothing changed; refused: not applied, see errors")
    errors: list[FieldError] | None = None


class EventsOut(OutModel):
    message_id: str = Field(description="The webhook-id of the message")
    replay: bool = Field(description="true when this webhook-id was received before: nothing was applied again")
    applied: int
    superseded: int = Field(description="Events older than the state they would change (out of order): kept, "
                            "nothing changed")
    duplicates: int
    refused: int
    results: list[EventResult]
