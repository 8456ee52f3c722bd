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

A check by name alone leaves a gap: the HTTP client resolves the name again when it
connects, and a DNS server that answers a public address to the check and 127.0.0.1 to the
connection (DNS rebinding) gets past it. So the clients open their sockets with
:func:`guarded_connect` instead, which resolves once, checks *every* address and connects only
to a checked one (the shards downloader through ``http.client`` connection subclasses, the
live crawler through :mod:`pipeline.crawl.guarded_http`'s ``requests`` session).
:func:`check_url` before a request still gives the early, clear refusal of bad schemes and
private names; :func:`guarded_connect` is what makes the refusal hold at connect time. Pass
the same ``resolver`` to both (tests inject one to simulate rebinding).
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
SocketOption = tuple[int, int, int | bytes]

DEFAULT_SOCKET_OPTIONS: tuple[SocketOption, ...] = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)

ALLOWED_SCHEMES = ("http", "https")


class BlockedURLError(WitError):
    """The URL may not be fetched; ``reason`` is a short machine-readable tag
    (``bad_scheme``, ``no_host``, ``dns_error``, ``private_address``)."""

    def __init__(self, url: str, reason: str, detail: str = ""):
        super().__init__(f"{url}: blocked ({reason}{': ' + detail if detail else ''})")
        self.url, self.reason, self.detail = url, reason, detail


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6), via the system resolver, in its
    order of preference (the order :func:`guarded_connect` tries them)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


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
    if allow_private and _literal_address(host) is None:
        return  # nothing to check: every address is allowed
    resolve_checked(host, port, allow_private, allowed_networks, resolver, label=url)


def resolve_checked(host: str, port: int, allow_private: bool = False,
                    allowed_networks: Iterable[str | IPNetwork] = (),
                    resolver: Resolver = system_resolver, label: str | None = None) -> list[str]:
    """The addresses of ``host`` (a name or an IP literal, brackets allowed), each one checked
    with :func:`check_address`; raises :class:`BlockedURLError` (``dns_error``,
    ``private_address``) naming ``label`` (default ``host:port``) when there is none or any
    one of them is blocked."""
    name = host.strip("[]")
    target = label or f"{host}:{port}"
    addresses = _literal_address(name)
    if addresses is None:
        try:
            addresses = list(dict.fromkeys(resolver(name, port)))
        except (OSError, UnicodeError) as exc:
            raise BlockedURLError(target, "dns_error", str(exc)) from exc
        if not addresses:
            raise BlockedURLError(target, "dns_error", "no address")
    nets = parse_networks(allowed_networks)
    for address in addresses:
        check_address(address, allow_private, nets, url=target)
    return addresses


def guarded_connect(host: str, port: int, timeout: float | None,
                    allow_private: bool = False,
                    allowed_networks: Iterable[str | IPNetwork] = (),
                    resolver: Resolver = system_resolver,
                    socket_options: Iterable[SocketOption] = DEFAULT_SOCKET_OPTIONS
                    ) -> socket.socket:
    """A TCP socket connected to ``host:port`` through the guard: resolve ``host`` once, raise
    :class:`BlockedURLError` if any address is blocked, then connect to the checked addresses
    in order until one answers (the last ``OSError`` when none does). The caller keeps
    ``host`` for the Host header and TLS (SNI, certificate name); only the socket's peer is
    pinned, so a second DNS answer can never change where it goes."""
    addresses = resolve_checked(host, port, allow_private, allowed_networks, resolver)
    options = tuple(socket_options)
    last: OSError | None = None
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            for level, option, value in options:
                sock.setsockopt(level, option, value)
            sock.settimeout(timeout)
            sock.connect((address, port))
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"cannot connect to {host}:{port}")
