"""The tier table: what each paid tier's traffic may do. The app's limiter and the generated Kong
gateway config (`forexrisk gateway kong-config`) both read it, so the two can never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TierName = Literal["free", "standard", "professional", "enterprise"]


@dataclass(frozen=True)
class TierLimit:
    name: TierName
    per_minute: int  # sustained rate (requests per minute)
    burst: int  # bucket depth: a full bucket allows this many at once
    unlimited: bool = False  # no contractual limit; a protective ceiling still applies (see below)


TIERS: dict[str, TierLimit] = {
    "free": TierLimit("free", 20, 40),
    "standard": TierLimit("standard", 60, 120),
    "professional": TierLimit("professional", 200, 400),
    # Enterprise is sold as unlimited. A hidden protective ceiling (per broker, far above any real
    # trading desk) keeps one runaway client from starving the fleet; it goes through the same limiter.
    "enterprise": TierLimit("enterprise", 600_000, 1_200_000, unlimited=True),
}



def tier_limit(tier: str) -> TierLimit:
    return TIERS.get(tier, TIERS["free"])
