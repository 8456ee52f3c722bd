"""SSRF guard shared by every stage that fetches URLs (the crawler here, image downloads in
``pipeline/shards``).

A URL is allowed only when its scheme is http(s) and *every* address its host resolves to is
public. Private (RFC 1918, ULA), loopback, link-local (incl. the 169.254.169.254 cloud
metadata service), multicast, reserved, unspecified and shared (100.64/10) addresses are
blocked unless the caller passes ``allow_private=True`` or lists the networks it trusts in
``allowed_networks`` (tests on loopback use ``["127.0.0.0/8"]``).

Use it before the first request **and on every redirect hop** (fetch with
``allow_redirects=False`` and follow ``Location`` yourself, calling :func:`check_url` each
time)::

    from pipeline.crawl.netguard import BlockedURLError, check_url
    try:
        check_url(url, allow_private=False)
    except BlockedURLError as exc:
        ...  # count exc.reason, skip the URL

Known limit: the check resolves the name, and the HTTP client resolves it again when it
connects, so a DNS server that answers differently within milliseconds (DNS rebinding) is not
covered; for that, use :func:`check_address` on the connected peer as a second check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from pipeline.errors import WitError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]

ALLOWED_SCHEMES = ("http", "https")


class BlockedURLError(WitError):
    """The URL may not be fetched; ``reason`` is a short machine-readable tag
    (``bad_scheme``, ``no_host``, ``dns_error``, ``private_address``)."""

    def __init__(self, url: str, reason: str, detail: str = ""):
        super().__init__(f"{url}: blocked ({reason}{': ' + detail if detail else ''})")
        self.url, self.reason, self.detail = url, reason, detail


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), via the system resolver."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return sorted({str(info[4][0]) for info in infos})


def parse_networks(networks: Iterable[str | IPNetwork]) -> tuple[IPNetwork, ...]:
    """``["127.0.0.0/8", "::1"]`` -> network objects (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(n, strict=False) if isinstance(n, str) else n
                 for n in networks)


def is_public(address: IPAddress) -> bool:
    """True for a globally routable unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local
                or address.is_multicast or address.is_reserved or address.is_unspecified
                or not address.is_global)


def check_address(address: str, allow_private: bool = False,
                  allowed_networks: Iterable[str | IPNetwork] = (), url: str = "") -> None:
    """Raise :class:`BlockedURLError` unless ``address`` (an IP string) may be contacted."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if allow_private or is_public(ip):
        return
    if any(ip in net for net in parse_networks(allowed_networks) if net.version == ip.version):
        return
    raise BlockedURLError(url or address, "private_address", str(ip))


def _literal_address(host: str) -> list[str] | None:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return None


def check_url(url: str, allow_private: bool = False,
              allowed_networks: Iterable[str | IPNetwork] = (),
              resolver: Resolver = system_resolver) -> None:
    """Raise :class:`BlockedURLError` unless ``url`` is http(s) and its host resolves only to
    addresses that may be contacted (see the module docstring). Returns None when allowed."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise BlockedURLError(url, "bad_scheme", parts.scheme or "none")
    host = parts.hostname
    if not host:
        raise BlockedURLError(url, "no_host")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise BlockedURLError(url, "bad_port", str(exc)) from exc
    addresses = _literal_address(host)
    if addresses is None:
        if allow_private:
            return  # nothing to check: every address is allowed
        try:
            addresses = list(resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise BlockedURLError(url, "dns_error", str(exc)) from exc
        if not addresses:
            raise BlockedURLError(url, "dns_error", "no address")
    nets = parse_networks(allowed_networks)
    for address in addresses:
        check_address(address, allow_private, nets, url=url)
