"""Compressed bodies for the few responses that are worth it: widget assets, the frame document, the
instrument catalogue. Never a middleware in front of everything: the calculation API's JSON is small,
latency-bound and benchmarked, and compressing it per request would cost more than it saves.

Static bodies are compressed once (`Precompressed.of`, when the file is read or the catalogue built);
a frame document, which carries a fresh session each time, is gzipped per request above `MIN_SIZE`
(a few kilobytes at level 6: tens of microseconds). Brotli is offered when the client asks for it
(browsers do over HTTPS only); gzip otherwise; identity when neither is accepted.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import brotli

MIN_SIZE = 1024  # below one packet, compression saves nothing a client would notice
VARY = "Accept-Encoding"


def accepted(header: str | None) -> frozenset[str]:
    """The codings the client accepts (RFC 9110 12.5.3): listed without `q=0`; `*` stands for any."""
    out: set[str] = set()
    for part in (header or "").lower().split(","):
        name, _, params = part.strip().partition(";")
        q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        try:
            weight = float(q)
        except ValueError:
            weight = 0.0
        if name and weight > 0:
            out.add(name)
    if "*" in out:
        out |= {"br", "gzip"}
    return frozenset(out)


@dataclass(frozen=True)
class Precompressed:
    body: bytes
    gzip: bytes | None
    br: bytes | None

    @classmethod
    def of(cls, body: bytes) -> Precompressed:
        if len(body) < MIN_SIZE:
            return cls(body, None, None)
        return cls(body, gzip.compress(body, 9, mtime=0), brotli.compress(body, quality=11))

    def pick(self, accept_encoding: str | None) -> tuple[bytes, str | None]:
        """The bytes to send and their Content-Encoding (None: as is)."""
        codings = accepted(accept_encoding)
        if "br" in codings and self.br is not None:
            return self.br, "br"
        if "gzip" in codings and self.gzip is not None:
            return self.gzip, "gzip"
        return self.body, None


def compress_once(body: bytes, accept_encoding: str | None) -> tuple[bytes, str | None]:
    """A body sent once (a frame document): gzip at level 6 when accepted and large enough."""
    if len(body) < MIN_SIZE or "gzip" not in accepted(accept_encoding):
        return body, None
    return gzip.compress(body, 6, mtime=0), "gzip"
