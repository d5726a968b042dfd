"""A broker's calculation policy (from its config) applied to every calculation request.

The request's own explicit values win over the broker's defaults (a trader may ask for a stricter
rounding), except the broker's maxLeverage, which is a cap: it is applied as one more limit beside
the regulatory one, and the answer's `leverageCap` says when it was the binding rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from app.calc.instruments import normalise_symbol
from app.schemas import ApiModel, InstrumentOverride

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class BrokerPolicy:
    max_leverage: float | None = None
    jurisdiction: str | None = None
    lot_rounding: str | None = None
    min_lot_policy: str | None = None
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def trivial(self) -> bool:
        return (self.max_leverage is None and self.jurisdiction is None and self.lot_rounding in (None, "down")
                and self.min_lot_policy in (None, "raise") and not self.overrides)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BrokerPolicy:
        rounding = config.get("rounding") or {}
        return cls(max_leverage=config.get("maxLeverage"), jurisdiction=config.get("jurisdiction"),
                   lot_rounding=rounding.get("lotRounding"), min_lot_policy=rounding.get("minLotPolicy"),
                   overrides={normalise_symbol(k): v for k, v in (config.get("instrumentOverrides") or {}).items()})

    def apply(self, req: M) -> M:
        if self.trivial or not isinstance(req, ApiModel):
            return req
        fields = type(req).model_fields
        values: Any = req  # field access by name on whichever request model this is
        update: dict[str, Any] = {}
        if "jurisdiction" in fields and values.jurisdiction is None and self.jurisdiction:
            update["jurisdiction"] = self.jurisdiction
        for name, value in (("lot_rounding", self.lot_rounding), ("min_lot_policy", self.min_lot_policy)):
            if name in fields and value and name not in req.model_fields_set:
                update[name] = value
        if "instrument" in fields and "currency_pair" in fields and self.overrides:
            symbol = values.currency_pair
            base = self.overrides.get(normalise_symbol(symbol)) if isinstance(symbol, str) else None
            if base:
                own = values.instrument
                merged = {**base, **(own.as_overrides() if own is not None else {})}
                update["instrument"] = InstrumentOverride.model_validate(merged)
        for name in fields:
            value = getattr(req, name)
            if isinstance(value, list) and value and isinstance(value[0], ApiModel):
                update[name] = [self.apply(v) for v in value]
        out = req.model_copy(update=update) if update else req
        out._broker_max_leverage = self.max_leverage
        return out
