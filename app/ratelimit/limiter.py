"""Exact tier limits in Redis at (much) less than one round trip per request.

Each bucket is one GCRA state in Redis, changed only by one Lua script (atomic, one round trip). A
worker does not ask Redis per request: it *leases* a few units at once and spends them locally.
- Lease size follows the bucket's local request rate (units this worker will use in ~100 ms), capped at
  1/20 of the bucket depth: a low-rate tenant leases 1 unit per call (exact across workers), a tenant
  at thousands of requests per second calls Redis once per dozens of requests.
- Leases expire quickly (250 ms); unspent units go back to Redis with the next call (the same script).
- A busy bucket's lease is topped up in the background when a quarter is left, so requests do not
  wait for Redis at all in steady state.
- One call in flight per bucket per worker (single flight); a denial is remembered until the bucket can
  next serve, so an over-limit client does not hammer Redis either.
The limit is never exceeded (units are only spent after Redis granted them). With several workers a
request can be refused while another worker still holds up to one lease of the same bucket.

Why not slowapi or `limits`: slowapi's Redis storage is synchronous (it blocks the event loop per
request), its Redis-down path raises 500s and its headers break on model-returning routes; `limits.aio`
is async but costs a Redis round trip per request (~180 us here, perf-notes 6), which alone would take
the calculation endpoint below 0.7x of its bare throughput.

When Redis is unreachable, buckets fall back to this worker's local GCRA (same arithmetic, quota
divided by `local_divisor`, i.e. the number of workers sharing the limit), counted in
`ratelimit_fail_open_total`; Redis is retried automatically (RedisHub).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter

from app.observability.metrics import RATELIMIT_DECISIONS, RATELIMIT_FAIL_OPEN, RATELIMIT_LEASES
from app.ratelimit import gcra
from app.ratelimit.tiers import TierLimit
from app.redisdb.hub import RedisHub, RedisUnavailable

LUA = """
local now = tonumber(ARGV[1])
local T = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local want = tonumber(ARGV[4])
local need = tonumber(ARGV[5])
local refund = tonumber(ARGV[6])
local stored = redis.call('GET', KEYS[1])
local tat = now
if stored then tat = math.max(tonumber(stored), now) end
if refund > 0 then tat = math.max(now, tat - refund * T) end
local free = math.floor((now + burst * T - tat) / T)
if free > burst then free = burst end
if free < 0 then free = 0 end
local granted = 0
if free >= need then
  granted = math.min(want, free)
  tat = tat + granted * T
end
if granted > 0 or refund > 0 then
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.max(1, math.ceil((tat - now) / 1000)))
end
return {granted, string.format('%.0f', tat)}
"""


_counters: dict[tuple[str, bool], Counter] = {}


def _counter(policy: str, allowed: bool) -> Counter:
    # Labelled children cached: `labels()` takes a lock and builds a key on every call (hot path).
    child = _counters.get((policy, allowed))
    if child is None:
        child = _counters[(policy, allowed)] = RATELIMIT_DECISIONS.labels(policy, "allowed" if allowed else "limited")
    return child


def wall_clock_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Decision:
    policy: str  # policy name in the RateLimit headers: the tier, or "pre-auth"
    limit: TierLimit
    allowed: bool
    remaining: int
    reset_s: int  # RateLimit `t`: until the bucket is full, or until the next unit when none is left
    retry_after_s: int  # on a refusal: when this request could succeed (>= 1)
    local: bool = False  # decided by the worker's fallback bucket (Redis unreachable)
    cost: int = 1  # units this request was priced at (app.calculations.cost); 1 for everything else


class _Lease:
    __slots__ = ("tokens", "expires_us", "tat_us", "denied_until_us", "fetch", "last_us", "gap_us", "low_water",
                 "topping", "denied_need")

    def __init__(self, now_us: int) -> None:
        self.tokens = 0
        self.expires_us = 0
        self.tat_us = now_us
        self.denied_until_us = 0
        self.denied_need = 0  # the cost that was refused: a cheaper request may still pass
        self.fetch: asyncio.Future[None] | None = None
        self.last_us = now_us
        self.gap_us = 1_000_000.0  # smoothed time between this worker's requests on the bucket
        self.low_water = 0  # top up in the background when fewer units than this are left
        self.topping = False  # a background top-up is scheduled or running (at most one per lease)


class Limiter:
    def __init__(self, hub: RedisHub | None, *, clock_us: Callable[[], int] = wall_clock_us,
                 lease_window_us: int = 100_000, lease_ttl_us: int = 250_000, lease_max: int = 256,
                 local_divisor: int = 1, prefix: str = "rl:") -> None:
        self.hub = hub
        self.clock_us = clock_us
        self.lease_window_us = lease_window_us
        self.lease_ttl_us = lease_ttl_us
        self.lease_max = lease_max
        self.local_divisor = max(1, local_divisor)
        self.prefix = prefix
        self.script = hub.script(LUA) if hub is not None else None
        self.leases: dict[str, _Lease] = {}
        self.local = gcra.LocalBuckets()
        self._buckets: dict[TierLimit, gcra.Bucket] = {}
        self._local_buckets: dict[TierLimit, gcra.Bucket] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def bucket(self, limit: TierLimit) -> gcra.Bucket:
        b = self._buckets.get(limit)
        if b is None:
            b = self._buckets[limit] = gcra.Bucket(round(60_000_000 / limit.per_minute), limit.burst)
        return b

    def _local_bucket(self, limit: TierLimit) -> gcra.Bucket:
        b = self._local_buckets.get(limit)
        if b is None:
            full = self.bucket(limit)
            b = self._local_buckets[limit] = gcra.Bucket(full.interval_us * self.local_divisor,
                                                         max(1, full.burst // self.local_divisor))
        return b

    async def acquire(self, key: str, limit: TierLimit, policy: str, cost: int = 1) -> Decision:
        bucket = self.bucket(limit)
        need = max(1, min(cost, bucket.burst))  # a request costing more than the depth could never pass
        lease = self.leases.get(key)
        now = self.clock_us()
        if lease is None:
            if len(self.leases) >= 100_000:
                self.leases.clear()  # bounded memory; dropped leases are simply re-fetched
            lease = self.leases[key] = _Lease(now)
        lease.gap_us = 0.8 * lease.gap_us + 0.2 * (now - lease.last_us)
        lease.last_us = now
        for _ in range(4):
            if lease.tokens >= need and lease.expires_us > now:
                lease.tokens -= need
                if lease.low_water and not lease.topping and lease.fetch is None and self.hub is not None \
                        and (lease.tokens < lease.low_water or lease.expires_us - now < self.lease_ttl_us // 3) \
                        and self.hub.available:
                    # Top up (and renew) in the background while the rest of the lease is spent, before
                    # it runs low or expires: a busy bucket never makes a request wait for Redis.
                    self._top_up(key, lease, bucket, now)
                return self._decided(policy, limit, bucket, lease, now, True, need)
            if lease.denied_until_us > now and need >= lease.denied_need:
                return self._decided(policy, limit, bucket, lease, now, False, need)
            if self.script is None or self.hub is None or not self.hub.available:
                return self._fallback(key, policy, limit, now, need)
            if lease.fetch is not None:
                await asyncio.shield(lease.fetch)  # another request of this worker is asking Redis
            else:
                try:
                    await self._refill(key, lease, bucket, need, now)
                except RedisUnavailable:
                    return self._fallback(key, policy, limit, self.clock_us(), need)
            now = self.clock_us()
        return self._fallback(key, policy, limit, now, need)

    def known_refusal(self, key: str, limit: TierLimit, policy: str) -> Decision | None:
        """The refusal this worker already knows for the bucket (a denial it was told and that still holds, or
        the fallback bucket empty while Redis is down), without asking Redis or spending anything; None when
        it knows of none. For a check in front of expensive work that only failures are charged for."""
        now = self.clock_us()
        lease = self.leases.get(key)
        if lease is not None and lease.tokens < 1 and lease.denied_until_us > now:
            return self._decided(policy, limit, self.bucket(limit), lease, now, False, 1)
        if self.hub is None or not self.hub.available:
            bucket = self._local_bucket(limit)
            tat = self.local.tats.get(key)
            if tat is not None and gcra.available(bucket, tat, now) < 1:
                return self._decision(policy, limit, bucket, tat, now, False, 1, local=True)
        return None

    def _want(self, lease: _Lease, bucket: gcra.Bucket, need: int) -> int:
        cap = max(1, min(self.lease_max, bucket.burst // 20))
        want = max(need, min(cap, int(self.lease_window_us / max(lease.gap_us, 1.0))))
        # Top up at half the lease: the refill has the other half (~50 ms of this bucket's traffic) to
        # arrive, even on a loaded event loop. Small leases (exact low tiers): no top-up.
        lease.low_water = want // 2 if want >= 8 else 0
        return want

    async def _refill(self, key: str, lease: _Lease, bucket: gcra.Bucket, need: int, now: int,
                      top_up: bool = False) -> None:
        """Take a lease from Redis. A top-up keeps the unspent units; otherwise they go back (refund)."""
        assert self.script is not None and self.hub is not None
        want = self._want(lease, bucket, need)
        refund = 0 if top_up else lease.tokens
        if not top_up:
            lease.tokens = 0
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lease.fetch = future
        script = self.script
        try:
            RATELIMIT_LEASES.inc()
            granted, tat = await self.hub.run("ratelimit", lambda: script(
                keys=[self.prefix + key], args=[now, bucket.interval_us, bucket.burst, want, need, refund]))
            lease.tat_us = int(tat)
            lease.tokens += int(granted)
            lease.expires_us = now + self.lease_ttl_us
            if lease.tokens < need:
                lease.denied_until_us = now + gcra.wait_us(bucket, lease.tat_us, now, need)
                lease.denied_need = need
        finally:
            lease.fetch = None
            future.set_result(None)

    def _top_up(self, key: str, lease: _Lease, bucket: gcra.Bucket, now: int) -> None:
        # Marked before the task starts: the other requests of this loop tick must not schedule their own
        # (they did, and one worker ended up holding thousands of units of a bucket).
        lease.topping = True

        async def run() -> None:
            try:
                await self._refill(key, lease, bucket, 1, now, top_up=True)
            except RedisUnavailable:
                pass  # the next request that finds the lease empty falls back locally
            finally:
                lease.topping = False

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _decided(self, policy: str, limit: TierLimit, bucket: gcra.Bucket, lease: _Lease, now: int,
                 allowed: bool, need: int) -> Decision:
        # This worker's unspent units count as remaining: they are the caller's to use.
        tat = lease.tat_us - lease.tokens * bucket.interval_us
        return self._decision(policy, limit, bucket, tat, now, allowed, need, local=False)

    def _fallback(self, key: str, policy: str, limit: TierLimit, now: int, need: int) -> Decision:
        RATELIMIT_FAIL_OPEN.labels(policy).inc()
        bucket = self._local_bucket(limit)
        allowed, tat = self.local.take(key, bucket, now, need)
        return self._decision(policy, limit, bucket, tat, now, allowed, need, local=True)

    @staticmethod
    def _decision(policy: str, limit: TierLimit, bucket: gcra.Bucket, tat: int, now: int, allowed: bool,
                  need: int, *, local: bool) -> Decision:
        remaining = gcra.available(bucket, tat, now)
        if remaining > 0:
            reset_us = gcra.full_in_us(tat, now)
        else:
            reset_us = gcra.wait_us(bucket, tat, now, 1)
        retry_us = 0 if allowed else gcra.wait_us(bucket, tat, now, need)
        _counter(policy, allowed).inc()
        return Decision(policy=policy, limit=limit, allowed=allowed, remaining=remaining,
                        reset_s=-(-reset_us // 1_000_000), retry_after_s=max(1, -(-retry_us // 1_000_000)),
                        local=local, cost=need)
