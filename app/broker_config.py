"""The tenant configuration brokers edit themselves (strict: unknown keys are 422).

Below every package that reads it: the admin API edits it, auth caches it with the broker record, the
widget serves it. Broker records themselves are app.admin.brokers.schemas."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from app.calc.instruments import normalise_symbol
from app.schemas import ApiModel, InstrumentOverride, Jurisdiction

Tier = Literal["free", "standard", "professional", "enterprise"]
Locale = Literal["en", "de", "es", "fr", "it", "pt", "ja", "zh", "ar"]
HEX_COLOUR = re.compile(r"^#[0-9A-Fa-f]{6}$")
FONT = re.compile(r"^[A-Za-z0-9 ,'\"-]{1,100}$")
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _colour(v: str) -> str:
    if not HEX_COLOUR.match(v):
        raise ValueError("a colour is #RRGGBB (hex)")
    return v.lower()


def _https_url(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme != "https" or not parts.hostname or any(c in v for c in " \"'<>\\"):
        raise ValueError("an absolute https:// URL")
    return v


def _font(v: str) -> str:
    if not FONT.match(v):
        raise ValueError("letters, digits, spaces, commas, quotes and hyphens only")
    return v


def _origin(v: str) -> str:
    parts = urlsplit(v)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username:
        raise ValueError("an origin: scheme://host[:port], no path")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        raise ValueError("plain http is allowed for localhost only")
    return v.rstrip("/").lower()


def _slug(v: str) -> str:
    if not SLUG.match(v):
        raise ValueError("lowercase letters, digits and hyphens, 1-63 characters")
    return v


def _domain(v: str) -> str:
    v = v.lower().rstrip(".")
    if not DOMAIN.match(v):
        raise ValueError("a host name such as risk.acme-forex.com")
    return v


Colour = Annotated[str, AfterValidator(_colour)]
HttpsUrl = Annotated[str, Field(max_length=2000), AfterValidator(_https_url)]
Font = Annotated[str, AfterValidator(_font)]
Origin = Annotated[str, Field(max_length=300), AfterValidator(_origin)]


def _https_origin(v: str) -> str:
    v = _origin(v)
    if not v.startswith("https://"):
        raise ValueError("an https:// origin")
    return v


HttpsOrigin = Annotated[str, Field(max_length=300), AfterValidator(_https_origin)]
Slug = Annotated[str, AfterValidator(_slug)]
Domain = Annotated[str, AfterValidator(_domain)]


class Branding(ApiModel):
    primary_color: Colour = "#1f6feb"
    logo_url: HttpsUrl | None = None
    font_family: Font = "system-ui, sans-serif"
    dark_mode: bool = False
    # The broker's web font: a stylesheet (https://fonts.googleapis.com/css2?family=Inter) and the origins its
    # font files come from (https://fonts.gstatic.com). Both go into the widget frame's CSP, nothing else.
    font_stylesheet: HttpsUrl | None = None
    font_hosts: Annotated[list[HttpsOrigin], Field(max_length=4)] = []


class Features(ApiModel):
    advanced_scenarios: bool = False
    correlation_analysis: bool = False
    portfolio: bool = True
    projections: bool = True


class RoundingPolicy(ApiModel):
    lot_rounding: Literal["down", "nearest"] = "down"
    min_lot_policy: Literal["raise", "refuse"] = "raise"


# Quote providers a broker's fallback chain may name (app.integrations.market_data): its own pushed feed,
# the vendors the deployment configures, and the dated development snapshot (never used in production).
MarketDataProvider = Literal["broker", "oanda", "tradermade", "snapshot"]
MARKET_DATA_PROVIDERS: frozenset[str] = frozenset(("broker", "oanda", "tradermade", "snapshot"))


def _distinct(v: list[str]) -> list[str]:
    if len(set(v)) != len(v):
        raise ValueError("each provider at most once")
    return v


class MarketDataConfig(ApiModel):
    # Asked in this order for each symbol without a fresh quote yet.
    providers: Annotated[list[MarketDataProvider], Field(min_length=1, max_length=4), AfterValidator(_distinct)]


class BrokerConfig(ApiModel):
    """The whole tenant configuration. PUT replaces it; every change bumps `configVersion`."""

    branding: Branding = Branding()
    features: Features = Features()
    max_leverage: Annotated[float, Field(ge=1, le=2000)] | None = None
    jurisdiction: Jurisdiction | None = None
    allowed_origins: Annotated[list[Origin], Field(max_length=50)] = []
    locale: Locale = "en"
    instrument_overrides: Annotated[dict[str, InstrumentOverride], Field(max_length=500)] = {}
    rounding: RoundingPolicy = RoundingPolicy()
    # The calculator as a page of its own at /w/{slug} and on the broker's domains. Off unless the broker
    # turns it on: that page mints widget sessions without a key or an Origin, so it is opt-in.
    full_page: bool = False
    # Rate limits per API key instead of per broker (each key gets the tier's full budget): honoured on the
    # enterprise tier only (app.ratelimit.gate), so a broker cannot raise its own limit by minting keys.
    rate_limit_per_key: bool = False
    # Where missing prices come from; unset: the deployment's default chain (Settings.market_data_providers).
    market_data: MarketDataConfig | None = None

    def normalised(self) -> BrokerConfig:
        overrides = {}
        for symbol, spec in self.instrument_overrides.items():
            key = normalise_symbol(symbol)
            if not key or len(key) > 32:
                raise ValueError(f"instrumentOverrides: bad symbol {symbol!r}")
            overrides[key] = spec
        return self.model_copy(update={"instrument_overrides": overrides})

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")
