"""How long a failed job waits before its next try: exponential, capped, with jitter.

Hand-written (three lines) rather than tenacity's wait strategies: those take tenacity's own call state,
and arq only needs a number of seconds for `Retry(defer=...)`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base_seconds: float
    max_seconds: float
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failed_tries: int) -> float:
        """Seconds to wait after the `failed_tries`-th failed try (1 for the first). "Equal jitter": a random
        point in the upper half of base * 2^(n-1), so the waits still grow try after try (the n-th lies in
        [c/2, c], the next in [c, 2c]) while workers that failed together spread out."""
        ceiling = min(self.max_seconds, self.base_seconds * 2.0 ** (max(failed_tries, 1) - 1))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)
