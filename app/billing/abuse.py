"""Sign-up abuse limits: at most N sign-ups per client address per hour and per email domain per day.

Fixed windows counted in Redis (SET NX EX on the first hit, then INCR); the tier limiter's GCRA speaks in
requests per minute, too fine for "5 an hour". Redis down: sign-ups go through (logged), never a 500;
the email verification still stands between a sign-up and a usable tenant.
"""

from __future__ import annotations

import time
from typing import Any

import structlog

from app.errors import TooManyAttempts
from app.redisdb.hub import RedisHub, RedisUnavailable

log = structlog.get_logger(__name__)


class SignupLimited(TooManyAttempts):
    pass


async def _hit(hub: RedisHub, key: str, window_s: int) -> int:
    async def call() -> Any:
        pipe = hub.client.pipeline(transaction=True)
        pipe.set(key, 0, ex=window_s, nx=True)  # the window starts with the first hit (EXPIRE NX needs Redis 7)
        pipe.incr(key)
        return await pipe.execute()

    result = await hub.run("signup-limit", call)
    return int(result[1])


async def check(hub: RedisHub, ip: str, domain: str, per_ip_hour: int, per_domain_day: int,
                now: float | None = None) -> None:
    now = time.time() if now is None else now
    for key, window, limit, what in ((f"signup:ip:{ip}:{int(now // 3600)}", 3600, per_ip_hour, "this address"),
                                     (f"signup:dom:{domain}:{int(now // 86400)}", 86400, per_domain_day,
                                      "this email domain")):
        try:
            count = await _hit(hub, key, window)
        except RedisUnavailable:
            log.warning("signup_limit_unavailable", key_kind=what)
            continue
        if count > limit:
            exc = SignupLimited(f"Too many sign-ups from {what}; try again later.")
            exc.headers = {"Retry-After": str(int(window - now % window) + 1)}
            raise exc
