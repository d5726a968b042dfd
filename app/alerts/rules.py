"""What each rule measures on the live book (app.alerts.book), and when it is breached and cleared. Pure.

Every rule has a trigger threshold and a clear threshold (default: the same): an "above" rule fires when the
value exceeds the threshold and its alert clears only once the value is back at or below the clear threshold
(a "below" rule, the margin level, the other way round). Between the two, an active alert stays active and
no new one fires: that is the hysteresis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["risk-per-trade", "total-risk", "margin-level", "currency-exposure", "portfolio-var"]
KINDS: tuple[str, ...] = ("risk-per-trade", "total-risk", "margin-level", "currency-exposure", "portfolio-var")
BELOW: frozenset[str] = frozenset({"margin-level"})
UNITS = {"risk-per-trade": "% of equity", "total-risk": "% of equity", "margin-level": "%",
         "currency-exposure": "% of equity", "portfolio-var": "account currency"}


@dataclass(frozen=True, slots=True)
class Rule:
    id: Any
    kind: str
    threshold: float
    clear_threshold: float | None
    confidence: float | None

    @property
    def clears_at(self) -> float:
        return self.threshold if self.clear_threshold is None else self.clear_threshold

    def breached(self, value: float) -> bool:
        return value < self.threshold if self.kind in BELOW else value > self.threshold

    def cleared(self, value: float) -> bool:
        return value >= self.clears_at if self.kind in BELOW else value <= self.clears_at


@dataclass(frozen=True, slots=True)
class Reading:
    """One measured value of a rule on a book: `subject` is the position id or currency it is about ('' for
    the whole account), with the part of the book that shows it."""

    subject: str
    value: float
    evidence: dict[str, Any]


def _account(book: dict[str, Any]) -> dict[str, Any]:
    return {k: book.get(k) for k in ("traderId", "accountCurrency", "balance", "equity", "freeMargin", "asOf")}


def readings(rule: Rule, book: dict[str, Any]) -> list[Reading] | None:
    """The rule's values on this book; None when the book could not say (a part unavailable): then its alerts
    are left as they are, neither fired nor cleared."""
    account = _account(book)
    if rule.kind == "risk-per-trade":
        if book["accountCurrency"] is None:
            return None
        return [Reading(p["positionId"], p["riskPercentOfEquity"], {"account": account, "position": p})
                for p in book["positions"] if p["riskPercentOfEquity"] is not None]
    if rule.kind == "total-risk":
        value = book["totalRiskPercentOfEquity"]
        return None if value is None else [Reading("", value, {
            "account": account, "totalRiskAtStops": book["totalRiskAtStops"],
            "totalRiskComplete": book["totalRiskComplete"], "positions": book["positions"]})]
    if rule.kind == "margin-level":
        level = book["marginLevel"]
        if level is None:  # no margin used: no level to fall
            return [] if book["accountCurrency"] is not None else None
        return [Reading("", level, {"account": account, "margin": book["margin"], "marginSource": book["marginSource"],
                                    "marginLevel": level, "marginCallAt": book.get("marginCallAt")})]
    if rule.kind == "currency-exposure":
        if book["accountCurrency"] is None:
            return None
        return [Reading(cur, x["percentOfEquity"], {"account": account, "currency": cur, "exposure": x})
                for cur, x in book["netExposureByCurrency"].items()
                if cur != book["accountCurrency"] and x["percentOfEquity"] is not None]
    if rule.kind == "portfolio-var":
        if not book["positions"]:
            return [] if book["accountCurrency"] is not None else None
        var = book["var"]
        if var is None:
            return None
        confidence = rule.confidence or 0.99
        figure = next((r for r in var["results"] if abs(r["confidence"] - confidence) < 1e-9), None)
        if figure is None:
            return None
        return [Reading("", figure["var"], {"account": account, "var": figure, "method": var["method"],
                                            "horizonDays": var["horizonDays"], "history": var["history"]})]
    raise ValueError(f"unknown rule kind {rule.kind}")
