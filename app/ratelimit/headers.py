"""RateLimit response headers, both the IETF draft fields and the widespread legacy ones.

- `RateLimit-Policy: "<policy>";q=<depth>;w=<seconds to refill the depth>` (draft-ietf-httpapi-ratelimit-headers
  -10/-11). A GCRA bucket of depth B refilling one unit per T is described exactly as B units per B*T
  seconds: it allows the burst and the sustained rate.
- `RateLimit: "<policy>";r=<remaining>;t=<seconds>`: t is when the bucket is full again, or, when nothing
  is left (and on every 429), when the next request can pass, the same instant as `Retry-After`.
- `RateLimit-Limit` / `RateLimit-Remaining` / `RateLimit-Reset` (drafts <= 06, Kong, GitLab) with the
  same numbers, and Kong's `X-RateLimit-Limit-Minute` / `X-RateLimit-Remaining-Minute`.
- `RateLimit-Cost: <units>`: what this request was charged (a calculation's priced cost, README "Cost
  of a request"); no standard names it, so it carries the draft's prefix.
No jitter is added: buckets are per tenant, so refusals of different clients are not synchronised.
"""

from __future__ import annotations

from app.ratelimit.limiter import Decision

_policy_cache: dict[tuple[str, int, int], bytes] = {}


def _policy(decision: Decision) -> bytes:
    limit = decision.limit
    key = (decision.policy, limit.burst, limit.per_minute)
    value = _policy_cache.get(key)
    if value is None:
        window = round(limit.burst * 60 / limit.per_minute)
        value = _policy_cache[key] = f'"{decision.policy}";q={limit.burst};w={window}'.encode()
    return value


_UNITS = [str(n).encode() for n in range(64)]


def _units(n: int) -> bytes:
    return _UNITS[n] if n < 64 else str(n).encode()


def header_list(decision: Decision) -> list[tuple[bytes, bytes]]:
    remaining = str(decision.remaining).encode()
    reset = str(decision.retry_after_s if not decision.allowed else decision.reset_s).encode()
    headers = [
        (b"ratelimit-policy", _policy(decision)),
        (b"ratelimit", b'"' + decision.policy.encode() + b'";r=' + remaining + b";t=" + reset),
        (b"ratelimit-limit", str(decision.limit.burst).encode()),
        (b"ratelimit-remaining", remaining),
        (b"ratelimit-reset", reset),
        (b"x-ratelimit-limit-minute", str(decision.limit.per_minute).encode()),
        # Kong's pair describes one minute: never more remaining than the minute's limit (the bucket
        # may hold up to the burst, which is larger).
        (b"x-ratelimit-remaining-minute", str(min(decision.remaining, decision.limit.per_minute)).encode()),
        (b"ratelimit-cost", _units(decision.cost)),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", reset))
    return headers
