"""GCRA (generic cell rate algorithm) arithmetic, in integer microseconds.

One number per bucket, the theoretical arrival time (TAT). With emission interval T and depth B, a
request costing n is allowed when `max(TAT, now) + n*T - now <= B*T`; it then moves TAT by n*T. A fresh
bucket therefore allows B requests at once, then one per T. "Remaining" and "retry after" fall out of
the same arithmetic. The Redis script (limiter.py) is this module written in Lua; the local fallback
buckets use this module directly, so both give the same answers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    interval_us: int  # T
    burst: int  # B

    @property
    def tolerance_us(self) -> int:
        return self.interval_us * self.burst


def available(bucket: Bucket, tat_us: int, now_us: int) -> int:
    """Whole units that could be taken now."""
    tat = max(tat_us, now_us)
    return max(0, min(bucket.burst, (now_us + bucket.tolerance_us - tat) // bucket.interval_us))


def take(bucket: Bucket, tat_us: int, now_us: int, want: int, need: int) -> tuple[int, int]:
    """Take up to `want` units if at least `need` are available: (granted, new TAT)."""
    tat = max(tat_us, now_us)
    free = available(bucket, tat, now_us)
    if free < need:
        return 0, tat
    granted = min(want, free)
    return granted, tat + granted * bucket.interval_us


def wait_us(bucket: Bucket, tat_us: int, now_us: int, need: int) -> int:
    """Time until `need` units are available (0 if they are now)."""
    return max(0, max(tat_us, now_us) + need * bucket.interval_us - bucket.tolerance_us - now_us)


def full_in_us(tat_us: int, now_us: int) -> int:
    """Time until the bucket is full again."""
    return max(0, tat_us - now_us)


class LocalBuckets:
    """Per-worker GCRA buckets: the fallback while Redis is unreachable. Bounded: when full, the
    oldest half is dropped (those buckets restart full, erring on the side of serving traffic)."""

    def __init__(self, max_buckets: int = 100_000) -> None:
        self.max_buckets = max_buckets
        self.tats: dict[str, int] = {}

    def take(self, key: str, bucket: Bucket, now_us: int, need: int) -> tuple[bool, int]:
        """(allowed, TAT after the decision)."""
        tat = self.tats.get(key, now_us)
        granted, new_tat = take(bucket, tat, now_us, need, need)
        if granted:
            if key not in self.tats and len(self.tats) >= self.max_buckets:
                for old in list(self.tats)[: self.max_buckets // 2]:
                    del self.tats[old]
            self.tats[key] = new_tat
        return granted > 0, new_tat
