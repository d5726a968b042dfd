"""Response models of the instrument catalogue (also the `instrument` block of a position size)."""

from __future__ import annotations

from pydantic import Field

from app.calc.instruments import AssetClass, LeverageClass, MarginMode
from app.schemas import OutModel


class Instrument(OutModel):
    """An instrument's specification as the calculations used it (catalogue defaults plus overrides)."""

    symbol: str
    description: str
    base: str = Field(description="Base currency; the symbol itself for an instrument that is not a pair")
    quote: str = Field(description="Quote (profit) currency")
    profit_currency: str
    margin_currency: str
    contract_size: float = Field(description="Units per lot")
    pip_size: float = Field(description="One pip, in price units")
    tick_size: float = Field(description="Smallest price move (MT5 point), in price units")
    digits: int
    lot_step: float
    min_lot: float
    max_lot: float
    asset_class: AssetClass
    leverage_class: LeverageClass
    margin_mode: MarginMode
    margin_rate: float = Field(description="Multiplier on 1/leverage (cfd: the margin as a fraction of notional)")


class LeverageCaps(OutModel):
    """Regulatory retail leverage cap (x:1) per jurisdiction for this instrument."""

    esma: float
    fca: float
    asic: float
    nfa: float | None = Field(description="null: not offered to US retail clients (NFA/CFTC allow retail forex "
                                          "only; CFDs on indices, metals, commodities, crypto and shares)")


class CatalogueInstrument(Instrument):
    leverage_caps: LeverageCaps


class InstrumentList(OutModel):
    items: list[CatalogueInstrument]
    count: int
    esma_leverage_caps: dict[LeverageClass, float] = Field(
        description="ESMA retail leverage cap (x:1) per leverage class")
