"""The ``wit browse`` web app (Flask): pages and a JSON API over a shards output and its
index. Read-only (GET, plus POST of an image to search with); every page is rendered from
autoescaped templates under a strict Content-Security-Policy."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlencode

from flask import Flask, Response, abort, jsonify, render_template, request, url_for
from jinja2 import DictLoader

from pipeline.browse import pages
from pipeline.browse.dataset import Dataset
from pipeline.browse.facets import FIXED_FACETS
from pipeline.browse.search import Searcher, clamp_k
from pipeline.browse.tar_offsets import CONTENT_TYPES

MAX_UPLOAD = 20 << 20  # bytes of an uploaded query image
PAGE_ROWS = 50
FACET_VALUES = 30  # values shown per facet, the most frequent first
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'self'")
# report.html is ours, self-contained: inline styles and data: images, never a script
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'"


def safe_link(url: Any) -> bool:
    """Only http(s) URLs become links (a ``javascript:`` URL in the data stays text)."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        abort(400, f"{name} must be an integer")


def create_app(dataset: Dataset, searcher: Searcher | None) -> Flask:
    app = Flask(__name__, static_folder=None)
    app.jinja_loader = DictLoader(pages.TEMPLATES)
    app.config["MAX_CONTENT_LENGTH"] = MAX_UPLOAD
    facet_names = set(FIXED_FACETS) | set(dataset.extra)

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    def listed(shard: str) -> str:
        """A shard name from a request, only if it is in the listing."""
        if shard not in dataset.shards:
            abort(404, "no such shard")
        return shard

    @app.get("/static/browse.css")
    def css() -> Response:
        return Response(pages.CSS, mimetype="text/css")

    @app.get("/static/browse.js")
    def js() -> Response:
        return Response(pages.JS, mimetype="text/javascript")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)  # none: spares the browser a 404 on every page

    @app.get("/")
    def overview() -> str:
        manifest = dataset.manifest()
        return render_template("overview.html", shards=len(dataset.shards), folder=str(dataset.folder),
                               counts=manifest.get("counts", {}),
                               index=searcher.info if searcher else None,
                               report=dataset.report_html() is not None)

    @app.get("/report")
    def report() -> Response:
        body = dataset.report_html()
        if body is None:
            abort(404, "no report.html")
        response = Response(body, mimetype="text/html")
        response.headers["Content-Security-Policy"] = REPORT_CSP
        return response

    @app.get("/image/<shard>/<key>")
    def image(shard: str, key: str) -> Response:
        found = dataset.image(listed(shard), key)
        if found is None:
            abort(404, "no image for this sample")
        data, fmt = found
        response = Response(data, mimetype=CONTENT_TYPES.get(fmt, "application/octet-stream"))
        response.headers["Cache-Control"] = "max-age=3600"
        return response

    def run_search() -> tuple[str, list[dict[str, Any]], str | None, int]:
        """(title, results, error, HTTP status) of the request's query: q=TEXT, like=SHARD/KEY
        or a POSTed image file."""
        if searcher is None:
            return "Search", [], "no index: run `wit index` and pass --index", 409
        k = clamp_k(_int_arg("k", 48))
        if request.method == "POST":
            upload = request.files.get("image")
            if upload is None:
                return "Search by image", [], "no image file in the request", 400
            try:
                return "Search by image", searcher.by_image(upload.read(), k), None, 200
            except ValueError as exc:
                return "Search by image", [], str(exc), 400
        like = request.args.get("like")
        if like:
            shard, _, key = like.partition("/")
            found = searcher.like(listed(shard), key, k)
            if found is None:
                return "More like this", [], f"{like} is not in the index", 404
            return f"More like {like}", found, None, 200
        q = request.args.get("q", "").strip()
        if not q:
            return "Search", [], "type a text to search for", 400
        return f"Images for: {q}", searcher.by_text(q, k), None, 200

    @app.route("/search", methods=["GET", "POST"])
    def search() -> tuple[str, int]:
        title, results, error, code = run_search()
        return render_template("results.html", title=title, results=results, error=error,
                               q=request.args.get("q", "")), code

    @app.route("/api/search", methods=["GET", "POST"])
    def api_search() -> tuple[Response, int]:
        _, results, error, code = run_search()
        if error:
            return jsonify({"error": error}), code
        return jsonify([{name: r[name] for name in ("shard", "key", "url", "caption", "score")}
                        for r in results]), 200

    def selection() -> dict[str, str]:
        return {name: value for name, value in request.args.items() if name in facet_names}

    @app.get("/rows")
    def rows() -> str:
        selected = selection()
        offset = max(0, _int_arg("offset", 0))
        result = dataset.facets(selected, offset, PAGE_ROWS)

        def link(args: dict[str, Any]) -> str:
            return url_for("rows") + ("?" + urlencode(args) if args else "")

        return render_template(
            "rows.html", result=result, selected=selected, offset=offset, limit=PAGE_ROWS,
            labels=FIXED_FACETS, entry_names=dataset.entry_names,
            top=lambda counter: counter.most_common(FACET_VALUES),
            with_=lambda name, value: link({**selected, name: value}),
            without=lambda name: link({k: v for k, v in selected.items() if k != name}),
            page=lambda at: link({**selected, "offset": at}))

    @app.get("/api/facets")
    def api_facets() -> Response:
        result = dataset.facets(selection(), max(0, _int_arg("offset", 0)), PAGE_ROWS)
        return jsonify({"total": result.total, "matching": result.matching,
                        "counts": {k: dict(v.most_common()) for k, v in result.counts.items()},
                        "rows": [{k: r.get(k) for k in ("shard", "key", "status", "caption")}
                                 for r in result.rows]})

    @app.get("/sample/<shard>/<key>")
    def sample(shard: str, key: str) -> str:
        row = dataset.row(listed(shard), key)
        if row is None:
            abort(404, "no such sample")
        keeper, group = dataset.duplicate_group(row)
        indexed = searcher is not None and searcher.mapping.find(shard, key) is not None
        return render_template("sample.html", row=row, shard=shard, keeper=keeper, group=group,
                               has_image=dataset.has_image(shard, key), indexed=indexed,
                               entry_names=dataset.entry_names, safe_link=safe_link,
                               fields=[(k, v) for k, v in row.items() if k not in ("texts",)])

    return app
