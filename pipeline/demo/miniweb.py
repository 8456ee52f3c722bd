"""The demo's mini-web: Debian's OpenClipart (PNG renderings + the SVG sources, whose RDF
metadata holds a title and keywords) turned into HTML pages with ``<img alt>`` and
``<figure><figcaption>``, served on loopback by a static server the demo starts and stops.

Every clip-art item gets one caption ``"<title>: <keyword>, <keyword>"`` (its only text, in
``alt`` or ``<figcaption>``; see ``--text-fields``), so the keywords — mostly plain
English nouns that WordNet lists — are what the query list matches.
"""

from __future__ import annotations

import hashlib
import html
import http.server
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from lxml import etree

OPENCLIPART = Path("/usr/share/openclipart")
NS = {"dc": "http://purl.org/dc/elements/1.1/", "cc": "http://creativecommons.org/ns#",
      "cc_old": "http://web.resource.org/cc/",
      "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#"}
# Keywords that say who drew it or where it came from, not what it shows.
NOISE_KEYWORDS = {"clip art", "clipart", "image", "media", "png", "svg", "public domain",
                  "openclipart", "externalsource", "unsorted", "hash"}


@dataclass(frozen=True)
class ClipArt:
    relpath: str        # "animals/bugs/ladybug_01" (no suffix), the same under png/ and svg/
    category: str       # top-level folder: "animals"
    title: str
    keywords: tuple[str, ...]

    @property
    def caption(self) -> str:
        return f"{self.title}: {', '.join(self.keywords)}" if self.keywords else self.title

    @property
    def png(self) -> str:
        return self.relpath + ".png"


def svg_metadata(svg: Path) -> tuple[str, list[str]]:
    """(title, keywords) from the SVG's RDF ``cc:Work``; ("", []) when absent or unparsable."""
    try:
        root = etree.parse(str(svg), etree.XMLParser(recover=True, huge_tree=False,
                                                     resolve_entities=False, no_network=True))
    except (etree.XMLSyntaxError, OSError):
        return "", []
    if root.getroot() is None:
        return "", []
    work = root.find(".//cc:Work", NS)
    if work is None:
        work = root.find(".//cc_old:Work", NS)
    if work is None:
        return "", []
    title = " ".join((work.findtext("dc:title", "", NS) or "").split())
    keywords: list[str] = []
    for li in work.findall("dc:subject//rdf:li", NS):
        word = " ".join((li.text or "").split()).lower()
        if word and word not in NOISE_KEYWORDS and word not in keywords and len(word) < 40:
            keywords.append(word)
    return title, keywords


def clip_arts(root: Path = OPENCLIPART, max_bytes: int = 1_000_000) -> Iterator[ClipArt]:
    """Every PNG with an SVG beside it and a title, in path order; PNGs over max_bytes are
    skipped (they only slow the demo down)."""
    png_root, svg_root = root / "png", root / "svg"
    for png in sorted(png_root.rglob("*.png")):
        rel = png.relative_to(png_root).with_suffix("")
        svg = svg_root / rel.with_suffix(".svg")
        if not svg.is_file() or png.stat().st_size > max_bytes:
            continue
        title, keywords = svg_metadata(svg)
        title = re.sub(r"[_-]+", " ", title).strip()
        if not title:
            continue
        yield ClipArt(rel.as_posix(), rel.parts[0], title, tuple(keywords[:6]))


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:port can be bound now (0 always can)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def bucket(relpath: str, buckets: int = 1000) -> int:
    """Stable pseudo-random bucket of an item (the same on every machine and run)."""
    return int.from_bytes(hashlib.sha256(relpath.encode()).digest()[:4], "big") % buckets


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title></head><body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def write_site(items: list[ClipArt], site: Path, per_page: int = 25) -> int:
    """index.html linking pages/NNNN.html, each with per_page images: odd ones as
    ``<img alt>``, even ones as ``<figure><img><figcaption>`` (no alt). Returns pages."""
    (site / "pages").mkdir(parents=True, exist_ok=True)
    (site / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    links = []
    pages = (len(items) + per_page - 1) // per_page
    for n in range(pages):
        chunk = items[n * per_page:(n + 1) * per_page]
        parts = []
        for i, item in enumerate(chunk):
            src = "/img/" + html.escape(item.png, quote=True)
            text = html.escape(item.caption, quote=True)
            if i % 2:
                parts.append(f"<p><img src='{src}' alt='{text}'></p>")
            else:
                parts.append(f"<figure><img src='{src}'><figcaption>{text}</figcaption>"
                             "</figure>")
        name = f"{n:04d}.html"
        (site / "pages" / name).write_text(_page(f"Clip art, page {n + 1}", "\n".join(parts)))
        links.append(f"<li><a href='pages/{name}'>page {n + 1}</a></li>")
    (site / "index.html").write_text(_page("Open Clip Art mini-web",
                                           "<ul>" + "\n".join(links) + "</ul>"))
    return pages


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site folder, and /img/... from OpenClipart's png/ folder (read-only)."""

    site = Path(".")
    images = OPENCLIPART / "png"

    def translate_path(self, path: str) -> str:
        path = path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith("/img/"):
            base, rest = self.images, path[len("/img/"):]
        else:
            base, rest = self.site, path.lstrip("/")
        target = (base / unquote(rest)).resolve()
        if base.resolve() not in (target, *target.parents):
            return str(self.site / "missing")
        return str(target)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass


class MiniWeb:
    """A threaded static server on 127.0.0.1:port (0: any free port); a context manager."""

    def __init__(self, site: Path, images: Path = OPENCLIPART / "png", port: int = 0) -> None:
        handler = type("Handler", (_Handler,), {"site": site, "images": images})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def __enter__(self) -> MiniWeb:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
