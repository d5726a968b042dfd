"""Job: bring the stored daily history up to date. Registered by the arq worker (app/worker); idempotent:
a second run the same day fetches nothing (the store already covers the range)."""

from __future__ import annotations

from typing import Any

from arq.cron import cron

from app.integrations.market_data.history.service import HistoryService


def _service(ctx: dict[str, Any]) -> HistoryService:
    found = ctx.get("history")
    if found is None and ctx.get("services") is not None:
        found = ctx["services"].history
    if not isinstance(found, HistoryService):
        raise RuntimeError("refresh_history needs ctx['history'] or ctx['services'] with a HistoryService")
    return found


async def refresh_history(ctx: dict[str, Any], symbols: list[str] | None = None) -> dict[str, Any]:
    """Refresh `symbols` (default: Settings.history_symbols) over Settings.history_default_days trading days.
    Returns per symbol the source, stored bar count, ranges fetched this run and last day; and the failures
    with the providers tried. Market data is not tenant data: no broker_id is involved."""
    service = _service(ctx)
    settings = ctx.get("settings") or getattr(ctx.get("services"), "settings", None)
    wanted = symbols if symbols is not None else list(getattr(settings, "history_symbols", DEFAULT_SYMBOLS))
    canonical = [s.replace("/", "").replace("_", "").upper() for s in wanted]
    return await service.refresh(canonical, service.default_days)


DEFAULT_SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "USDCHF", "AUDUSD", "USDCAD", "NZDUSD", "EURGBP", "EURJPY",
                   "GBPJPY")


TASKS = [refresh_history]
# Daily at 22:30 UTC: after the New York close (21:00 or 22:00 UTC with daylight saving), when the vendors'
# daily bar of the day is complete. One run per day however many workers: arq gives each planned run one
# job id (`refresh_history_daily:<time>`). Its result is kept a day, readable by the platform operator.
CRON = [cron(refresh_history, name="refresh_history_daily", hour=22, minute=30, max_tries=3, keep_result=86_400,
             timeout=1800)]
