"""A tier of the app's GCRA limiter as Kong Rate Limiting Advanced windows.

The app limits with GCRA: a bucket `burst` requests deep, refilled at `per_minute`. Over any span of
W seconds it admits at most

    burst + per_minute * W / 60

requests (a full bucket plus what refills during the span), and a client that starts with a full
bucket and sends as soon as it may reaches that bound. Kong's rate-limiting-advanced (RLA) counts
requests in windows instead. Each tier gets one (limit, window) pair per time scale, the limit being
that bound rounded up, in fixed (clock-aligned) windows:

    1 s      burst + ceil(per_minute / 60)    the burst
    60 s     burst + per_minute
    3600 s   burst + 60 * per_minute          the sustained rate, with one extra burst per hour

A fixed window is a span shorter than W, so traffic the app admits never exceeds a limit: Kong never
refuses a request the app would accept. It can admit more than the app: up to twice a limit across a
window boundary, one extra burst per hour, and each Kong node counts alone (`strategy: local`). The app
refuses those with its problem+json 429 and RateLimit headers; Kong's part is to stop floods before
they reach the app.

Why not one pair, `limit = [burst]` over `window_size = [burst * 60 / per_minute]`, sliding? It has
the same long-run rate and the same burst, but burst and refill share one window of capacity: a client
that sends its burst and then continues at exactly its rate is refused by Kong for up to that window
(120 s for every tier, whose burst is twice the per-minute rate) although its contract allows every
request. Sliding windows also refuse conforming traffic after a fully used window (they assume the
previous window's requests were spread evenly), for about W / burst seconds, 90 s at 3600 s for the
free tier; fixed windows never do.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.ratelimit.tiers import TierLimit

# Time scales (seconds) at which the gateway bounds a tier: the burst, a minute, the sustained rate.
WINDOWS_SECONDS: tuple[int, ...] = (1, 60, 3600)


@dataclass(frozen=True)
class KongWindow:
    limit: int
    window_size: int  # seconds


def gcra_bound(tier: TierLimit, seconds: int) -> int:
    """The most requests the app's GCRA admits in any span of `seconds` (rounded up)."""
    return tier.burst + -(-tier.per_minute * seconds // 60)  # integer ceiling: no float rounding


def kong_windows(tier: TierLimit) -> list[KongWindow]:
    return [KongWindow(gcra_bound(tier, w), w) for w in WINDOWS_SECONDS]
