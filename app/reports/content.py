"""What a compliance report says: every calculation (inputs, results, flags) and every audit entry of the
period (logins, configuration and key changes, who did what), streamed into the CSV while the counts and
the rows the PDF shows are collected.

CSV: one row per record, `record` = calculation or audit, UTF-8 with a BOM (spreadsheets then read the
encoding right), inputs, results and details as JSON text. A cell that starts with = + - @ (or a tab or
carriage return) is prefixed with a quote, so a spreadsheet never runs it as a formula (OWASP CSV
injection); nothing a client sent becomes a formula in a compliance officer's spreadsheet.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import orjson

from app.models import AuditLog, Calculation

COLUMNS = ["record", "at", "actor_type", "actor_id", "action", "target_type", "target_id", "ip", "request_id",
           "calculation_id", "user_id", "api_key_id", "flags", "input", "result", "details"]
LOGINS = {"auth.login": "succeeded", "auth.sso_login": "succeeded", "auth.exchange": "succeeded",
          "auth.login_failed": "failed", "auth.sso_failed": "failed", "auth.exchange_failed": "failed",
          "auth.mfa_failed": "failed", "auth.login_locked": "locked", "auth.exchange_replay": "refused",
          "auth.refresh_reuse_detected": "refused", "auth.logout": "logout"}
CHANGE_PREFIXES = {"broker.": "configuration", "sso.": "configuration", "api_key.": "keys", "user.": "users",
                   "mfa.": "users"}


def safe_cell(value: str) -> str:
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if value is not None else ""


def flag_codes(result: Any) -> list[str]:
    """The flags of a stored result: its own, and a batch's items' (results[].result.flags)."""
    codes: list[str] = []
    if isinstance(result, dict):
        codes += [f["code"] for f in result.get("flags") or [] if isinstance(f, dict) and "code" in f]
        for item in result.get("results") or []:
            if isinstance(item, dict):
                codes += flag_codes(item.get("result"))
    return codes


def change_kind(action: str) -> str | None:
    return next((kind for prefix, kind in CHANGE_PREFIXES.items() if action.startswith(prefix)), None)


@dataclass
class Collected:
    """Counts for the summary, and the first `limit` rows of each PDF section."""

    limit: int
    calculations: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    flagged: int = 0
    by_flag: Counter[str] = field(default_factory=Counter)
    audit: int = 0
    logins: Counter[str] = field(default_factory=Counter)
    changes: Counter[str] = field(default_factory=Counter)
    by_actor: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (type, id, action)
    calc_rows: list[tuple[datetime, str, str, str, str]] = field(default_factory=list)
    change_rows: list[tuple[datetime, str, str, str, str]] = field(default_factory=list)
    login_rows: list[tuple[datetime, str, str, str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "calculations": {"total": self.calculations, "byKind": dict(sorted(self.by_kind.items())),
                             "flagged": self.flagged, "byFlag": dict(sorted(self.by_flag.items()))},
            "auditEntries": self.audit,
            "logins": dict(sorted(self.logins.items())),
            "changes": dict(sorted(self.changes.items())),
            "actors": len({(t, i) for t, i, _ in self.by_actor}),
        }


class ReportWriter:
    def __init__(self, out: IO[str], limit: int) -> None:
        self.csv = csv.writer(out)
        self.csv.writerow(COLUMNS)
        self.seen = Collected(limit)

    def _row(self, values: dict[str, Any]) -> None:
        self.csv.writerow([safe_cell(str(values.get(c) if values.get(c) is not None else "")) for c in COLUMNS])

    def calculation(self, row: Calculation) -> None:
        codes = flag_codes(row.result)
        seen = self.seen
        seen.calculations += 1
        seen.by_kind[row.kind] += 1
        if codes:
            seen.flagged += 1
            seen.by_flag.update(codes)
        who = f"user {row.user_id}" if row.user_id else f"key {row.api_key_id}" if row.api_key_id else ""
        if len(seen.calc_rows) < seen.limit:
            seen.calc_rows.append((row.created_at, str(row.id), row.kind, who, " ".join(codes)))
        self._row({"record": "calculation", "at": row.created_at.isoformat(), "action": row.kind,
                   "calculation_id": row.id, "user_id": row.user_id, "api_key_id": row.api_key_id,
                   "actor_type": "user" if row.user_id else "api_key" if row.api_key_id else None,
                   "actor_id": row.user_id or row.api_key_id, "flags": ";".join(codes),
                   "input": _json(row.input), "result": _json(row.result)})

    def audit(self, row: AuditLog) -> None:
        seen = self.seen
        seen.audit += 1
        actor = f"{row.actor_type} {row.actor_id or ''}".strip()
        seen.by_actor[(row.actor_type, row.actor_id or "", row.action)] += 1
        target = f"{row.target_type or ''} {row.target_id or ''}".strip()
        if row.action in LOGINS:
            seen.logins[LOGINS[row.action]] += 1
            if len(seen.login_rows) < seen.limit:
                seen.login_rows.append((row.created_at, row.action, actor, row.ip or "", row.request_id or ""))
        kind = change_kind(row.action)
        if kind is not None:
            seen.changes[kind] += 1
            if len(seen.change_rows) < seen.limit:
                seen.change_rows.append((row.created_at, row.action, actor, target, _json(row.details)))
        self._row({"record": "audit", "at": row.created_at.isoformat(), "actor_type": row.actor_type,
                   "actor_id": row.actor_id, "action": row.action, "target_type": row.target_type,
                   "target_id": row.target_id, "ip": row.ip, "request_id": row.request_id,
                   "details": _json(row.details)})
