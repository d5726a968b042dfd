"""Billing jobs (the jobs contract: `async def name(ctx, ...) -> dict`, idempotent, ctx["services"]).

- `expire_trials`: trials past their end become free (no paid plan); a notice goes out
  `billing_trial_notice_days` before the end and one at the end. Reruns do nothing new.
- `end_grace_periods` (dunning): past-due accounts whose grace period ran out drop to the free tier's limits
  (the subscription stays past_due at Stripe; a later payment restores the tier through the webhook).
- `report_usage`: yesterday's (or a given day's) units charged per subscribed broker to the Stripe
  Meter, one meter event per broker and day with identifier `broker:meter:day` (Stripe deduplicates on it)
  and a row in billing_usage_reports (we never send the same day twice).
- `process_stripe_event`: an event stored and not yet processed, through the webhook route's claim
  (webhooks.handle), so it is applied once however many deliveries and jobs race for it.
Every time-dependent step reads `services.billing.clock`, so tests drive it with their own clock.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import stripe
from arq.cron import cron
from sqlalchemy import select

from app.billing import usage
from app.billing.service import BillingService
from app.models import BillingAccount, BillingUsageReport, StripeEvent


def _billing(ctx: dict[str, Any]) -> BillingService:
    found: BillingService = ctx["services"].billing
    return found


async def expire_trials(ctx: dict[str, Any]) -> dict[str, Any]:
    billing = _billing(ctx)
    now = billing.clock()
    notice_from = now + timedelta(days=billing.settings.billing_trial_notice_days)
    ended: list[str] = []
    noticed: list[str] = []
    async with billing.db.platform() as session:
        rows = (await session.execute(select(BillingAccount).where(
            BillingAccount.status == "trialing", BillingAccount.trial_ends_at <= notice_from)
            .with_for_update(skip_locked=True))).scalars().all()
        for account in rows:
            if account.trial_ends_at is not None and account.trial_ends_at <= now:
                account.status = "free"  # tier stays free; the trial's end is a status and a notice
                account.updated_at = now
                ended.append(str(account.broker_id))
            elif account.trial_notice_sent_at is None:
                account.trial_notice_sent_at = now
                noticed.append(str(account.broker_id))
        await session.commit()
    for broker_id in noticed:
        await billing.notify(uuid.UUID(broker_id), "Your ForexRisk trial ends soon",
                             "Your free trial ends in a few days. Subscribe any time with POST "
                             "/api/v1/billing/checkout to keep higher limits.", "billing.trial_ending_notice")
    for broker_id in ended:
        await billing.notify(uuid.UUID(broker_id), "Your ForexRisk trial has ended",
                             "Your free trial has ended; the broker stays on the free tier. Subscribe with POST "
                             "/api/v1/billing/checkout.", "billing.trial_ended")
    return {"ended": ended, "noticed": noticed}


async def end_grace_periods(ctx: dict[str, Any]) -> dict[str, Any]:
    billing = _billing(ctx)
    now = billing.clock()
    async with billing.db.platform() as session:
        due = (await session.execute(select(BillingAccount.broker_id).where(
            BillingAccount.status == "past_due", BillingAccount.grace_ends_at <= now))).scalars().all()
    downgraded: list[str] = []
    for broker_id in due:
        if await billing.reapply(broker_id, source="dunning"):
            downgraded.append(str(broker_id))
    return {"downgraded": downgraded}


async def report_usage(ctx: dict[str, Any], day: str | None = None) -> dict[str, Any]:
    billing = _billing(ctx)
    gateway = billing.stripe()
    when = date.fromisoformat(day) if day else (billing.clock() - timedelta(days=1)).date()
    event_name = billing.settings.billing_meter_event_name
    reported: dict[str, int] = {}
    async with billing.db.platform() as session:
        accounts = {a.broker_id: a for a in (await session.execute(select(BillingAccount).where(
            BillingAccount.stripe_customer_id.is_not(None),
            BillingAccount.status.in_(("active", "past_due"))))).scalars().all()}
        done = set((await session.execute(select(BillingUsageReport.broker_id)
                                           .where(BillingUsageReport.day == when))).scalars().all())
    units = await usage.daily_units(billing.db, [b for b in accounts if b not in done], when)
    for broker_id, account in accounts.items():
        count = units.get(broker_id, 0)
        if broker_id in done or count == 0:
            continue
        identifier = f"{broker_id}:{event_name}:{when.isoformat()}"
        timestamp = int(datetime.combine(when, time(12), UTC).timestamp())
        try:
            await gateway.v1.billing.meter_events.create_async(params={
                "event_name": event_name, "identifier": identifier, "timestamp": timestamp,
                "payload": {"stripe_customer_id": account.stripe_customer_id, "value": str(count)}})
        except stripe.InvalidRequestError as exc:
            if exc.code != "resource_already_exists":  # sent before, our row lost: Stripe has it already
                raise
        async with billing.db.platform() as session:
            session.add(BillingUsageReport(broker_id=broker_id, day=when, units=count, identifier=identifier,
                                           reported_at=billing.clock()))
            await session.commit()
        reported[str(broker_id)] = count
    return {"day": when.isoformat(), "reported": reported, "source": usage.SOURCE}


async def process_stripe_event(ctx: dict[str, Any], event_id: str) -> dict[str, Any]:
    """An event stored and not yet processed, applied once (the same claim as the webhook route)."""
    from app.billing.webhooks import EventRef, handle

    billing = _billing(ctx)
    async with billing.db.platform() as session:
        row = await session.get(StripeEvent, event_id)
    if row is None:
        return {"event": event_id, "outcome": "unknown event"}
    done = await handle(billing, EventRef(id=row.id, type=row.type, created=row.created, object_type=row.object_type,
                                          object_id=row.object_id))
    return {"event": event_id, "outcome": done.get("outcome", "duplicate")}


TASKS: list[Callable[..., Any]] = [expire_trials, end_grace_periods, report_usage, process_stripe_event]
# Trials and grace periods hourly; yesterday's usage at 00:30 UTC (the day is complete in Postgres). One run per
# planned time however many workers (arq's job id per cron run).
CRON = [cron(expire_trials, name="billing_expire_trials", minute=5, max_tries=3),
        cron(end_grace_periods, name="billing_end_grace_periods", minute=10, max_tries=3),
        cron(report_usage, name="billing_report_usage", hour=0, minute=30, max_tries=5, keep_result=86_400)]
