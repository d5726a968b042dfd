"""A pytest plugin (tests/conftest.py): every log line the whole test run captured is scanned for PII, and any
finding fails the run (README "Observability", issue 20).

What is scanned: everything pytest captured for each test phase (stdout, stderr and log records: the app's
structlog lines, the libraries' stdlib records), as reported to the controlling process (with xdist too). The
detectors are written independently of app/logging.py's masking, so a form the masking misses is still found:
emails, full IPv4 addresses (a masked one ends in .0), our secret keys, refresh and widget tokens, webhook
secrets, JWTs and bearer credentials. Findings are listed at the end and the exit status is 1.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

import pytest

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
SECRETS = re.compile(r"fxr_(?:live|test)_sk_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}"  # a secret API key, whole
                     r"|fxr_rt_[A-Za-z0-9_\-]{16,}|fxw_[A-Za-z0-9_\-]{16,}|whsec_[A-Za-z0-9+/=_\-]{16,}"
                     r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+"
                     r"|(?i:bearer)\s+(?!\[redacted\])[A-Za-z0-9._~+/=\-]{12,}")
# Test data that is no one's: the documentation ranges are still addresses, so they are not excepted.
NOT_PERSONAL_IPS = {"0.0.0.0", "255.255.255.255"}


def find_pii(text: str) -> list[str]:
    """Every PII-looking string of `text` (unmasked)."""
    found = [m.group(0) for m in EMAIL.finditer(text)]
    found += [m.group(0) for m in SECRETS.finditer(text)]
    for match in IPV4.finditer(text):
        value = match.group(0)
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            continue  # 999.1.1.1 is a version, not an address
        if value not in NOT_PERSONAL_IPS and not address.is_loopback and value.split(".")[-1] != "0":
            found.append(value)
    return found


@dataclass
class Scan:
    phases: int = 0
    chars: int = 0
    findings: list[tuple[str, str, str]] = field(default_factory=list)  # (test, section, what)


SCAN = Scan()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "teardown":  # a test's sections accumulate over its phases: the teardown report has all
        return
    for section, content in report.sections:
        if not section.startswith("Captured"):
            continue
        SCAN.phases += 1
        SCAN.chars += len(content)
        for what in find_pii(content):
            SCAN.findings.append((report.nodeid, section, what))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if SCAN.findings:
        terminalreporter.section("PII in captured logs", sep="=", red=True)
        for nodeid, section, what in SCAN.findings[:200]:
            terminalreporter.line(f"{nodeid} [{section}]: {what}")
    elif SCAN.phases:
        terminalreporter.line(f"PII scan: {SCAN.chars:,} characters of captured output from {SCAN.phases} test "
                              "phases, no email, address, key or token found")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if SCAN.findings and not hasattr(session.config, "workerinput"):  # the controller decides the run's status
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
