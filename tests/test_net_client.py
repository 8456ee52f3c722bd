"""The shared GET (:class:`pipeline.core.net.HttpClient` and the downloader's
:class:`Fetcher`) against real loopback servers: errors carry the HTTP status as a field and
a deterministic text, retry/backoff honours Retry-After up to its cap, keep-alive reuses one
connection per host, bodies are capped (also after gzip), userinfo is refused and the
redirect SSRF tricks are refused at every hop."""

from __future__ import annotations

import gzip
import socket
import threading
from collections import Counter

import pytest
from helpers.shards import TRUSTED, Server, send

from pipeline.core.net import ClientConfig, FetchConfig, Fetcher, FetchError, HttpClient


def client(**kw: object) -> HttpClient:
    base: dict = dict(timeout=5.0, retries=1, backoff_base=0.0, max_backoff=2.0,
                      allowed_networks=(TRUSTED,))
    base.update(kw)
    return HttpClient(ClientConfig(**base))


@pytest.fixture()
def server():
    s = Server()
    yield s
    s.close()


@pytest.mark.integration
def test_http_errors_carry_the_status_as_a_field(server) -> None:
    server.routes["/gone"] = lambda h: send(h, 404, b"nope", "text/plain")
    server.routes["/down"] = lambda h: send(h, 503, b"later", "text/plain")
    with pytest.raises(FetchError) as info:
        client().get(server.url("/gone"))
    e = info.value
    assert (e.status, e.reason, e.http_status, e.retryable, e.retries) == \
        ("failed_to_download", "http_404", 404, False, 0)
    assert str(e) == "HTTP 404" and server.hits["/gone"] == 1  # 4xx: not retried
    with pytest.raises(FetchError) as info:
        client().get(server.url("/down"))
    assert (info.value.http_status, info.value.retryable, info.value.retries) == (503, True, 1)
    assert server.hits["/down"] == 2


@pytest.mark.integration
def test_retry_after_is_honoured_and_capped(server) -> None:
    tries: Counter[str] = Counter()

    def busy(h) -> None:
        tries["busy"] += 1
        if tries["busy"] == 1:
            send(h, 429, b"slow down", "text/plain", {"Retry-After": "1"})
        else:
            send(h, 200, b"done")

    server.routes["/busy"] = busy
    server.routes["/never"] = lambda h: send(h, 429, b"x", "text/plain", {"Retry-After": "3600"})
    got = client().get(server.url("/busy"))
    assert got.body == b"done" and got.retries == 1 and server.hits["/busy"] == 2
    with pytest.raises(FetchError) as info:
        client(retries=5).get(server.url("/never"))
    assert info.value.http_status == 429 and server.hits["/never"] == 1  # no hour-long sleep
    assert str(info.value) == "HTTP 429 (Retry-After 3600s exceeds the 2s cap)"


def test_error_texts_are_deterministic() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now

    def half_body(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)

    listener = socket.create_server(("127.0.0.1", 0))
    half_port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _ = listener.accept()
            with conn:
                half_body(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        texts = []
        for url in (f"http://127.0.0.1:{port}/", f"http://127.0.0.1:{half_port}/"):
            for _ in range(2):
                with pytest.raises(FetchError) as info:
                    client(retries=0, allowed_networks=("127.0.0.1/32",)).get(url)
                texts.append((info.value.reason, str(info.value)))
        assert texts[0] == texts[1] == ("connection_error", "connection failed: Connection refused")
        assert texts[2] == texts[3] and texts[2][0] == "connection_error"
        assert all("0x" not in t and "object at" not in t for _, t in texts)
    finally:
        listener.close()


@pytest.mark.integration
def test_keep_alive_reuses_one_connection_per_host(server) -> None:
    peers: set[int] = set()

    def image(h) -> None:
        peers.add(h.client_address[1])
        send(h, 200, b"image bytes")

    server.routes["/a.jpg"] = image
    fetcher = Fetcher(FetchConfig(respect_robots_txt=False, allowed_networks=(TRUSTED,)))
    for _ in range(5):
        assert fetcher.fetch(server.url("/a.jpg")) == b"image bytes"
    assert server.hits["/a.jpg"] == 5 and len(peers) == 1


@pytest.mark.integration
def test_size_caps_before_and_after_decoding(server) -> None:
    server.routes["/big"] = b"x" * 5000
    bomb = gzip.compress(b"\0" * 2_000_000)
    server.routes["/bomb"] = lambda h: send(h, 200, bomb, "text/html",
                                             {"Content-Encoding": "gzip"})
    with pytest.raises(FetchError) as info:
        client(max_bytes=1000).get(server.url("/big"))
    assert info.value.reason == "too_large" and info.value.status == "failed_to_download"
    assert client(max_bytes=1000).get(server.url("/big"), max_bytes=1000,
                                      truncate=True).body == b"x" * 1000
    assert len(bomb) < 10_000
    with pytest.raises(FetchError, match="exceeds 100000 bytes"):  # decoded bytes count
        client(max_bytes=100_000, decode_content=True).get(server.url("/bomb"))
    # images are kept as served: the same bytes, not inflated
    assert client(max_bytes=100_000).get(server.url("/bomb")).body == bomb


@pytest.mark.integration
def test_userinfo_is_refused_with_its_own_status(server) -> None:
    server.routes["/a.jpg"] = b"image"
    server.routes["/to-creds"] = lambda h: send(
        h, 302, b"", headers={"Location": server.url("/a.jpg").replace("//", "//u:pw@")})
    fetcher = Fetcher(FetchConfig(allowed_networks=(TRUSTED,), retries=0))
    for url in (server.url("/a.jpg").replace("//", "//user:secret@"), server.url("/to-creds")):
        with pytest.raises(FetchError) as info:
            fetcher.fetch(url)
        assert info.value.status == "filtered:blocked_userinfo"
        assert "secret" not in str(info.value) and "pw@" not in str(info.value)
    assert server.hits["/a.jpg"] == 0


REDIRECT_TRICKS = [
    "http://127.0.0.1:{port}/", "http://localhost:{port}/", "http://[::1]:{port}/",
    "http://[::ffff:127.0.0.1]:{port}/", "http://0x7f000001:{port}/",
    "http://2130706433:{port}/", "http://127.1:{port}/", "http://0177.0.0.1:{port}/",
    "http://0.0.0.0:{port}/", "http://169.254.169.254/latest/meta-data/",
    "//127.0.0.1:{port}/", "http://u@127.0.0.1:{port}/", "file:///etc/passwd",
    "gopher://127.0.0.1:{port}/_GET", "ftp://127.0.0.1:{port}/",
]


@pytest.mark.parametrize("target", REDIRECT_TRICKS)
@pytest.mark.integration
def test_redirect_ssrf_tricks_are_refused(server, target: str) -> None:
    victim = Server("127.0.0.1")
    victim.routes["/"] = b"secret"
    victim.routes["/latest/meta-data/"] = b"secret"
    try:
        server.routes["/jump"] = lambda h: send(
            h, 302, b"", headers={"Location": target.format(port=victim.port)})
        fetcher = Fetcher(FetchConfig(allowed_networks=(TRUSTED,), retries=0))
        with pytest.raises(FetchError) as info:
            fetcher.fetch(server.url("/jump"))
        assert info.value.status.startswith("filtered:blocked_"), str(info.value)
        assert sum(victim.hits.values()) == 0
    finally:
        victim.close()
