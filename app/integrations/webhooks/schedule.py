"""When a failed delivery is tried again: Standard Webhooks' example schedule, cut at three days.

Attempt 1 is immediate; after the n-th failed attempt the next waits SCHEDULE[n-1] seconds, give or take
JITTER (so endpoints that failed together are not all retried in the same second), and never later than
WINDOW_SECONDS after the first attempt: the last gap is what is left of the three days. Pure, so its values
are tested as they are.
"""

from __future__ import annotations

MINUTE, HOUR = 60, 3600
WINDOW_SECONDS = 3 * 24 * HOUR
# 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h (51.6 h so far), then the rest of the three days (20.4 h).
_GAPS = (5, 5 * MINUTE, 30 * MINUTE, 2 * HOUR, 5 * HOUR, 10 * HOUR, 14 * HOUR, 20 * HOUR)
SCHEDULE: tuple[int, ...] = (*_GAPS, WINDOW_SECONDS - sum(_GAPS))
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.1  # +-10 % of the gap


def retry_delay(failed_attempts: int, since_first: float, draw: float = 0.0) -> float | None:
    """Seconds until the next attempt after `failed_attempts` failures, `since_first` seconds after the first
    attempt; None when the schedule is over. `draw` in [-1, 1] picks the jitter (0: the nominal gap)."""
    if failed_attempts < 1 or failed_attempts > len(SCHEDULE):
        return None
    left = WINDOW_SECONDS - since_first
    if left <= 0:
        return None
    gap = SCHEDULE[failed_attempts - 1] * (1.0 + JITTER * max(-1.0, min(1.0, draw)))
    return min(gap, left)


def nominal_offsets() -> list[int]:
    """Seconds after the first attempt at which each attempt is made, without jitter."""
    out, at = [0], 0
    for gap in SCHEDULE:
        at += gap
        out.append(at)
    return out
