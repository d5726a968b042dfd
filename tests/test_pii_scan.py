"""The run-wide PII scan (tests/pii_scan.py) finds what it must and leaves what the masking wrote."""

from __future__ import annotations

from app.logging import mask_text
from tests.pii_scan import find_pii

CANARIES = [
    "login failed for canary.person+gdpr@example.org",
    "client 203.0.113.77:5555",
    "key fxr_live_sk_abcdefghijkl_" + "A" * 38,
    "refresh fxr_rt_" + "b" * 40,
    "widget fxw_" + "c" * 30,
    "secret whsec_" + "d" * 32,
    "token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
    "Authorization: Bearer abcdefghijklmnop",
]


def test_every_canary_is_found_and_none_once_masked() -> None:
    for line in CANARIES:
        assert find_pii(line), line
        assert find_pii(mask_text(line)) == [], mask_text(line)


def test_what_is_not_pii_is_not_reported() -> None:
    for line in ("2026-12-03T07:05:46.954121Z", "v1.2.3.4.5", "999.1.1.1", "127.0.0.1:8000", "203.0.113.0",
                 "request 9f86d081884c", "fxr_live_sk_abcdefghijkl_[redacted]", "Bearer [redacted]", "[email]"):
        assert find_pii(line) == [], line
