"""All ORM tables in one package (no import cycles). The schema itself lives in migrations/."""

from app.models.billing import BillingAccount, BillingUsageReport, StripeEvent
from app.models.exchange import ExchangeJti
from app.models.idempotency import IdempotencyRecord
from app.models.tables import (
    ApiKey,
    AuditLog,
    Base,
    Broker,
    Calculation,
    ComplianceReport,
    RefreshToken,
    SsoConnection,
    SsoState,
    User,
)
from app.models.usage import UsageEvent

__all__ = ["ApiKey", "AuditLog", "Base", "BillingAccount", "BillingUsageReport", "Broker", "Calculation",
           "ComplianceReport", "ExchangeJti", "IdempotencyRecord", "RefreshToken", "SsoConnection", "SsoState",
           "StripeEvent", "UsageEvent", "User"]
