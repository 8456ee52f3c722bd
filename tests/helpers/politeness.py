"""Loopback hosts that watch how they are treated (no tests here): each
:class:`CountingHost` listens on its own 127.0.0.x address (a distinct host to the
downloader; any 127.0.0.0/8 address works on Linux without setup) and records the peak number
of requests in flight, the peak number of open connections, every request's arrival time and
path, and answers from ``routes``."""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

# a path -> (status, body, headers)
Route = Callable[[str], tuple[int, bytes, dict[str, str]]]


def jpeg(size: int = 256, seed: int = 0) -> bytes:
    """A small JPEG (noise, so it is not tiny)."""
    import numpy as np

    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


class CountingHost:
    """An HTTP/1.1 server on ``host`` (keep-alive unless ``close``), each answer after
    ``delay`` seconds. ``route(path)`` gives the answer (default: ``image`` for every path but
    ``/robots.txt``, which is ``robots`` or a 404).

    In flight counts a request from its arrival until just before its last bytes are
    written: a client cannot have finished reading it -- and so cannot have released its
    own count of it -- any earlier, so this never overstates what the client allowed."""

    def __init__(self, host: str, image: bytes = b"", delay: float = 0.0,
                 robots: str | None = None, close: bool = False, route: Route | None = None):
        self.image, self.delay, self.robots, self.close_each = image, delay, robots, close
        self.route = route
        self.lock = threading.Lock()
        self.in_flight = self.peak_in_flight = 0
        self.open = self.peak_open = 0
        self.times: list[tuple[float, str]] = []  # (arrival, path)
        self.hits: Counter[str] = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def setup(self) -> None:
                super().setup()
                with outer.lock:
                    outer.open += 1
                    outer.peak_open = max(outer.peak_open, outer.open)

            def finish(self) -> None:
                with outer.lock:
                    outer.open -= 1
                super().finish()

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                path = self.path.split("?", 1)[0]
                with outer.lock:
                    outer.in_flight += 1
                    outer.peak_in_flight = max(outer.peak_in_flight, outer.in_flight)
                    outer.times.append((time.monotonic(), path))
                    outer.hits[path] += 1
                try:
                    status, body, headers = outer.answer(path)
                    headers = dict(headers)
                    if outer.delay:
                        time.sleep(outer.delay)
                    head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}",
                            "Content-Type: " + headers.pop("Content-Type", "image/jpeg")]
                    head += [f"{k}: {v}" for k, v in headers.items()]
                    if outer.close_each:
                        head.append("Connection: close")
                        self.close_connection = True
                    data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
                finally:
                    with outer.lock:
                        outer.in_flight -= 1
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        if self.route is not None:
            return self.route(path)
        if path == "/robots.txt":
            if self.robots is None:
                return 404, b"", {"Content-Type": "text/plain"}
            return 200, self.robots.encode(), {"Content-Type": "text/plain"}
        return 200, self.image, {}

    def url(self, path: str, name: str | None = None) -> str:
        return f"http://{name or self.host}:{self.port}{path}"

    def starts(self, skip_robots: bool = False) -> list[float]:
        with self.lock:
            return sorted(t for t, p in self.times if not (skip_robots and p == "/robots.txt"))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def most_in_window(times: list[float], window: float = 1.0) -> int:
    """The most request arrivals within any ``window`` seconds (closed interval)."""
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best
