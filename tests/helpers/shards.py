"""Support for the shards tests (no tests here): real images from Debian's
``openclipart-png`` and scikit-learn/matplotlib's sample photos, candidate Parquet writing, and
a loopback HTTP server with a fault matrix.

The image origin listens on 127.0.0.2 and the tests trust only ``127.0.0.2/32``; a second
server on 127.0.0.1 is the forbidden redirect target, so the SSRF guard is exercised for real.
"""

from __future__ import annotations

import functools
import io
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipeline.core.net import FetchConfig
from pipeline.shards.download import DownloadConfig
from pipeline.shards.filters import FilterConfig
from pipeline.shards.imaging import ResizeConfig
from pipeline.shards.job import ShardsOptions
from schemas.candidates import CANDIDATES

OPENCLIPART = Path("/usr/share/openclipart/png")
ORIGIN_HOST = "127.0.0.2"
TRUSTED = "127.0.0.2/32"


def _package_dir(name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(name)  # locate without importing (sklearn takes seconds)
    assert spec is not None and spec.origin is not None, name
    return Path(spec.origin).parent


def sample_photos() -> list[Path]:
    sk = _package_dir("sklearn") / "datasets" / "images"
    mpl = _package_dir("matplotlib") / "mpl-data" / "sample_data"
    return [sk / "china.jpg", sk / "flower.jpg", mpl / "grace_hopper.jpg"]


def to_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        background = Image.new("RGB", image.size, "white")
        background.paste(image, mask=image.split()[-1])
        image = background
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@functools.cache
def _real_images(count: int, min_side: int = 260, max_side: int = 900) -> list[tuple[str, Image.Image]]:
    """``count`` distinct real images (name, RGB image): the 3 sample photos, then
    openclipart PNGs in sorted order whose size fits, flattened on white. openclipart holds
    some copies under other names: images within 16 pHash bits of a chosen one are skipped."""
    from pipeline.shards.phash import phash_image

    if not OPENCLIPART.is_dir():
        pytest.skip(f"{OPENCLIPART} missing: apt-get install openclipart-png (in .ci/run)")
    found: list[tuple[str, Image.Image]] = []
    hashes: list[int] = []
    for path in sample_photos():
        with Image.open(path) as image:
            found.append((path.stem, image.convert("RGB")))
            hashes.append(phash_image(found[-1][1]))
    for path in sorted(OPENCLIPART.rglob("*.png")):
        if len(found) >= count:
            break
        if not 20_000 < path.stat().st_size < 400_000:
            continue
        with Image.open(path) as image:
            if not (min_side <= min(image.size) and max(image.size) <= max_side
                    and max(image.size) / min(image.size) <= 2.5):
                continue
            image.load()
            rgb = Image.open(io.BytesIO(to_jpeg(image)))
            rgb.load()
        value = phash_image(rgb)
        if any((value ^ h).bit_count() <= 16 for h in hashes):
            continue
        hashes.append(value)
        found.append((path.stem, rgb))
    return found[:count]


def write_candidates(folder: Path, rows: list[dict], files: int = 1) -> Path:
    """Write ``rows`` (url, text, optional texts and matched_entry_ids) as candidates part
    files; ``texts`` defaults to the one text."""
    folder.mkdir(parents=True, exist_ok=True)
    full = [{
        "uid": f"uid{i:05d}", "url": r["url"], "text": r["text"],
        "texts": r.get("texts", [r["text"]]),
        "page_url": r.get("page_url"), "source": r.get("source", "urls"),
        "matched_entry_ids": r.get("matched_entry_ids", [i % 7]),
    } for i, r in enumerate(rows)]
    per_file = -(-len(full) // files)
    for n in range(files):
        chunk = full[n * per_file:(n + 1) * per_file]
        pq.write_table(pa.Table.from_pylist(chunk, schema=CANDIDATES), folder / f"part-{n:05d}.parquet")
    return folder


Handler = Callable[[BaseHTTPRequestHandler], None]


class Server:
    """A threaded HTTP server on ``host``; ``routes`` maps a path to a handler or bytes."""

    def __init__(self, host: str = ORIGIN_HOST):
        self.routes: dict[str, bytes | Handler] = {}
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()
        outer = self

        class RequestHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # as real web servers do (nginx: tcp_nodelay): with Nagle, a kept-alive
            # connection stalls ~40 ms per response on the client's delayed ACK
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                with outer.lock:
                    outer.hits[path] += 1
                route = outer.routes.get(path)
                try:
                    if route is None:
                        self.send_error(404)
                    elif callable(route):
                        route(self)
                    else:
                        send(self, 200, route)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer((host, 0), RequestHandler)
        self.httpd.daemon_threads = True
        self.host, self.port = host, self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def send(handler: BaseHTTPRequestHandler, code: int, body: bytes,
         content_type: str = "image/jpeg", headers: dict[str, str] | None = None) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    try:
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (a deadline, a size cap): what the test may want


def fault_routes(server: Server, image: bytes, private_target: str, huge: bytes, bomb: bytes) -> dict[str, str]:
    """Install the fault matrix; returns {path: expected status}."""
    attempts: Counter[str] = Counter()

    def status(code: int, headers: dict[str, str] | None = None) -> Handler:
        return lambda h: send(h, code, b"error", "text/plain", headers)

    def once_429(h):
        attempts["429"] += 1
        if attempts["429"] == 1:
            send(h, 429, b"slow down", "text/plain", {"Retry-After": "1"})
        else:
            send(h, 200, image)

    def sleep_then_send(h):
        time.sleep(3)
        send(h, 200, image)

    def drip(h):
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(image)))
        h.end_headers()
        for i in range(0, len(image), 16):
            h.wfile.write(image[i:i + 16])
            h.wfile.flush()
            time.sleep(0.25)

    def redirect(location: str) -> Handler:
        def handler(h):
            h.send_response(302)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
        return handler

    routes: dict[str, tuple[bytes | Handler, str]] = {
        "/robots.txt": (lambda h: send(h, 200, b"User-agent: *\nDisallow: /private/\n",
                                       "text/plain"), ""),
        "/f/404.jpg": (status(404), "failed_to_download"),
        "/f/500.jpg": (status(500), "failed_to_download"),
        "/f/429.jpg": (once_429, "success"),
        "/f/timeout.jpg": (sleep_then_send, "failed_to_download"),
        "/f/drip.jpg": (drip, "failed_to_download"),
        "/f/truncated.jpg": (image[: len(image) * 2 // 3], "failed_to_resize"),
        "/f/corrupt.jpg": (bytes(range(256)) * 40, "failed_to_resize"),
        "/f/page.html": (lambda h: send(h, 200, b"<html><body>not an image</body></html>" * 200,
                                        "text/html"), "failed_to_resize"),
        "/f/huge.png": (huge, "filtered:max_pixels"),
        "/f/bomb.png": (bomb, "filtered:max_pixels"),
        "/f/noai.jpg": (lambda h: send(h, 200, image, headers={"X-Robots-Tag": "noai"}),
                        "filtered:x_robots_tag"),
        "/f/loop.jpg": (redirect("/f/loop.jpg"), "failed_to_download"),
        "/f/to-private.jpg": (redirect(private_target), "filtered:blocked_address"),
        "/private/secret.jpg": (image, "filtered:robots_txt"),
    }
    expected = {}
    for path, (route, want) in routes.items():
        server.routes[path] = route
        if want:
            expected[path] = want
    return expected


def real_images(count: int) -> list[tuple[str, Image.Image]]:
    """Cached per process: copies of the images, so callers may not alter the cache."""
    return [(name, image.copy()) for name, image in _real_images(max(count, 40))[:count]]


def png_header_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny valid-looking PNG whose header declares ``width`` x ``height`` pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    # one compressed row of zeros repeated lazily would still decode to w*h bytes
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def huge_png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (width, height), 200).save(buffer, "PNG")
    return buffer.getvalue()


def wit_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_ALBUMENTATIONS_UPDATE="1", WIT_PROGRESS="0")
    return env


def english_caption(i: int) -> str:
    """A caption that passes DataComp's basic filter (> 2 words, > 5 characters, English by
    fastText lid.176); the image file names are often Italian and would fail the language rule."""
    return f"a real photo, picture number {i}"


def served_rows(server: Server, count: int = 7) -> list[dict]:
    """``count`` real photos served as JPEGs by ``server``, as candidate rows, plus an exact
    duplicate row (dedup must pick the same survivor everywhere) and a URL that 404s."""
    rows = []
    for i, (_, image) in enumerate(real_images(count)):
        server.routes[f"/img/{i}.jpg"] = to_jpeg(image)
        rows.append({"url": server.url(f"/img/{i}.jpg"), "text": english_caption(i)})
    rows.append(rows[1])
    rows.append({"url": server.url("/missing.jpg"), "text": "an image that is not there"})
    return rows


def options(candidates: Path, out: Path, **overrides) -> ShardsOptions:
    """Shards options for the loopback origin: short timeouts, small shards, trusts TRUSTED."""
    fetch = FetchConfig(timeout=2.0, retries=1, max_backoff=2.0, allowed_networks=(TRUSTED,))
    download = DownloadConfig(fetch=fetch, resize=ResizeConfig(image_size=128, max_pixels=3_000_000),
                              thread_count=16,
                              filters=FilterConfig(max_pixels=3_000_000, min_bytes=5000))
    base = dict(candidates=str(candidates), out=str(out), download=download, processes=1,
                download_shard_size=8, samples_per_shard=5)
    base.update(overrides)
    return ShardsOptions(**base)
