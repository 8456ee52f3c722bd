"""Loopback servers for the network-layer tests (no tests here): a raw socket server whose
handler writes whatever bytes it likes, at its own pace (slow drips, broken responses), and
records what it managed to send. ``/robots.txt`` and ``/.well-known/tdmrep.json`` are always
404s (no rules). And
``loopback_server``: an ``http.server`` handler served on 127.0.0.1 in a thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Handler = Callable[[socket.socket, "RawServer", str], None]
WELL_KNOWN = ("/robots.txt", "/.well-known/tdmrep.json")  # per-origin files the clients ask for


class RawServer:
    """Accepts connections on ``host`` and runs ``handler(conn, server, path)`` for each
    (one request per connection), in a thread. ``sent`` counts the body bytes a dripping handler got out; ``hung_up`` is set
    when the client went away before the handler finished."""

    def __init__(self, handler: Handler,
                 host: str = "127.0.0.1", robots: Handler | None = None):
        self.handler = handler
        self.robots = robots  # serves /robots.txt (default: a 404)
        self.sock = socket.create_server((host, 0))
        self.host, self.port = host, self.sock.getsockname()[1]
        self.sent = 0
        self.hung_up = threading.Event()
        self.done = threading.Event()
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        path = ""
        try:
            request = conn.recv(65536)  # small, one packet on loopback
            path = request.split(b" ", 2)[1].decode() if request.count(b" ") >= 2 else "/"
            if path == "/robots.txt" and self.robots is not None:
                self.robots(conn, self, path)
            elif path in WELL_KNOWN:
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            else:
                self.handler(conn, self, path)
        except OSError:
            self.hung_up.set()
        finally:
            conn.close()
            if path not in WELL_KNOWN:
                self.done.set()

    def close(self) -> None:
        self.sock.close()


def drip_body(total: int, every: float = 0.5, content_type: str = "image/jpeg",
              close: bool = False) -> Handler:
    """Headers at once, then a ``total``-byte body one byte every ``every`` seconds
    (``close``: with ``Connection: close``, so the response owns the socket)."""
    def handler(conn: socket.socket, server: RawServer, path: str) -> None:
        connection = "Connection: close\r\n" if close else ""
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\n{connection}"
                     f"Content-Length: {total}\r\n\r\n".encode())
        for _ in range(total):
            time.sleep(every)
            conn.sendall(b"x")
            server.sent += 1
    return handler


def drip_headers(every: float = 0.5) -> Handler:
    """A status line, then header bytes one at a time for ever (40 s at most)."""
    def handler(conn: socket.socket, server: RawServer, path: str) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(80):
            time.sleep(every)
            conn.sendall(b"X")
            server.sent += 1
    return handler


@contextlib.contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) in a thread; yields ``http://127.0.0.1:P``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
