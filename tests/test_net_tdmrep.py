"""TDMRep (pipeline.core.net.tdmrep) and the downloader's opt-out checks before the body.

The parsers and the pattern matcher on their own, then the real Fetcher against loopback
origins (127.0.0.3-.6): a server that sends a response's headers and then holds its body
until the client either hangs up (nothing of the body sent) or waits for it -- so "the
image was refused before its body was read" is what the server saw, not what we assume.
"""

from __future__ import annotations

import json
import socket
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from pipeline.core.net import FetchConfig, Fetcher, FetchError
from pipeline.core.net.tdmrep import (
    header_reserves,
    parse_tdmrep,
    pattern_matches,
    reservation_value,
)
from schemas import status as st

# ------------------------------------------------------------------ parsing and matching


@pytest.mark.parametrize("pattern,path,expected", [
    ("/", "/anything", True),
    ("/dir/", "/dir/a.jpg", True),
    ("/dir/", "/dir", False),
    ("/dir", "/directory/x", True),  # a prefix, as robots.txt
    ("/a.jpg$", "/a.jpg", True),
    ("/a.jpg$", "/a.jpg?x=1", False),
    ("/*.png$", "/img/x.png", True),
    ("/*.png$", "/img/x.png.jpg", False),
    ("/*.png", "/img/x.png.jpg", True),
    ("/b/*/c", "/b/x/y/c/d", True),
    ("/b/*/c", "/b/c", False),
    ("*", "/", True),
    ("/Dir/", "/dir/x", False),  # case sensitive
    ("/" + "*a" * 200 + "$", "/" + "a" * 5000 + "b", False),  # no exponential backtracking
])
def test_patterns_match_like_robots_txt(pattern: str, path: str, expected: bool) -> None:
    assert pattern_matches(pattern, path) is expected


def test_reservation_values_and_header() -> None:
    assert [reservation_value(v) for v in (1, "1", True, " 1 ", 0, "0", False)] == \
        [True, True, True, True, False, False, False]
    assert [reservation_value(v) for v in (2, "yes", None, [1], 1.0, "")] == [None] * 6
    assert header_reserves({"TDM-Reservation": "1"})
    assert not header_reserves({"tdm-reservation": "0"})
    assert not header_reserves({"tdm-reservation": "maybe"})  # a protocol error: unset


def test_tdmrep_json_rules_first_match_wins_and_bad_rules_are_skipped() -> None:
    body = json.dumps([
        {"location": "/open/", "tdm-reservation": 0},
        {"location": "/", "tdm-reservation": 1, "tdm-policy": "https://x.example/p.json"},
        {"location": "/never-reached/", "tdm-reservation": 0},
        {"location": "/bad/", "tdm-reservation": "yes"},  # protocol error: skipped
        {"tdm-reservation": 1},  # no location: skipped
        "not an object",
    ]).encode()
    rules = parse_tdmrep("http://h", body)
    assert rules.policy == "rules" and len(rules.rules) == 3 and rules.skipped == 3
    assert rules.match("http://h/open/a.jpg").reserved is False
    assert rules.match("http://h/photos/a.jpg").reserved is True
    assert rules.match("http://h/%7Eme/a.jpg").location == "/"
    with pytest.raises(FetchError) as caught:
        rules.check("http://h/photos/a.jpg")
    assert caught.value.status == st.filtered(st.TDM_RESERVATION)
    assert "rule 2" in str(caught.value)
    rules.check("http://h/open/a.jpg")  # not reserved: no error


@pytest.mark.parametrize("body", [b"{not json", b'{"location": "/"}', b"[" * 100_000, b"\xff\xfe"])
def test_malformed_tdmrep_json_reserves_nothing(body: bytes) -> None:
    rules = parse_tdmrep("http://h", body)
    assert rules.policy == "malformed" and rules.match("http://h/x") is None


def test_percent_escapes_of_unreserved_characters_compare_equal() -> None:
    rules = parse_tdmrep("http://h", json.dumps([{"location": "/%7euser/", "tdm-reservation": 1}]).encode())
    assert rules.match("http://h/~user/a.jpg") is not None
    assert rules.match("http://h/%7Euser/a.jpg") is not None


json_values = hs.recursive(
    hs.none() | hs.booleans() | hs.integers() | hs.floats() | hs.text(max_size=20),
    lambda inner: hs.lists(inner, max_size=5) | hs.dictionaries(
        hs.sampled_from(["location", "tdm-reservation", "tdm-policy", "x"]), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(hs.one_of(hs.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())),
       hs.text(max_size=40))
def test_any_tdmrep_body_and_url_path_give_a_decision(body: bytes, path: str) -> None:
    """Hostile files: any bytes, any JSON shape -- rules or "malformed", never an exception;
    matching any URL path against them decides or raises only FetchError."""
    rules = parse_tdmrep("http://h", body)
    assert rules.policy in ("rules", "malformed")
    try:
        rules.check("http://h/" + path)
    except FetchError as exc:
        assert exc.reason == "tdm_reservation"


@settings(max_examples=300, deadline=None)
@given(hs.text(alphabet="/*$ab%7E", max_size=12), hs.text(alphabet="/ab~%7E", max_size=12))
def test_pattern_matching_agrees_with_a_regular_expression(pattern: str, path: str) -> None:
    import re

    anchored = pattern.endswith("$")
    body = pattern[:-1] if anchored else pattern
    regex = "".join(".*" if c == "*" else re.escape(c) for c in body) + ("\\Z" if anchored else "")
    assert pattern_matches(pattern, path) is bool(re.match(regex, path, re.DOTALL))


# ------------------------------------------------------------------ a real Fetcher on loopback


class HoldingServer:
    """One request per connection. A route is (status, headers, body). After the headers it
    waits until the client hangs up (then no body byte is sent) or, if the client keeps the
    connection open for ``hold`` seconds (it is waiting for the body), sends the body.
    ``body_sent[path]`` counts the body bytes sent, ``hits[path]`` the requests."""

    def __init__(self, host: str, routes: dict[str, tuple[int, dict[str, str], bytes]],
                 hold: float = 10.0):
        self.routes, self.hold = routes, hold
        self.hits: Counter[str] = Counter()
        self.body_sent: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.sock = socket.create_server((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            request = conn.recv(65536)
            parts = request.split(b" ", 2)
            path = parts[1].decode() if len(parts) > 2 else "/"
            with self.lock:
                self.hits[path] += 1
            code, headers, body = self.routes.get(path, (404, {}, b""))
            head = [f"HTTP/1.1 {code} X", f"Content-Length: {len(body)}", "Connection: close",
                    *(f"{k}: {v}" for k, v in headers.items())]
            try:
                conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
                if code == 200 and path.startswith("/img/"):
                    conn.settimeout(self.hold)
                    try:
                        if conn.recv(1) == b"":  # the client hung up after the headers
                            return
                    except TimeoutError:
                        pass  # it is waiting for the body
                conn.sendall(body)
                with self.lock:
                    self.body_sent[path] += len(body)
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()


IMAGE = b"\xff\xd8" + bytes(range(256)) * 400 + b"\xff\xd9"  # bytes are all the Fetcher needs
TDMREP = json.dumps([{"location": "/img/open/", "tdm-reservation": 0},
                     {"location": "/img/reserved/", "tdm-reservation": 1},
                     {"location": "/*.png$", "tdm-reservation": 1}]).encode()


def fetcher(*networks: str, **config) -> Fetcher:
    return Fetcher(FetchConfig(allowed_networks=networks, retries=0, timeout=3.0, **config))


@pytest.mark.integration
def test_refused_images_send_no_body_byte_and_tdmrep_json_is_read_once() -> None:
    routes = {
        "/.well-known/tdmrep.json": (200, {"Content-Type": "application/json"}, TDMREP),
        "/img/header.jpg": (200, {"tdm-reservation": "1"}, IMAGE),
        "/img/noai.jpg": (200, {"X-Robots-Tag": "noai"}, IMAGE),
        "/img/reserved/a.jpg": (200, {}, IMAGE),
        "/img/open/b.png": (200, {}, IMAGE),  # /img/open/ matches first: not reserved
        "/img/x.png": (200, {}, IMAGE),
        "/img/zero.jpg": (200, {"tdm-reservation": "0"}, IMAGE),
        "/img/plain.jpg": (200, {}, IMAGE),
    }
    server = HoldingServer("127.0.0.3", routes, hold=2.0)
    try:
        f = fetcher("127.0.0.3/32")
        outcomes: dict[str, str] = {}

        def get(path: str) -> None:
            try:
                outcomes[path] = "success" if f.fetch(server.url(path)) == IMAGE else "wrong body"
            except FetchError as exc:
                outcomes[path] = exc.status

        paths = [p for p in routes if p.startswith("/img/")]
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(get, paths * 2))
        assert outcomes == {
            "/img/header.jpg": "filtered:tdm_reservation",
            "/img/noai.jpg": "filtered:x_robots_tag",
            "/img/reserved/a.jpg": "filtered:tdm_reservation",
            "/img/open/b.png": "success",
            "/img/x.png": "filtered:tdm_reservation",
            "/img/zero.jpg": "success",
            "/img/plain.jpg": "success",
        }
        # refused on their headers: asked for, no body byte sent
        for path in ("/img/header.jpg", "/img/noai.jpg"):
            assert server.hits[path] == 2 and server.body_sent[path] == 0, path
        # refused by tdmrep.json: never even asked for
        assert server.hits["/img/reserved/a.jpg"] == server.hits["/img/x.png"] == 0
        # the server really holds bodies for clients that wait: the kept images got theirs
        assert server.body_sent["/img/plain.jpg"] == 2 * len(IMAGE)
        assert server.hits["/.well-known/tdmrep.json"] == 1  # cached per origin, 8 threads
        assert f.counts()["tdmrep"] == {"rules": 1, "none": 0, "malformed": 0,
                                        "unavailable": 0, "blocked": 0}
        # --ignore-tdmrep: both TDMRep signals ignored, X-Robots-Tag still honoured
        ignoring = fetcher("127.0.0.3/32", respect_tdmrep=False)
        assert ignoring.fetch(server.url("/img/header.jpg")) == IMAGE
        assert ignoring.fetch(server.url("/img/reserved/a.jpg")) == IMAGE
        with pytest.raises(FetchError):
            ignoring.fetch(server.url("/img/noai.jpg"))
    finally:
        server.close()


@pytest.mark.integration
@pytest.mark.parametrize("host,tdmrep,status", [
    ("127.0.0.4", (404, {}, b"not found"), "success"),
    ("127.0.0.4", (403, {}, b"no"), "success"),
    ("127.0.0.5", (500, {}, b"oops"), "failed_to_download"),
    ("127.0.0.5", (503, {}, b"busy"), "failed_to_download"),
    ("127.0.0.6", (200, {}, b"{ not json"), "success"),
    ("127.0.0.6", (200, {}, b'{"location": "/", "tdm-reservation": 1}'), "success"),
])
def test_tdmrep_failure_policy_matches_robots_txt(host: str, tdmrep: tuple, status: str) -> None:
    """4xx and malformed: no reservation; 5xx: nothing of the origin fetched for now
    (failed_to_download, retried later), as robots.txt's 5xx."""
    server = HoldingServer(host, {"/.well-known/tdmrep.json": tdmrep,
                                  "/img/a.jpg": (200, {}, IMAGE)}, hold=2.0)
    try:
        f = fetcher(f"{host}/32")
        try:
            got = "success" if f.fetch(server.url("/img/a.jpg")) == IMAGE else "wrong body"
        except FetchError as exc:
            got = exc.status
            assert exc.reason == "tdmrep_unavailable"
        assert got == status
        outcome = {404: "none", 403: "none", 500: "unavailable", 503: "unavailable"}.get(
            tdmrep[0], "malformed")
        assert f.counts()["tdmrep"][outcome] == 1
        assert server.hits["/img/a.jpg"] == (1 if status == "success" else 0)
    finally:
        server.close()


@pytest.mark.integration
def test_unreachable_tdmrep_json_is_unavailable() -> None:
    """A tdmrep.json that does not answer within the deadline: the origin's images are not
    fetched now (failed_to_download, tdmrep_unavailable)."""
    silent = socket.create_server(("127.0.0.5", 0))  # accepts, never answers
    try:
        port = silent.getsockname()[1]
        f = Fetcher(FetchConfig(allowed_networks=("127.0.0.5/32",), retries=0, timeout=0.5,
                                respect_robots_txt=False))
        with pytest.raises(FetchError) as caught:
            f.fetch(f"http://127.0.0.5:{port}/img/a.jpg")
        assert caught.value.reason == "tdmrep_unavailable"
        assert caught.value.status == st.FAILED_TO_DOWNLOAD
    finally:
        silent.close()


def test_tdmrep_cache_is_bounded() -> None:
    from pipeline.core.net.tdmrep import TdmRepCache

    class Offline(TdmRepCache):  # the file of each origin, without a network
        def _fetch(self, origin: str):
            return parse_tdmrep(origin, json.dumps(
                [{"location": f"/{i}/", "tdm-reservation": 1} for i in range(50)]).encode())

    cache = Offline(None, max_origins=5, max_bytes=1 << 30)  # type: ignore[arg-type]
    for i in range(20):
        cache.rules(f"http://h{i}.example/x")
    assert len(cache._entries) == 5 and cache.evictions == 15
    small = Offline(None, max_origins=1000, max_bytes=30_000)  # type: ignore[arg-type]
    for i in range(20):
        small.rules(f"http://h{i}.example/x")
    assert small.bytes <= 30_000 and small.evictions > 0
