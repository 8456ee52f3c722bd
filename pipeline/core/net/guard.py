"""The SSRF guard: which URLs and addresses may be contacted.

A URL passes :func:`check_url` when its scheme is http(s), it has a host and a valid port, it
carries **no userinfo** (``http://user:pass@host/`` is refused, reason ``userinfo``: such
URLs are a classic trick -- ``http://trusted.example@evil.example/`` -- and sending or
resolving a stranger's credentials helps nobody; refusing keeps the row visible with its own
status where stripping would fetch something else silently) and, for an IP literal, the
address may be contacted. A host *name* is resolved only where the socket is opened:
:func:`guarded_connect` resolves it once, checks *every* address and connects only to a
checked one, so a DNS answer that changes between a check and the connection (DNS rebinding)
cannot reach a blocked address.

Blocked: private (RFC 1918, ULA), loopback, link-local (incl. the 169.254.169.254 cloud
metadata service), multicast, reserved, unspecified and shared (100.64/10) addresses, unless
the caller passes ``allow_private=True`` or lists the networks it trusts in
``allowed_networks`` (tests on loopback use ``["127.0.0.2/32"]``).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from pipeline.core.errors import WitError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
SocketOption = tuple[int, int, int | bytes]

DEFAULT_SOCKET_OPTIONS: tuple[SocketOption, ...] = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
ALLOWED_SCHEMES = ("http", "https")


def redact(url: str) -> str:
    """``url`` with any userinfo replaced by ``***`` (error texts never carry credentials)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, tail = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}://***@{authority.rsplit('@', 1)[1]}{slash}{tail}"


class BlockedURLError(WitError):
    """The URL may not be fetched; ``reason`` is a short machine-readable tag
    (``bad_url``, ``bad_scheme``, ``no_host``, ``bad_port``, ``userinfo``, ``dns_error``,
    ``private_address``)."""

    def __init__(self, url: str, reason: str, detail: str = ""):
        url = redact(url)
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
              resolver: Resolver | None = None) -> None:
    """Raise :class:`BlockedURLError` unless ``url`` may be fetched (see the module
    docstring). A host name is checked here only when a ``resolver`` is given; the fetch
    itself checks it where it connects. Returns None when allowed."""
    try:  # urlsplit refuses e.g. "http://[::1/" and NFKC tricks in the host
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:
        raise BlockedURLError(url, "bad_url", str(exc)) from exc
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        raise BlockedURLError(url, "bad_scheme", parts.scheme or "none")
    if "@" in parts.netloc:
        raise BlockedURLError(url, "userinfo")  # never resolved, never sent
    if not host:
        raise BlockedURLError(url, "no_host")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        raise BlockedURLError(url, "bad_port", str(exc)) from exc
    if _literal_address(host.strip("[]")) is None and (allow_private or resolver is None):
        return
    resolve_checked(host, port, allow_private, allowed_networks, resolver or system_resolver,
                    label=url)


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
            raise BlockedURLError(target, "dns_error", _os_error_text(exc)) from exc
        if not addresses:
            raise BlockedURLError(target, "dns_error", "no address")
    nets = parse_networks(allowed_networks)
    for address in addresses:
        check_address(address, allow_private, nets, url=target)
    return addresses


def _os_error_text(exc: BaseException) -> str:
    """A deterministic text for a resolver error (no object reprs)."""
    strerror = getattr(exc, "strerror", None)
    return strerror or type(exc).__name__


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
