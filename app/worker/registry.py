"""The task modules the worker runs. Each exposes `TASKS: list[Callable]` (async def name(ctx, *args) -> dict,
idempotent, `ctx["services"]` the app's Services) and optionally `CRON: list[arq.cron.CronJob]`.
A new domain's tasks.py is added to MODULES here."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from arq.cron import CronJob

from app.alerts import tasks as alert_tasks
from app.analytics import tasks as analytics_tasks
from app.integrations.market_data.history import tasks as history_tasks
from app.integrations.webhooks import tasks as webhook_tasks
from app.reports import tasks as report_tasks
from app.retention import tasks as retention_tasks

MODULES: tuple[ModuleType, ...] = (history_tasks, analytics_tasks, retention_tasks, report_tasks, webhook_tasks,
                                   alert_tasks)


def task_functions() -> list[Any]:
    return [fn for module in MODULES for fn in module.TASKS]


def cron_jobs() -> list[CronJob]:
    return [job for module in MODULES for job in getattr(module, "CRON", [])]
