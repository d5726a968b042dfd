"""The one Stripe client: the official SDK (`stripe.StripeClient`, async calls over httpx), built in the lifespan.

Which Stripe it talks to is configuration only:
- `STRIPE_API_KEY` set: Stripe (its own api_base, or `STRIPE_API_BASE` if also set, e.g. a proxy).
- no key, `STRIPE_API_BASE` set (development, tests): the local server (app/billing/localserver) with its
  fixed test key. Production refuses this combination (app.config).
- neither: `None`; billing routes answer 503 billing-unavailable saying what to set.

Every POST that makes a customer, a Checkout or portal session or a subscription change carries an idempotency
key derived from our own operation (the client's Idempotency-Key, else the request id; Stripe replays the first
result for the same key), so our retries and the client's reach the same object. Every other POST gets one from
the SDK itself (a fresh key per call, reused by its own network retries); meter events are deduplicated by
their identifier. Catalog Prices take no key of ours: a key would replay an old Price for 24 h after a price
change and back.
"""

from __future__ import annotations

from typing import Any, cast

import stripe

from app.config import Settings
from app.errors import BillingUnavailable

LOCAL_API_KEY = "sk_test_forexrisk_local"  # what the local server accepts (app.billing.localserver.process)


class HttpxClient(stripe.HTTPXClient):
    """The SDK's httpx transport, sending the encoded body as `content=`: stripe 16.1 passes it as `data=<str>`,
    which httpx (0.28) deprecates with a DeprecationWarning on every POST (our tests make warnings errors;
    the same pattern as stripe/stripe-python#1428 for `verify=`)."""

    def _get_request_args_kwargs(self, method: str, url: str, headers: Any, post_data: Any) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        data = kwargs.pop("data", None)
        if isinstance(data, (str, bytes)) and data:
            kwargs["content"] = data
        return [args, kwargs]


class StripeGateway:
    def __init__(self, client: stripe.StripeClient, http: HttpxClient, *, local: bool) -> None:
        self.client = client
        self.http = http
        self.local = local  # the local server: its test helpers (/_double/...) exist

    @classmethod
    def build(cls, settings: Settings) -> StripeGateway | None:
        if settings.stripe_api_key is not None:
            key, local = settings.stripe_api_key.get_secret_value(), False
        elif settings.stripe_api_base is not None and settings.environment != "production":
            key, local = LOCAL_API_KEY, True
        else:
            return None
        options: dict[str, Any] = {}
        if settings.stripe_api_base:
            options["base_addresses"] = {"api": settings.stripe_api_base}
        http = HttpxClient(timeout=settings.stripe_timeout_seconds)
        client = stripe.StripeClient(key, http_client=http, max_network_retries=settings.stripe_max_retries,
                                     **options)
        return cls(client, http, local=local)

    @property
    def v1(self) -> Any:
        # The SDK's services are typed with TypedDict params; ours are built from configuration and
        # validated by Stripe (and the local double), so they are passed as plain dicts.
        return cast(Any, self.client.v1)

    async def close(self) -> None:
        await self.http.close_async()  # type: ignore[no-untyped-call]


def require_gateway(gateway: StripeGateway | None) -> StripeGateway:
    if gateway is None:
        raise BillingUnavailable("Billing is not configured on this deployment: set STRIPE_API_KEY (and "
                                 "STRIPE_WEBHOOK_SECRET); in development `forexrisk run` starts a local Stripe "
                                 "server when the dev dependencies are installed.")
    return gateway


def unavailable(exc: stripe.StripeError) -> BillingUnavailable:
    """Stripe could not be reached or failed (5xx, timeouts): a 503, never a 500."""
    return BillingUnavailable(f"Stripe did not answer as expected ({type(exc).__name__}); retry later.")
