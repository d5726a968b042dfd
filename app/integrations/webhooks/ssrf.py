"""Where a webhook may be delivered: public addresses only, checked when the endpoint is registered and again
on every connection.

The transport resolves the host itself (the event loop's getaddrinfo), refuses the connection when any address
is private, loopback, link-local, reserved, multicast, unspecified or a cloud metadata address, and connects
to the vetted IP while the request keeps its Host header and TLS keeps the name (SNI and certificate check).
So a name that resolves to a public address at registration and to 127.0.0.1 later (DNS rebinding) is
refused at delivery: nothing resolves the name a second time between the check and the connect.

Hand-written rather than an egress proxy (smokescreen) because the deployment has none; the rules are the
short list below, each address class from the standard library's `ipaddress`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from app.errors import InvalidField

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
# Metadata services answer on ordinary-looking addresses in some clouds (AWS IPv6, Alibaba, Oracle's 169.254
# is link-local already); named so that no future `ipaddress` change can let them through.
METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "fd00:ec2::254", "100.100.100.200", "192.0.0.192"))


class TargetRefused(Exception):
    """The URL or one of its addresses may not receive webhooks (a delivery failure, never retried sooner)."""


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    https_only: bool  # production
    allow_loopback: bool  # development setting: deliver to a receiver on this machine

    def check_scheme(self, scheme: str) -> None:
        if scheme == "https" or (scheme == "http" and not self.https_only):
            return
        raise TargetRefused("only https URLs receive webhooks" if self.https_only else "the URL must be http(s)")

    def check_address(self, raw: str) -> None:
        ip: IPAddress = ipaddress.ip_address(raw.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") says nothing
        if isinstance(ip, ipaddress.IPv6Address):  # IPv4 in IPv6 clothes is judged as IPv4
            inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
            if inner is not None:
                ip = inner
        if ip.is_loopback and self.allow_loopback:
            return
        if ip in METADATA or ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved \
                or ip.is_multicast or ip.is_unspecified or not ip.is_global:
            raise TargetRefused(f"{ip} is not a public address")


async def resolve(host: str, port: int) -> list[str]:
    """Every address the name has (IPv4 and IPv6), by the event loop's getaddrinfo."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


async def vetted_addresses(policy: TargetPolicy, url: httpx.URL, resolver: Resolver) -> list[str]:
    policy.check_scheme(url.scheme)
    if not url.host:
        raise TargetRefused("the URL has no host")
    try:
        addresses = await resolver(url.host, _port(url))
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"{url.host} does not resolve ({exc})") from None
    if not addresses:
        raise TargetRefused(f"{url.host} does not resolve")
    for address in addresses:  # all of them: a client may connect to any
        policy.check_address(address)
    return addresses


async def check_registration(policy: TargetPolicy, raw_url: str, resolver: Resolver = resolve) -> str:
    """The URL as stored, or a 422 on `url` saying why it may not receive webhooks."""
    try:
        url = httpx.URL(raw_url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidField("url", f"not a URL: {exc}", "invalid_url") from None
    if url.userinfo:
        raise InvalidField("url", "credentials in the URL are not accepted (use the signature)", "invalid_url")
    if url.fragment:
        raise InvalidField("url", "a URL fragment is never sent; leave it out", "invalid_url")
    try:
        await vetted_addresses(policy, url, resolver)
    except TargetRefused as exc:
        raise InvalidField("url", str(exc), "target_refused") from None
    return str(url)


class PinnedTransport(httpx.AsyncBaseTransport):
    """Connects to the vetted address of each request's host; TLS still checks the certificate for the name."""

    def __init__(self, policy: TargetPolicy, resolver: Resolver = resolve,
                 inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.resolver = resolver
        self.inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        addresses = await vetted_addresses(self.policy, request.url, self.resolver)
        request.url = request.url.copy_with(host=addresses[0])  # the Host header was set from the name already
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host}
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
