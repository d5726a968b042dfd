"""Failed logins, MFA codes and refreshes: growing delays, then a temporary lockout, per account and per IP.

Every failure counts against two counters: the account's and the client IP's. The account is named by
what the client typed (broker slug and email, lowercased and hashed), never by a database row, so an
account that does not exist is throttled exactly like one that does: the 429 reveals nothing. With n
failures counted (the count lapses `window_seconds` after the last failure):

- up to `free` failures: no wait;
- then every further attempt waits `base_delay x 2^(n - free - 1)` seconds after the last failure
  (1, 2, 4, 8 ... s, at most `max_delay`);
- from `lockout_after` failures: locked for `lockout_seconds` after the last failure.

A user's one-time codes have their own, slower policy (`mfa:` keys): after the code lock of
app.auth.mfa (5 wrong codes: 5 minutes) every further wrong code doubles the wait (5, 10, 20 ... min) and
15 lock the second factor for a day, so a guesser holding the password gets a handful of tries a day.

An attempt inside a wait is refused before the password (or code) is even checked: 429
`too-many-attempts` with Retry-After, so the right password does not work during a lockout either. A
success clears the account's counter, never the IP's (a guesser cannot reset its address with an
account of its own).

The counters live in Redis (one MGET per check, one script per failure), so every worker sees the same
count. While Redis is unreachable each worker keeps counting in its own memory with the same
arithmetic: the throttle gets weaker (per worker, and forgotten on restart) but never opens.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.errors import TooManyAttempts
from app.redisdb.hub import RedisHub, RedisUnavailable

FAILED = """
local out = {}
for i, key in ipairs(KEYS) do
  local stored = redis.call('GET', key)
  local n = 1
  if stored then n = tonumber(string.match(stored, '^(%d+)')) + 1 end
  redis.call('SET', key, n .. ':' .. ARGV[1], 'PX', ARGV[2])
  out[i] = n
end
return out
"""


@dataclass(frozen=True, slots=True)
class Policy:
    free: int  # failures without any wait
    lockout_after: int  # failures that lock
    lockout_seconds: float
    base_delay: float = 1.0
    max_delay: float = 60.0
    window: float | None = None  # how long a count lasts after the last failure (default: the throttle's)

    def wait(self, failures: int, last: float, now: float) -> float:
        """Seconds until the next attempt may be made (0: now)."""
        if failures >= self.lockout_after:
            until = last + self.lockout_seconds
        elif failures > self.free:
            until = last + min(self.base_delay * 2 ** (failures - self.free - 1), self.max_delay)
        else:
            return 0.0
        return max(0.0, until - now)


class Throttled(TooManyAttempts):
    def __init__(self, wait_s: float, locked: bool) -> None:
        seconds = max(1, int(-(-wait_s // 1)))
        what = "locked" if locked else "slowed down"
        super().__init__(f"Too many failed attempts: sign-in is {what} for this account or address; retry in "
                         f"{seconds} s.", errors=[{"field": "body", "pointer": "#", "code": "throttled",
                                                  "detail": f"retry in {seconds} s"}])
        self.headers = {"Retry-After": str(seconds)}
        self.wait_s = wait_s
        self.locked = locked


@dataclass(frozen=True, slots=True)
class Verdict:
    failures: int  # the account's count after this failure
    locked: bool  # this failure started a lockout (of the account or the address)


def account_key(scope: str, *parts: str) -> str:
    digest = hashlib.sha256("\x00".join(p.strip().lower() for p in parts).encode()).hexdigest()[:32]
    return f"{scope}:a:{digest}"


def ip_key(ip: str) -> str:
    return f"auth:ip:{ip}"


def mfa_key(user_id: object) -> str:
    """A user's second factor: wrong codes grow its waits well past the code lock of app.auth.mfa."""
    return f"mfa:{user_id}"


class Throttle:
    def __init__(self, account: Policy, ip: Policy, *, window_seconds: float, mfa: Policy | None = None,
                 prefix: str = "thr:", clock: Callable[[], float] = time.time, max_local: int = 100_000) -> None:
        self.account = account
        self.ip = ip
        self.mfa = mfa or account
        self.window_seconds = window_seconds
        self.prefix = prefix
        self.clock = clock
        self.hub: RedisHub | None = None
        self._script: Any = None
        self.max_local = max_local
        self.local: dict[str, tuple[int, float]] = {}  # key -> (failures, last failure); Redis down only

    def use(self, hub: RedisHub) -> None:
        self.hub = hub
        self._script = hub.script(FAILED)

    def _policy(self, key: str) -> Policy:
        if key.startswith("auth:ip:"):
            return self.ip
        return self.mfa if key.startswith("mfa:") else self.account

    def _window(self, key: str) -> float:
        return self._policy(key).window or self.window_seconds

    async def _read(self, keys: list[str]) -> list[tuple[int, float]]:
        if self.hub is not None and self.hub.available:
            hub = self.hub
            try:
                values = await hub.run("throttle", lambda: hub.client.mget([self.prefix + k for k in keys]))
                return [_decode(v) for v in values]
            except RedisUnavailable:
                pass
        now = self.clock()
        return [self._local_get(k, now) for k in keys]

    def _local_get(self, key: str, now: float) -> tuple[int, float]:
        n, last = self.local.get(key, (0, 0.0))
        return (n, last) if now - last < self._window(key) else (0, 0.0)

    async def check(self, *keys: str) -> None:
        """Raise Throttled when any of the keys (an account, an IP) must still wait."""
        now = self.clock()
        worst, locked = 0.0, False
        for key, (n, last) in zip(keys, await self._read(list(keys)), strict=True):
            policy = self._policy(key)
            wait = policy.wait(n, last, now)
            if wait > worst:
                worst, locked = wait, n >= policy.lockout_after
        if worst > 0:
            raise Throttled(worst, locked)

    async def failed(self, *keys: str) -> Verdict:
        """Count a failure against each key; the first key's new count, and whether a lockout began."""
        now = self.clock()
        counts: list[int] | None = None
        if self.hub is not None and self.hub.available and self._script is not None:
            script = self._script
            ttl_ms = int(max(self._window(k) for k in keys) * 1000)
            try:
                raw = await self.hub.run("throttle", lambda: script(
                    keys=[self.prefix + k for k in keys], args=[repr(now), ttl_ms]))
                counts = [int(c) for c in raw]
            except RedisUnavailable:
                counts = None
        if counts is None:
            counts = []
            if len(self.local) >= self.max_local:
                self.local.clear()  # bounded memory; the Redis copy is the real one
            for key in keys:
                n = self._local_get(key, now)[0] + 1
                self.local[key] = (n, now)
                counts.append(n)
        locked = any(n == self._policy(k).lockout_after for k, n in zip(keys, counts, strict=True))
        return Verdict(counts[0] if counts else 0, locked)

    async def succeeded(self, key: str) -> None:
        """A success clears the account's count (only the account's: see the module docstring)."""
        self.local.pop(key, None)
        if self.hub is not None and self.hub.available:
            hub = self.hub
            try:
                await hub.run("throttle", lambda: hub.client.delete(self.prefix + key))
            except RedisUnavailable:
                pass


def _decode(value: Any) -> tuple[int, float]:
    if not isinstance(value, bytes):
        return 0, 0.0
    n, _, last = value.decode().partition(":")
    try:
        return int(n), float(last)
    except ValueError:
        return 0, 0.0
