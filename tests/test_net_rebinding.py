"""DNS rebinding and the connect-time guard: the network layer (here through the live
crawler) connects only to addresses :func:`guarded_connect` checked, with a resolver the test
controls (no DNS server needed) and real servers on loopback; https keeps SNI and certificate
checks by name; proxies from the environment are not used."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.core.net import BlockedURLError, guarded_connect
from pipeline.crawl.live_crawler import CrawlerOptions, crawl_site

ALLOWED = "127.0.0.1"  # the only address the tests' guard trusts
VICTIM = "127.0.0.2"  # loopback, not trusted: what a rebinding DNS answer points to
UA = "witbot/1.0 (test)"


def page(body: str) -> bytes:
    return f"<!doctype html><html><head><title>t</title></head><body>{body}</body></html>".encode()


class Site:
    """A two-page site on ``host:port`` recording requests, Host headers and TLS SNI names."""

    def __init__(self, host: str = ALLOWED, port: int = 0, context: ssl.SSLContext | None = None):
        self.hits: Counter[str] = Counter()
        self.hosts: set[str] = set()
        self.sni: list[str | None] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with outer.lock:
                    outer.hits[self.path] += 1
                    outer.hosts.add(self.headers.get("Host", ""))
                routes = {"/": page('<img src="/a.jpg" alt="first photo"><a href="/b.html">b</a>'),
                          "/b.html": page('<img src="/b.jpg" alt="second photo">')}
                body = routes.get(self.path)
                if self.path == "/robots.txt":
                    self.reply(200, "text/plain", b"User-agent: *\nAllow: /\n")
                elif body is None:
                    self.reply(404, "text/plain", b"not found")
                else:
                    self.reply(200, "text/html; charset=utf-8", body)

            def reply(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        if context is not None:
            def remember(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
                self.sni.append(name)
            context.sni_callback = remember  # type: ignore[assignment]
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RecordingResolver:
    """A DNS server under the test's control: ``answer(host, n)`` gives the addresses for
    the ``n``-th lookup (0-based); every answer is recorded."""

    def __init__(self, answer: Callable[[str, int], list[str]]):
        self.answer = answer
        self.lookups: list[tuple[str, list[str]]] = []
        self.lock = threading.Lock()

    def __call__(self, host: str, port: int) -> list[str]:
        with self.lock:
            addresses = self.answer(host, len(self.lookups))
            self.lookups.append((host, addresses))
        return addresses


def options(resolver: RecordingResolver, **kw: object) -> CrawlerOptions:
    base: dict = dict(user_agent=UA, delay=0.0, concurrency=1, timeout=5.0, max_depth=1,
                      allowed_networks=(f"{ALLOWED}/32",), resolver=resolver)
    base.update(kw)
    return CrawlerOptions(**base)


@pytest.fixture()
def site() -> Iterator[Site]:
    server = Site()
    yield server
    server.close()


def test_guarded_connect_checks_every_answer_before_connecting() -> None:
    listener = socket.create_server((ALLOWED, 0))
    listener.setblocking(False)
    port = listener.getsockname()[1]
    trusted = [f"{ALLOWED}/32"]
    try:
        cases = {"victim.test": [ALLOWED],  # loopback, not trusted here
                 "mixed.test": [ALLOWED, "10.0.0.1"]}  # one blocked answer blocks all
        for host, answer in cases.items():
            with pytest.raises(BlockedURLError) as info:
                guarded_connect(host, port, 2.0, allowed_networks=trusted if host == "mixed.test"
                                else (), resolver=lambda h, p, a=answer: a)
            assert info.value.reason == "private_address"
        with pytest.raises(BlockingIOError):
            listener.accept()  # no connection was made
        for answer in ([], OSError("no such host")):
            def resolver(h: str, p: int, a: object = answer) -> list[str]:
                if isinstance(a, OSError):
                    raise a
                return list(a)  # type: ignore[call-overload]
            with pytest.raises(BlockedURLError, match="dns_error"):
                guarded_connect("nowhere.test", port, 2.0, resolver=resolver)
        with guarded_connect("ok.test", port, 2.0, allowed_networks=trusted,
                             resolver=lambda h, p: [ALLOWED]) as sock:
            assert sock.getpeername() == (ALLOWED, port)
            listener.setblocking(True)
            accepted, _ = listener.accept()
            accepted.close()
    finally:
        listener.close()


@pytest.mark.integration
def test_crawler_refuses_dns_rebinding_at_connect_time() -> None:
    # the victim listens on the same port as the site, on an address the guard blocks
    for _ in range(20):
        victim = Site(VICTIM)
        try:
            site = Site(ALLOWED, victim.port)
            break
        except OSError:
            victim.close()
    else:
        pytest.fail("no port free on both loopback addresses")
    try:
        # a rebinding DNS server with a short TTL: the first answer (robots.txt's connect) is
        # the trusted address, the next one (the page's connect) the victim
        resolver = RecordingResolver(lambda host, n: [ALLOWED] if n < 1 else [VICTIM])
        counts: Counter[str] = Counter()
        found = list(crawl_site([f"http://rebind.test:{site.port}/"], options(resolver), counts))
        assert found == [] and counts["pages"] == 0
        assert counts["skipped:blocked_private_address"] == 1
        assert [a for _, a in resolver.lookups] == [[ALLOWED], [VICTIM]]
        assert site.hits == Counter({"/robots.txt": 1})  # the page was never requested
        assert sum(victim.hits.values()) == 0  # and nothing reached the victim
    finally:
        site.close()
        victim.close()


@pytest.mark.integration
def test_crawler_connects_to_checked_address_and_keeps_the_name(site: Site) -> None:
    resolver = RecordingResolver(lambda host, n: [ALLOWED])
    counts: Counter[str] = Counter()
    base = f"http://site.test:{site.port}"
    found = {(img, texts[0]) for _, img, texts in crawl_site([base + "/"], options(resolver),
                                                              counts)}
    assert found == {(base + "/a.jpg", "first photo"), (base + "/b.jpg", "second photo")}
    assert counts["pages"] == 2
    assert site.hosts == {f"site.test:{site.port}"}  # Host header carries the name
    # a name is resolved only where a socket is opened (the server closes each connection)
    assert len(resolver.lookups) == counts["requests"] == 3


def make_cert(tmp_path: Path, name: str) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command missing")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return key, cert


@pytest.mark.integration
def test_https_keeps_sni_and_certificate_check_by_name(tmp_path: Path, monkeypatch) -> None:
    key, cert = make_cert(tmp_path, "site.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Site(context=context)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trust only the test's certificate
    try:
        resolver = RecordingResolver(lambda host, n: [ALLOWED])
        counts: Counter[str] = Counter()
        base = f"https://site.test:{server.port}"
        found = {img for _, img, _ in crawl_site([base + "/"], options(resolver), counts)}
        assert found == {base + "/a.jpg", base + "/b.jpg"}
        assert set(server.sni) == {"site.test"}  # SNI is the name, not the address
        # same server and address under a name the certificate does not cover: refused
        hits = sum(server.hits.values())
        counts = Counter()
        wrong = f"https://wrong.test:{server.port}/"
        assert list(crawl_site([wrong], options(resolver), counts)) == []
        # robots.txt unreachable (TLS error): disallow all (RFC 9309)
        assert counts["pages"] == 0 and counts["skipped:robots_unavailable"] == 1
        assert sum(server.hits.values()) == hits  # no request got past the TLS handshake
    finally:
        server.close()


@pytest.mark.integration
def test_proxies_do_not_bypass_the_guard(site: Site, monkeypatch) -> None:
    proxy = Site()  # would see every request if the environment's proxy were used
    try:
        for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(var, f"http://{ALLOWED}:{proxy.port}")
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        counts: Counter[str] = Counter()
        resolver = RecordingResolver(lambda host, n: [ALLOWED])
        list(crawl_site([f"http://site.test:{site.port}/"], options(resolver), counts))
        assert counts["pages"] == 2 and site.hits["/"] == 1
        assert sum(proxy.hits.values()) == 0
    finally:
        proxy.close()
