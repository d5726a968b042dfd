"""structlog with contextvars (request_id is bound by the request middleware), and PII masking.

Every log line, ours (structlog) and the libraries' (stdlib logging: uvicorn's access log, granian,
SQLAlchemy), has emails, IP addresses, API keys and tokens masked before it is written:
- emails become `[email]` (also percent-encoded ones, as they appear in an access log's query string);
- IPv4 addresses are truncated to their /24 (`203.0.113.0`), IPv6 to their /48 (`2001:db8:1234::`):
  enough to tell networks apart, not people (loopback, 127.x, is left as it is: no person's address);
- API keys keep their public part (`fxr_live_sk_<key id>_[redacted]`: the key id is listed in the
  admin API anyway), refresh and widget tokens, JWTs and `Bearer …` credentials are redacted;
- values under names such as `password`, `secret`, `token`, `authorization` are redacted whole.
structlog gets a processor (after exceptions are formatted, so tracebacks are masked too); stdlib
logging gets a record factory, which masks every record of every logger however handlers are set up
later (uvicorn configures its own before it imports the app).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, MutableMapping
from typing import Any

import structlog

from app.observability.tracing import add_trace_ids

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+(?:@|%40)[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# An API key keeps its public part (prefix and key id); any other token of ours only its prefix.
TOKEN = re.compile(r"\b(?:(fxr_(?:live|test)_(?:sk|pk)_[0-9A-Za-z]{12}_)[0-9A-Za-z]{38}\b"
                   r"|(fxr_rt_|fxr_|fxw_|whsec_)[A-Za-z0-9_\-]{8,})")
JWT = re.compile(r"\beyJ[A-Za-z0-9_\-]*\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]*")
BEARER = re.compile(r"(?i)\b(bearer|basic)(?:\s+|%20|\+)[\w.~+/=\-]+")
IPV4 = re.compile(r"(?<![\w.])(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?![\w.]*\d)")
# A candidate only: ipaddress decides (a clock time such as 12:34:56 is no address and stays).
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{0,4}|\d{1,3}(?:\.\d{1,3}){3})(?![\w:]|\.\d)")
# A value is redacted whole when its name ends in one of these (letters only: `access_token`,
# `accessToken`, `X-API-Key`); `api_key_id` and `token_type` are not secrets and stay.
SECRET_SUFFIXES = ("password", "passwd", "secret", "secretkey", "token", "authorization", "apikey", "totpcode",
                   "recoverycode", "cookie", "signingkey")
REDACTED = "[redacted]"


def secret_name(name: str) -> bool:
    return re.sub(r"[^a-z]", "", name.lower()).endswith(SECRET_SUFFIXES)


def mask_ip(value: str) -> str:
    """An IP address truncated to its network (/24, /48); anything else unchanged."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return value
    if address.is_loopback:
        return value
    if address.version == 4:
        return str(ipaddress.ip_network(f"{address}/24", strict=False).network_address)
    if address.ipv4_mapped is not None:
        return mask_ip(str(address.ipv4_mapped))
    return str(ipaddress.ip_network(f"{address}/48", strict=False).network_address)


def _ipv4(match: re.Match[str]) -> str:
    if match.group(1) == "127":  # loopback is nobody's address: `Uvicorn running on http://127.0.0.1:8000` stays
        return match.group(0)
    if all(int(part) <= 255 for part in match.groups()):
        return ".".join(match.groups()[:3]) + ".0"
    return match.group(0)


def _token(match: re.Match[str]) -> str:
    return (match.group(1) or match.group(2)) + REDACTED


def _ipv6(match: re.Match[str]) -> str:
    return mask_ip(match.group(0))


def mask_text(text: str) -> str:
    """Every email, address, key and token in a piece of text, masked."""
    if not text:
        return text
    text = BEARER.sub(r"\1 " + REDACTED, text)  # first: the whole credential, whatever its form
    text = TOKEN.sub(_token, text)
    text = JWT.sub("[jwt]", text)
    text = EMAIL.sub("[email]", text)
    if text.count(":") >= 2:  # first: an IPv4-mapped IPv6 address is masked as the IPv4 it holds
        text = IPV6.sub(_ipv6, text)
    if "." in text:
        text = IPV4.sub(_ipv4, text)
    return text


def mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: REDACTED if isinstance(k, str) and secret_name(k) and v else mask_value(v)
                for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(mask_value(v) for v in value)
    if isinstance(value, bytes):
        return mask_text(value.decode("utf-8", "replace"))
    return value


def mask_pii(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: masks every value of the event (see the module docstring)."""
    for key, value in event_dict.items():
        if key != "event" and secret_name(key) and value:
            event_dict[key] = REDACTED
        elif isinstance(value, str | dict | list | tuple | bytes):
            event_dict[key] = mask_value(value)
        elif isinstance(value, BaseException | int | float | bool) or value is None:
            continue
        else:  # uuids, dates, paths: their text
            event_dict[key] = mask_text(str(value))
    return event_dict


_ORIGINAL_FACTORY: Callable[..., logging.LogRecord] | None = None


def _masking_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
    assert _ORIGINAL_FACTORY is not None
    record = _ORIGINAL_FACTORY(*args, **kwargs)
    if isinstance(record.msg, str):
        record.msg = mask_text(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(mask_value(a) if isinstance(a, str | bytes | dict | list | tuple) else a
                            for a in record.args)
    elif isinstance(record.args, dict):
        record.args = mask_value(record.args)
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters use exc_text when it is set: the traceback is masked once, here.
        record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
    return record


def install_stdlib_masking() -> None:
    """Mask every stdlib log record (uvicorn's access log included); idempotent."""
    global _ORIGINAL_FACTORY
    if _ORIGINAL_FACTORY is None:
        _ORIGINAL_FACTORY = logging.getLogRecordFactory()
        logging.setLogRecordFactory(_masking_factory)


def configure_logging(level: str = "info", json: bool = False) -> None:
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    install_stdlib_masking()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_ids,  # trace_id, span_id while a span is current (tracing on: app/observability/tracing.py)
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            mask_pii,  # last before rendering: sees the formatted traceback too
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        cache_logger_on_first_use=True,
    )
