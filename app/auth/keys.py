"""API key format, checksum and hashing (pure functions).

    fxr_live_sk_<key id: 12>_<secret: 32><checksum: 6>

- recognisable prefix (`fxr_`, mode, `sk` secret / `pk` publishable) so scanners and people spot leaks;
- underscores keep a double-click selecting the whole key;
- a CRC32 checksum (base62, 6 chars) over everything before it rejects typos and random look-alikes
  offline, before any database or cache lookup (GitHub's token format does the same);
- the key id is the lookup handle; the secret is stored only as HMAC-SHA256 with a server-side pepper,
  so a leaked database alone cannot be used to authenticate.
"""

from __future__ import annotations

import hmac
import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Literal

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KeyKind = Literal["secret", "publishable"]
KeyMode = Literal["live", "test"]
KIND_CODE: dict[str, KeyKind] = {"sk": "secret", "pk": "publishable"}
CODE_OF_KIND = {v: k for k, v in KIND_CODE.items()}
KEY_RE = re.compile(r"^fxr_(live|test)_(sk|pk)_([0-9A-Za-z]{12})_([0-9A-Za-z]{32})([0-9A-Za-z]{6})$")


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(reversed(out))


def _random(width: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(width))


def checksum(body: str) -> str:
    return _b62(zlib.crc32(body.encode()), 6)


@dataclass(frozen=True)
class ParsedKey:
    mode: KeyMode
    kind: KeyKind
    key_id: str
    secret: str

    @property
    def prefix(self) -> str:
        return f"fxr_{self.mode}_{CODE_OF_KIND[self.kind]}_{self.key_id}"


def generate(kind: KeyKind, mode: KeyMode = "live") -> tuple[str, ParsedKey]:
    parsed = ParsedKey(mode=mode, kind=kind, key_id=_random(12), secret=_random(32))
    body = f"{parsed.prefix}_{parsed.secret}"
    return body + checksum(body), parsed


def parse(key: str) -> ParsedKey | None:
    """The key's parts, or None when it is not a well-formed key with a valid checksum."""
    m = KEY_RE.match(key)
    if m is None:
        return None
    mode, code, key_id, secret, check = m.groups()
    body = key[: -6]
    if not hmac.compare_digest(checksum(body), check):
        return None
    return ParsedKey(mode=mode, kind=KIND_CODE[code], key_id=key_id, secret=secret)  # type: ignore[arg-type]


def hash_secret(pepper: bytes, secret: str) -> bytes:
    return hmac.digest(pepper, secret.encode(), "sha256")  # one-shot C path: no HMAC object per request


def looks_like_key(value: str) -> bool:
    return value.startswith("fxr_")
