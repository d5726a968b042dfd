"""Admission plus the tier limit: every authenticated route admits its caller here, then is charged.

Order matters: a credential is checked first and only a valid one reaches its tenant's bucket. A request
whose credential is missing or wrong is charged to a per-IP pre-auth bucket instead, so invalid keys
can neither drain nor probe a tenant's quota (the draft's security note). Calculations are charged
their priced cost (app.calculations.cost) before they run; a cost above the tier's burst can never
be admitted and is refused up front without touching the bucket.
"""

from __future__ import annotations

from starlette.requests import HTTPConnection

from app.auth.admission import Caller, admit
from app.auth.service import AuthService
from app.client_ip import Network, client_ip
from app.errors import OriginNotAllowed, RateLimited, Unauthorized
from app.ratelimit.limiter import Decision, Limiter
from app.ratelimit.tiers import TierLimit, tier_limit

# One visitor of a broker's embedded widget: ample for a person at a calculator, a small slice of any tier.
# 60: the widget recalculates as the form changes (debounced) and asks for quotes when the pair changes.
WIDGET_VISITOR = TierLimit("free", 60, 60)  # name: the GCRA key space; the headers say "widget-visitor"

# 429 messages (RateLimits._take fills them in on a refusal only).
PRE_AUTH_REFUSAL = "Too many requests without valid credentials from this address; retry in {retry} s."
TIER_REFUSAL = "The {policy} tier allows {per_minute} requests per minute with bursts of {burst}; retry in {retry} s."
PAGES_REFUSAL = "Too many calculator pages opened; retry in {retry} s."
VISITOR_REFUSAL = "This page's calculator allows {per_minute} calculations per minute per visitor; retry in {retry} s."


class CostAboveBurst(RateLimited):
    """A request priced above the tier's whole burst: no wait would let it through, so it is refused
    before it runs and before it touches the bucket (no Retry-After)."""

    def __init__(self, cost: int, burst: int, tier: str) -> None:
        super().__init__(
            f"This request costs {cost} units; the {tier} tier admits at most {burst} at once. Split it "
            f"(fewer items, paths or observations) or move to a higher tier.",
            errors=[{"field": "body", "pointer": "#", "code": "cost_above_burst",
                     "detail": f"cost {cost} units > burst {burst}", "cost": cost, "limit": burst}])
        self.cost, self.burst = cost, burst
        self.headers = {"RateLimit-Cost": str(cost)}


class RateLimits:
    def __init__(self, auth: AuthService, limiter: Limiter, trusted_proxies: tuple[Network, ...],
                 pre_auth: TierLimit, enabled: bool = True, pages_per_ip: int = 20,
                 pages_per_broker: int = 600) -> None:
        self.page_per_ip = TierLimit("free", pages_per_ip, pages_per_ip)
        self.page_per_broker = TierLimit("free", pages_per_broker, pages_per_broker)
        self.config_per_ip = TierLimit("free", 3 * pages_per_ip, 3 * pages_per_ip)
        self.auth = auth
        self.pre_auth_limit = pre_auth
        self.limiter = limiter
        self.trusted_proxies = trusted_proxies
        self.enabled = enabled

    async def admit(self, conn: HTTPConnection) -> Caller:
        """The request's caller (app.auth.admission), not yet charged; a refused credential is charged
        to the caller's IP instead."""
        try:
            return await admit(self.auth, conn)
        except (Unauthorized, OriginNotAllowed):
            await self.pre_auth(conn)
            raise

    async def pre_auth(self, conn: HTTPConnection) -> None:
        """Charge the caller's IP (login attempts, bad credentials)."""
        if not self.enabled:
            return
        ip = client_ip(conn.scope, self.trusted_proxies)
        await self._take(conn, "ip:" + ip, self.pre_auth_limit, "pre-auth", 1, PRE_AUTH_REFUSAL)

    def pre_auth_refusing(self, conn: HTTPConnection) -> None:
        """A 429 before any work when the caller's IP has spent its pre-auth bucket (as far as this worker
        knows, without a Redis round trip): for routes that check a credential themselves, an expensive one
        (the inbound events' signature: a secret lookup, a decryption, an HMAC over the body). Only failures
        are charged (`pre_auth`), so a caller that keeps signing correctly is never held back by this."""
        if not self.enabled:
            return
        ip = client_ip(conn.scope, self.trusted_proxies)
        decision = self.limiter.known_refusal("ip:" + ip, self.pre_auth_limit, "pre-auth")
        if decision is not None:
            self._attach(conn, decision)
            raise RateLimited(PRE_AUTH_REFUSAL.format(retry=decision.retry_after_s))

    async def charge(self, conn: HTTPConnection, caller: Caller, cost: int = 1) -> None:
        """Charge `cost` units to the caller's broker (or key, when the broker limits per key)."""
        if not self.enabled:
            return
        broker, principal = caller.broker, caller.principal
        if broker.is_platform:
            return  # the platform operator's own tenant is not a customer tier
        limit = tier_limit(broker.tier)
        if cost > limit.burst:
            raise CostAboveBurst(cost, limit.burst, broker.tier)
        if principal.widget_session:
            await self._charge_visitor(conn, broker.id, cost)
        key = f"b:{broker.id}"
        # Per-key buckets give each key the tier's whole budget, so they would let a broker multiply its
        # own limit by minting keys: honoured only on the enterprise tier, which the platform sets.
        if principal.api_key_id is not None and broker.tier == "enterprise" and broker.config.get("rateLimitPerKey"):
            key += f":k:{principal.api_key_id}"
        await self._take(conn, key, limit, broker.tier, cost, TIER_REFUSAL)

    async def page_issuance(self, conn: HTTPConnection, page: str | None) -> None:
        """A full page mints a widget session for whoever loads it: a few per client address and a bounded
        number per broker page a minute (settings.widget_pages_*), so nobody farms sessions."""
        if not self.enabled:
            return
        ip = client_ip(conn.scope, self.trusted_proxies)
        # The embedded widget's config (page None) loads on every page view of a broker's site, often many
        # visitors behind one address: three times the full-page allowance, in its own bucket.
        buckets = [(f"wp-ip:{ip}", self.page_per_ip) if page is not None else (f"wc-ip:{ip}", self.config_per_ip)]
        if page is not None:
            buckets.append((f"wp:{page}", self.page_per_broker))
        for key, limit in buckets:
            # Headers only on a refusal: a page's own answers describe the broker's limits, not this one.
            await self._take(conn, key, limit, "widget-page", 1, PAGES_REFUSAL, headers_when_allowed=False)

    async def _charge_visitor(self, conn: HTTPConnection, broker_id: object, cost: int) -> None:
        """A widget visitor's own small bucket (per broker and client address), spent before the broker's:
        one visitor, however many sessions it opens, cannot spend more than WIDGET_VISITOR of its quota."""
        if cost > WIDGET_VISITOR.burst:
            raise CostAboveBurst(cost, WIDGET_VISITOR.burst, "widget visitor")
        ip = client_ip(conn.scope, self.trusted_proxies)
        await self._take(conn, f"wv:{broker_id}:{ip}", WIDGET_VISITOR, "widget-visitor", cost, VISITOR_REFUSAL,
                         headers_when_allowed=False)

    async def _take(self, conn: HTTPConnection, key: str, limit: TierLimit, policy: str, cost: int, refusal: str,
                    *, headers_when_allowed: bool = True) -> None:
        """Take `cost` units of one bucket; refused: a 429 with the headers, its message the template filled
        in (`{policy}`, `{per_minute}`, `{burst}`, `{retry}`) only then, never on the allowed path."""
        decision = await self.limiter.acquire(key, limit, policy, cost)
        if headers_when_allowed or not decision.allowed:
            self._attach(conn, decision)
        if not decision.allowed:
            raise RateLimited(refusal.format(policy=policy, per_minute=limit.per_minute, burst=limit.burst,
                                             retry=decision.retry_after_s))

    @staticmethod
    def _attach(conn: HTTPConnection, decision: Decision) -> None:
        # Read by the request middleware, which writes the headers on whatever response follows.
        conn.scope.setdefault("state", {})["ratelimit"] = decision
