"""The local double of the Stripe endpoints localstripe does not have, in front of localstripe.

Served here, from Stripe's API reference (https://docs.stripe.com/api), parameters checked the way Stripe
checks them (an unknown parameter or a missing required one is a 400 `invalid_request_error` naming it):

- `/v1/prices` create, retrieve, update, list (`lookup_keys[]`, `product`, `active`). Each Price is
  mirrored in localstripe as a Plan with the same id, so subscriptions can use it.
- `/v1/checkout/sessions` create, retrieve (mode `subscription`).
- `/v1/billing_portal/sessions` create.
- `/v1/billing/meters` create, list; `/v1/billing/meter_events` create (identifier deduplicated).
- `/v1/subscriptions...` pass through with `items[n][price]` rewritten to `items[n][plan]` (localstripe
  knows only plans; issue adrienverge/localstripe#160), and with the status a test set (below) laid over;
  one created with a `trial_end` still ahead is `trialing` (localstripe says `incomplete`).
- `/v1/events` merges localstripe's events with the double's own.
- `Idempotency-Key` on every `/v1/...` POST (those passed to localstripe too): the first successful answer is
  replayed (`Idempotent-Replayed: true`); the key with other parameters is a 400 `idempotency_error`.

What a customer or Stripe's clock would do, as `/_double/...` helpers (never part of Stripe's API):
`checkout/sessions/{id}/complete` (pay on the hosted page: card, subscription, `checkout.session.completed`),
`subscriptions/{id}/payment_failed` and `.../payment_succeeded` (a renewal invoice fails or is paid),
`subscriptions/{id}/trial_will_end`, `meter_events` (what was reported), `webhook` (where to deliver).

Everything else is passed to localstripe unchanged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from app.billing.localserver.forms import decode, encode

Params = dict[str, Any]


class StripeError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"type": self.kind, "message": self.message}
        if self.param:
            error["param"] = self.param
        if self.code:
            error["code"] = self.code
        return JSONResponse({"error": error}, status_code=self.status)


def _id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def check(params: Params, allowed: set[str], required: tuple[str, ...] = (), where: str = "") -> None:
    """Stripe's own parameter checks: unknown names and missing required ones are 400s naming the field."""
    for name in params:
        if name not in allowed:
            raise StripeError(400, f"Received unknown parameter: {where}{name}", param=f"{where}{name}")
    for name in required:
        if params.get(name) in (None, ""):
            raise StripeError(400, f"Missing required param: {where}{name}.", param=f"{where}{name}",
                              code="parameter_missing")


def _int(params: Params, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError(400, f"Invalid integer: {value}", param=name) from None


def _bool(value: Any) -> bool:
    return str(value).lower() == "true"


PRICE_CREATE = {"currency", "active", "billing_scheme", "custom_unit_amount", "lookup_key", "metadata", "nickname",
                "product", "product_data", "recurring", "tax_behavior", "tiers", "tiers_mode", "transfer_lookup_key",
                "transform_quantity", "unit_amount", "unit_amount_decimal", "currency_options", "expand"}
PRICE_UPDATE = {"active", "lookup_key", "metadata", "nickname", "transfer_lookup_key", "tax_behavior",
                "currency_options", "expand"}
RECURRING = {"interval", "interval_count", "meter", "usage_type", "aggregate_usage", "trial_period_days"}
CHECKOUT_CREATE = {
    "mode", "success_url", "cancel_url", "customer", "customer_email", "client_reference_id", "line_items", "metadata",
    "subscription_data", "allow_promotion_codes", "billing_address_collection", "automatic_tax", "customer_update",
    "expires_at", "locale", "payment_method_types", "tax_id_collection", "consent_collection", "custom_fields",
    "custom_text", "currency", "discounts", "ui_mode", "return_url", "payment_method_collection",
    "phone_number_collection", "saved_payment_method_options", "expand", "customer_creation",
    "payment_method_configuration", "submit_type", "invoice_creation", "redirect_on_completion"}
LINE_ITEM = {"price", "price_data", "quantity", "adjustable_quantity", "dynamic_tax_rates", "tax_rates"}
SUBSCRIPTION_DATA = {"metadata", "trial_end", "trial_period_days", "description", "billing_cycle_anchor",
                     "proration_behavior", "default_tax_rates", "application_fee_percent", "on_behalf_of",
                     "transfer_data", "trial_settings", "invoice_settings", "billing_mode"}
PORTAL_CREATE = {"customer", "return_url", "configuration", "flow_data", "locale", "on_behalf_of", "expand"}
METER_CREATE = {"display_name", "event_name", "default_aggregation", "customer_mapping", "value_settings",
                "event_time_window", "expand"}
METER_EVENT_CREATE = {"event_name", "payload", "identifier", "timestamp", "expand"}


class Double:
    """The state of the double: plain dicts, gone with the process (like localstripe's `--from-scratch`)."""

    def __init__(self, upstream: str, public_url: str, clock: Callable[[], float] = time.time) -> None:
        self.upstream = upstream.rstrip("/")
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self.http = httpx.AsyncClient(base_url=self.upstream, timeout=30)
        self.prices: dict[str, Params] = {}
        self.sessions: dict[str, Params] = {}
        self.portal_sessions: dict[str, Params] = {}
        self.meters: dict[str, Params] = {}
        self.meter_events: dict[str, Params] = {}  # by identifier
        self.idempotent: dict[tuple[str, str], tuple[str, int, bytes]] = {}  # (api key, key) -> first answer
        self.invoices: dict[str, Params] = {}
        self.events: list[Params] = []
        self.status_overlay: dict[str, str] = {}  # subscription id -> status a test set
        self.webhook: tuple[str, str] | None = None  # (url, secret)
        self._tasks: set[asyncio.Task[None]] = set()

    def now(self) -> int:
        return int(self.clock())

    # --- talking to localstripe ------------------------------------------------------------------
    async def upstream_call(self, method: str, path: str, auth: str, params: Params | None = None) -> Params:
        headers = {"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"}
        if method == "GET":
            resp = await self.http.request(method, path, params=encode(params or {}), headers=headers)
        else:
            resp = await self.http.request(method, path, content=encode(params or {}), headers=headers)
        try:
            body: Params = resp.json()
        except ValueError:
            raise StripeError(502, f"localstripe answered {resp.status_code} without JSON on {method} {path}") from None
        if resp.status_code >= 400:
            error = body.get("error", {})
            raise StripeError(resp.status_code, str(error.get("message", "upstream error")), error.get("param"))
        return body

    # --- events and their delivery ------------------------------------------------------------------
    def emit(self, type_: str, obj: Params) -> Params:
        event = {"id": _id("evt_"), "object": "event", "api_version": "2026-10-28.endive", "created": self.now(),
                 "type": type_, "livemode": False, "pending_webhooks": 1, "request": {"id": None},
                 "data": {"object": obj}}
        self.events.append(event)
        if self.webhook is not None:
            task = asyncio.get_running_loop().create_task(self._deliver(event, *self.webhook))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return event

    async def _deliver(self, event: Params, url: str, secret: str) -> None:
        payload = orjson.dumps(event)
        t = self.now()
        signature = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
        try:
            await self.http.post(url, content=payload, headers={"Content-Type": "application/json",
                                                                "Stripe-Signature": f"t={t},v1={signature}"})
        except httpx.HTTPError:
            pass  # development delivery: best effort, like localstripe's own

    # --- prices -----------------------------------------------------------------------------------
    async def create_price(self, params: Params, auth: str) -> Params:
        check(params, PRICE_CREATE, ("currency",))
        recurring = params.get("recurring")
        if recurring is not None:
            check(recurring, RECURRING, ("interval",), "recurring.")
            if recurring["interval"] not in ("day", "week", "month", "year"):
                raise StripeError(400, "Invalid recurring[interval]", "recurring[interval]")
            if recurring.get("usage_type", "licensed") not in ("licensed", "metered"):
                raise StripeError(400, "Invalid recurring[usage_type]", "recurring[usage_type]")
            if recurring.get("meter") and recurring.get("usage_type") != "metered":
                raise StripeError(400, "recurring[meter] needs recurring[usage_type]=metered", "recurring[meter]")
        product = params.get("product")
        if not product and not params.get("product_data"):
            raise StripeError(400, "Missing required param: product.", "product", "parameter_missing")
        amount = _int(params, "unit_amount")
        if amount is None and params.get("billing_scheme") != "tiered" and params.get("unit_amount_decimal") is None:
            raise StripeError(400, "Missing required param: unit_amount.", "unit_amount", "parameter_missing")
        if product is None:
            made = await self.upstream_call("POST", "/v1/products", auth, params["product_data"])
            product = made["id"]
        else:
            await self.upstream_call("GET", f"/v1/products/{product}", auth)  # 404 for an unknown product
        lookup_key = params.get("lookup_key")
        if lookup_key:
            holder = next((p for p in self.prices.values() if p["lookup_key"] == lookup_key), None)
            if holder is not None:
                if not _bool(params.get("transfer_lookup_key", False)):
                    raise StripeError(400, f"A price (`{holder['id']}`) already uses that lookup key.", "lookup_key")
                holder["lookup_key"] = None
        price = {
            "id": _id("price_"), "object": "price", "active": _bool(params.get("active", True)),
            "billing_scheme": params.get("billing_scheme", "per_unit"), "created": self.now(),
            "currency": str(params["currency"]).lower(), "livemode": False, "lookup_key": lookup_key,
            "metadata": params.get("metadata") or {}, "nickname": params.get("nickname"), "product": product,
            "recurring": None, "tax_behavior": params.get("tax_behavior", "unspecified"), "tiers_mode": None,
            "transform_quantity": None, "type": "one_time", "unit_amount": amount,
            "unit_amount_decimal": str(amount) if amount is not None else params.get("unit_amount_decimal"),
        }
        if recurring is not None:
            price["type"] = "recurring"
            price["recurring"] = {"interval": recurring["interval"],
                                  "interval_count": int(recurring.get("interval_count", 1)),
                                  "meter": recurring.get("meter"),
                                  "usage_type": recurring.get("usage_type", "licensed"),
                                  "trial_period_days": None}
            # The localstripe Plan this Price stands for (same id): what subscriptions actually reference.
            await self.upstream_call("POST", "/v1/plans", auth, {
                "id": price["id"], "product": product, "amount": amount or 0, "currency": price["currency"],
                "interval": recurring["interval"], "interval_count": price["recurring"]["interval_count"],
                "usage_type": price["recurring"]["usage_type"]})
        self.prices[price["id"]] = price
        return price

    def get_price(self, price_id: str) -> Params:
        price = self.prices.get(price_id)
        if price is None:
            raise StripeError(404, f"No such price: '{price_id}'", "price", "resource_missing")
        return price

    def update_price(self, price_id: str, params: Params) -> Params:
        check(params, PRICE_UPDATE)
        price = self.get_price(price_id)
        if "active" in params:
            price["active"] = _bool(params["active"])
        if "metadata" in params:
            price["metadata"] = {**price["metadata"], **(params["metadata"] or {})}
        if "nickname" in params:
            price["nickname"] = params["nickname"]
        if "lookup_key" in params:
            price["lookup_key"] = params["lookup_key"] or None
        return price

    def list_prices(self, params: Params) -> Params:
        check(params, {"active", "currency", "lookup_keys", "product", "type", "recurring", "limit", "starting_after",
                       "ending_before", "created", "expand"})
        rows = list(self.prices.values())
        if "lookup_keys" in params:
            wanted = set(params["lookup_keys"])
            rows = [p for p in rows if p["lookup_key"] in wanted]
        if "product" in params:
            rows = [p for p in rows if p["product"] == params["product"]]
        if "active" in params:
            rows = [p for p in rows if p["active"] == _bool(params["active"])]
        limit = _int(params, "limit") or 10
        return {"object": "list", "url": "/v1/prices", "has_more": len(rows) > limit, "data": rows[:limit]}

    # --- checkout sessions ----------------------------------------------------------------------------
    async def create_session(self, params: Params, auth: str) -> Params:
        check(params, CHECKOUT_CREATE, ("mode",))
        if params["mode"] != "subscription":
            raise StripeError(400, "The double implements mode=subscription only.", "mode")
        if params.get("ui_mode", "hosted") == "hosted" and not params.get("success_url"):
            raise StripeError(400, "Missing required param: success_url.", "success_url", "parameter_missing")
        if params.get("customer") and params.get("customer_email"):
            raise StripeError(400, "You may only specify one of these parameters: customer, customer_email.",
                              "customer_email")
        if params.get("customer"):
            await self.upstream_call("GET", f"/v1/customers/{params['customer']}", auth)
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(400, "line_items is required in subscription mode.", "line_items", "parameter_missing")
        for i, item in enumerate(items):
            check(item, LINE_ITEM, (), f"line_items[{i}].")
            price = self.get_price(str(item.get("price")))
            if price["recurring"] is None:
                raise StripeError(400, "A subscription needs recurring prices.", f"line_items[{i}][price]")
            metered = price["recurring"]["usage_type"] == "metered"
            if metered and item.get("quantity") is not None:
                raise StripeError(400, "Quantity should not be specified where usage_type is `metered`.",
                                  f"line_items[{i}][quantity]")
            if not metered and item.get("quantity") is None:
                raise StripeError(400, "Missing required param: quantity.", f"line_items[{i}][quantity]",
                                  "parameter_missing")
        data = params.get("subscription_data") or {}
        check(data, SUBSCRIPTION_DATA, (), "subscription_data.")
        session_id = _id("cs_test_")
        session = {
            "id": session_id, "object": "checkout.session", "mode": "subscription", "status": "open",
            "payment_status": "unpaid", "url": f"{self.public_url}/checkout/{session_id}",
            "success_url": params.get("success_url"), "cancel_url": params.get("cancel_url"),
            "customer": params.get("customer"), "customer_email": params.get("customer_email"),
            "client_reference_id": params.get("client_reference_id"), "metadata": params.get("metadata") or {},
            "subscription": None, "created": self.now(), "expires_at": _int(params, "expires_at") or self.now() + 86400,
            "livemode": False, "line_items_": items, "subscription_data_": data,
        }
        self.sessions[session_id] = session
        return self.public(session)

    @staticmethod
    def public(obj: Params) -> Params:
        return {k: v for k, v in obj.items() if not k.endswith("_")}

    def get_session(self, session_id: str) -> Params:
        session = self.sessions.get(session_id)
        if session is None:
            raise StripeError(404, f"No such checkout.session: '{session_id}'", "session", "resource_missing")
        return session

    async def complete_session(self, session_id: str, auth: str, card: str = "4242424242424242") -> Params:
        """What the customer does on Checkout's hosted page: give a card and pay. The subscription is made in
        localstripe (a declined test card fails there, as it would at Stripe)."""
        session = self.get_session(session_id)
        if session["status"] != "open":
            raise StripeError(400, "This Checkout Session is no longer open.", "session")
        customer = session["customer"]
        if customer is None:
            customer = (await self.upstream_call("POST", "/v1/customers", auth,
                                                 {"email": session["customer_email"]}))["id"]
        pm = await self.upstream_call("POST", "/v1/payment_methods", auth, {
            "type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2040, "cvc": "123"}})
        await self.upstream_call("POST", f"/v1/payment_methods/{pm['id']}/attach", auth, {"customer": customer})
        await self.upstream_call("POST", f"/v1/customers/{customer}", auth,
                                 {"invoice_settings": {"default_payment_method": pm["id"]}})
        data = session["subscription_data_"]
        sub_params: Params = {"customer": customer, "metadata": data.get("metadata") or {},
                              "items": [{"plan": item["price"], **({"quantity": item["quantity"]}
                                                                    if item.get("quantity") else {})}
                                        for item in session["line_items_"]]}
        if data.get("trial_end"):
            sub_params["trial_end"] = data["trial_end"]
        subscription = await self.upstream_call("POST", "/v1/subscriptions", auth, sub_params)
        session.update(status="complete", payment_status="paid", customer=customer, subscription=subscription["id"])
        self.emit("checkout.session.completed", self.public(session))
        return self.public(session)

    # --- billing portal -------------------------------------------------------------------------------
    async def create_portal_session(self, params: Params, auth: str) -> Params:
        check(params, PORTAL_CREATE, ("customer",))
        await self.upstream_call("GET", f"/v1/customers/{params['customer']}", auth)
        session_id = _id("bps_")
        session = {"id": session_id, "object": "billing_portal.session", "configuration": params.get("configuration"),
                   "created": self.now(), "customer": params["customer"], "flow": params.get("flow_data"),
                   "livemode": False, "locale": params.get("locale"), "on_behalf_of": None,
                   "return_url": params.get("return_url"), "url": f"{self.public_url}/portal/{session_id}"}
        self.portal_sessions[session_id] = session
        return session

    # --- meters -----------------------------------------------------------------------------------------
    def create_meter(self, params: Params) -> Params:
        check(params, METER_CREATE, ("display_name", "event_name", "default_aggregation"))
        aggregation = params["default_aggregation"]
        check(aggregation, {"formula"}, ("formula",), "default_aggregation.")
        if aggregation["formula"] not in ("sum", "count", "last"):
            raise StripeError(400, "Invalid default_aggregation[formula]", "default_aggregation[formula]")
        if any(m["event_name"] == params["event_name"] and m["status"] == "active" for m in self.meters.values()):
            raise StripeError(400, "An active meter with this event_name exists.", "event_name")
        mapping = params.get("customer_mapping") or {"event_payload_key": "stripe_customer_id", "type": "by_id"}
        value = params.get("value_settings") or {"event_payload_key": "value"}
        meter = {"id": _id("mtr_test_"), "object": "billing.meter", "created": self.now(),
                 "customer_mapping": mapping, "default_aggregation": aggregation,
                 "display_name": params["display_name"], "event_name": params["event_name"],
                 "event_time_window": params.get("event_time_window"), "livemode": False, "status": "active",
                 "value_settings": value, "updated": self.now()}
        self.meters[meter["id"]] = meter
        return meter

    def list_meters(self, params: Params) -> Params:
        check(params, {"status", "limit", "starting_after", "ending_before", "expand"})
        rows = [m for m in self.meters.values() if "status" not in params or m["status"] == params["status"]]
        return {"object": "list", "url": "/v1/billing/meters", "has_more": False, "data": rows}

    def create_meter_event(self, params: Params) -> Params:
        check(params, METER_EVENT_CREATE, ("event_name", "payload"))
        meter = next((m for m in self.meters.values() if m["event_name"] == params["event_name"]), None)
        if meter is None:
            raise StripeError(400, f"No active meter was found for event_name {params['event_name']}.", "event_name")
        payload = params["payload"]
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        for key in (customer_key, value_key):
            if not payload.get(key):
                raise StripeError(400, f"Missing required param: payload[{key}].", f"payload[{key}]",
                                  "parameter_missing")
        try:
            float(payload[value_key])
        except ValueError:
            raise StripeError(400, "payload value must be a number", f"payload[{value_key}]") from None
        identifier = params.get("identifier") or _id("")
        if identifier in self.meter_events:
            # Stripe enforces identifier uniqueness over a rolling window of at least 24 h.
            raise StripeError(400, f"An event already exists with identifier {identifier}.", "identifier",
                              "resource_already_exists")
        event = {"object": "billing.meter_event", "created": self.now(), "event_name": params["event_name"],
                 "identifier": identifier, "livemode": False, "payload": payload,
                 "timestamp": _int(params, "timestamp") or self.now()}
        self.meter_events[identifier] = event
        return event

    # --- subscription status a test sets (a renewal that fails or is paid) -------------------------------
    def invoice_event(self, subscription: Params, paid: bool) -> Params:
        invoice = {"id": _id("in_"), "object": "invoice", "customer": subscription["customer"],
                   "subscription": subscription["id"],
                   "parent": {"subscription_details": {"subscription": subscription["id"]}},
                   "status": "paid" if paid else "open", "paid": paid, "attempt_count": 1,
                   "amount_due": 0, "amount_paid": 0, "currency": "usd", "created": self.now(),
                   "hosted_invoice_url": None, "period_end": self.now()}
        self.invoices[invoice["id"]] = invoice
        self.emit("invoice.paid" if paid else "invoice.payment_failed", invoice)
        return invoice

    def overlay(self, obj: Params) -> Params:
        if obj.get("object") == "subscription" and obj.get("id") in self.status_overlay:
            obj["status"] = self.status_overlay[obj["id"]]
        elif obj.get("object") == "subscription" and obj.get("status") == "incomplete" \
                and int(obj.get("trial_end") or 0) > self.now():
            # localstripe leaves a subscription created with a trial `incomplete` (it invoices nothing until the
            # trial's end); Stripe calls it `trialing` until trial_end.
            obj["status"] = "trialing"
        elif obj.get("object") == "list":
            obj["data"] = [self.overlay(o) for o in obj.get("data", [])]
        return obj


def _rewrite_items(params: Params, update: bool) -> Params:
    """`items[n][price]` (Stripe today) to `items[n][plan]` (what localstripe reads): each of our Prices
    is a localstripe Plan with the same id, so this names the same thing. Likewise `proration_behavior`
    (today) to `prorate` (localstripe's older name for it)."""
    behaviour = params.pop("proration_behavior", None) if update else None
    if behaviour is not None:
        params["prorate"] = "false" if behaviour == "none" else "true"
    items = params.get("items")
    if isinstance(items, list):
        params["items"] = [{("plan" if k == "price" else k): v for k, v in item.items()} for item in items]
    return params


def build_app(double: Double) -> Starlette:
    async def params_of(request: Request) -> Params:
        if request.method == "GET" or request.method == "DELETE":
            return decode(request.url.query)
        return decode((await request.body()).decode())

    def handler(fn: Callable[[Request, Params, str], Any]) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            try:
                result = await fn(request, await params_of(request), request.headers.get("authorization", ""))
            except StripeError as exc:
                return exc.response()
            if isinstance(result, Response):
                return result
            return JSONResponse(result)

        async def endpoint(request: Request) -> Response:
            # Stripe's idempotent requests: a POST's Idempotency-Key replays the first (successful) answer;
            # the same key with other parameters is an idempotency_error. Per API key, kept for the process.
            key = request.headers.get("idempotency-key")
            if request.method != "POST" or not key or not request.url.path.startswith("/v1/"):
                return await run(request)
            slot = (request.headers.get("authorization", ""), key)
            fingerprint = hashlib.sha256(request.url.path.encode() + b"\n" + await request.body()).hexdigest()
            seen = double.idempotent.get(slot)
            if seen is not None:
                if seen[0] != fingerprint:
                    return StripeError(400, "Keys for idempotent requests can only be used with the same "
                                            "parameters they were first used with.", None,
                                       "idempotency_key_in_use", kind="idempotency_error").response()
                return Response(seen[2], status_code=seen[1], media_type="application/json",
                                headers={"Idempotent-Replayed": "true", "Idempotency-Key": key})
            resp = await run(request)
            if 200 <= resp.status_code < 300:
                double.idempotent[slot] = (fingerprint, resp.status_code, bytes(resp.body))
            return resp
        return endpoint

    def authed(fn: Callable[[Request, Params, str], Any]) -> Callable[[Request], Any]:
        async def wrapped(request: Request, params: Params, auth: str) -> Any:
            if not auth.startswith(("Bearer sk_", "Basic ")):
                raise StripeError(401, "Invalid API Key provided.")
            params.pop("expand", None) if request.method == "GET" else None
            return await fn(request, params, auth)
        return handler(wrapped)

    async def prices(request: Request, params: Params, auth: str) -> Any:
        if request.method == "POST":
            return await double.create_price(params, auth)
        return double.list_prices(params)

    async def price(request: Request, params: Params, auth: str) -> Any:
        price_id = request.path_params["id"]
        if request.method == "POST":
            return double.update_price(price_id, params)
        return double.get_price(price_id)

    async def sessions(request: Request, params: Params, auth: str) -> Any:
        return await double.create_session(params, auth)

    async def session(request: Request, params: Params, auth: str) -> Any:
        return double.public(double.get_session(request.path_params["id"]))

    async def portal(request: Request, params: Params, auth: str) -> Any:
        return await double.create_portal_session(params, auth)

    async def meters(request: Request, params: Params, auth: str) -> Any:
        return double.create_meter(params) if request.method == "POST" else double.list_meters(params)

    async def meter_events(request: Request, params: Params, auth: str) -> Any:
        return double.create_meter_event(params)

    async def invoice(request: Request, params: Params, auth: str) -> Any:
        invoice_id = request.path_params["id"]
        if invoice_id in double.invoices:
            return double.invoices[invoice_id]
        return await passthrough(request, params, auth)

    async def subscriptions(request: Request, params: Params, auth: str) -> Any:
        if request.method == "POST":
            params = _rewrite_items(params, update="id" in request.path_params)
        path = request.url.path
        return double.overlay(await double.upstream_call(request.method, path, auth, params))

    async def events(request: Request, params: Params, auth: str) -> Any:
        upstream = await double.upstream_call("GET", "/v1/events", auth, {"limit": 100})
        rows = sorted([*upstream.get("data", []), *double.events], key=lambda e: e["created"], reverse=True)
        return {"object": "list", "url": "/v1/events", "has_more": False, "data": rows}

    async def event(request: Request, params: Params, auth: str) -> Any:
        event_id = request.path_params["id"]
        for row in double.events:
            if row["id"] == event_id:
                return row
        return await passthrough(request, params, auth)

    async def passthrough(request: Request, params: Params, auth: str) -> Any:
        body = await request.body()
        resp = await double.http.request(request.method, request.url.path, params=request.url.query or None,
                                         content=body if request.method != "GET" else None,
                                         headers={k: v for k, v in request.headers.items()
                                                  if k in ("authorization", "content-type")})
        return Response(resp.content, status_code=resp.status_code, media_type="application/json")

    # --- the helpers tests and the development walkthrough use --------------------------------------------
    async def complete(request: Request, params: Params, auth: str) -> Any:
        return await double.complete_session(request.path_params["id"], auth,
                                             str(params.get("card", "4242424242424242")))

    async def payment(request: Request, params: Params, auth: str) -> Any:
        sub_id, outcome = request.path_params["id"], request.path_params["outcome"]
        subscription = await double.upstream_call("GET", f"/v1/subscriptions/{sub_id}", auth)
        if outcome == "payment_failed":
            double.status_overlay[sub_id] = "past_due"
            return double.invoice_event(subscription, paid=False)
        if outcome == "payment_succeeded":
            double.status_overlay.pop(sub_id, None)
            return double.invoice_event(subscription, paid=True)
        if outcome == "trial_will_end":
            return double.emit("customer.subscription.trial_will_end", double.overlay(subscription))
        raise StripeError(404, "unknown helper")

    async def reported(request: Request, params: Params, auth: str) -> Any:
        return {"object": "list", "data": list(double.meter_events.values())}

    async def webhook(request: Request, params: Params, auth: str) -> Any:
        check(params, {"url", "secret"}, ("url", "secret"))
        double.webhook = (params["url"], params["secret"])
        # localstripe delivers its own events (subscriptions, invoices) to the same endpoint.
        await double.http.post("/_config/webhooks/forexrisk", content=encode(params),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        return {"url": params["url"]}

    # --- the hosted pages, for a person trying it in development ---------------------------------------------
    async def checkout_page(request: Request) -> Response:
        try:
            s = double.get_session(request.path_params["id"])
        except StripeError as exc:
            return exc.response()
        return HTMLResponse(
            f"<!doctype html><title>Local Checkout</title><h1>Local Checkout (development double)</h1>"
            f"<p>Session {s['id']}: {s['status']}.</p>"
            f"<form method=post><button>Pay with test card 4242</button></form>")

    async def checkout_pay(request: Request) -> Response:
        auth = request.app.state.auth
        try:
            s = await double.complete_session(request.path_params["id"], auth)
        except StripeError as exc:
            return exc.response()
        # Stripe fills the {CHECKOUT_SESSION_ID} template variable of success_url with the session's id.
        url = str(s.get("success_url") or "/").replace("{CHECKOUT_SESSION_ID}", str(s["id"]))
        return RedirectResponse(url, status_code=303)

    async def portal_page(request: Request) -> Response:
        s = double.portal_sessions.get(request.path_params["id"])
        if s is None:
            return HTMLResponse("unknown portal session", status_code=404)
        return HTMLResponse(f"<!doctype html><title>Local Billing Portal</title><h1>Local Billing Portal</h1>"
                            f"<p>Customer {s['customer']}. Change or cancel the plan through the ForexRisk API "
                            f"(README, Billing).</p><a href='{s['return_url'] or '/'}'>Back</a>")

    auth_methods = ["GET", "POST"]
    routes = [
        Route("/v1/prices", authed(prices), methods=auth_methods),
        Route("/v1/prices/{id}", authed(price), methods=auth_methods),
        Route("/v1/checkout/sessions", authed(sessions), methods=["POST"]),
        Route("/v1/checkout/sessions/{id}", authed(session), methods=["GET"]),
        Route("/v1/billing_portal/sessions", authed(portal), methods=["POST"]),
        Route("/v1/billing/meters", authed(meters), methods=auth_methods),
        Route("/v1/billing/meter_events", authed(meter_events), methods=["POST"]),
        Route("/v1/invoices/{id}", authed(invoice), methods=["GET"]),
        Route("/v1/subscriptions", authed(subscriptions), methods=auth_methods),
        Route("/v1/subscriptions/{id}", authed(subscriptions), methods=["GET", "POST", "DELETE"]),
        Route("/v1/events", authed(events), methods=["GET"]),
        Route("/v1/events/{id}", authed(event), methods=["GET"]),
        Route("/_double/checkout/sessions/{id}/complete", authed(complete), methods=["POST"]),
        Route("/_double/subscriptions/{id}/{outcome}", authed(payment), methods=["POST"]),
        Route("/_double/meter_events", authed(reported), methods=["GET"]),
        Route("/_double/webhook", authed(webhook), methods=["POST"]),
        Route("/checkout/{id}", checkout_page, methods=["GET"]),
        Route("/checkout/{id}", checkout_pay, methods=["POST"]),
        Route("/portal/{id}", portal_page, methods=["GET"]),
        Route("/{path:path}", authed(passthrough), methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(routes=routes)
    app.state.auth = "Bearer sk_test_local"
    return app
