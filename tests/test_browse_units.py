"""`wit index` / `wit browse` parts without a server or a model: the index choice and real
faiss indices (recall against exact search), the tar offset index on a shard written by
`wit shards`' writer, facet counting, the link and address guards, and the app's pages on a
real shards folder through Flask's test client (no index: search off)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.shards import real_images, to_jpeg

from pipeline.browse import facets
from pipeline.browse.app import create_app, is_loopback, safe_link
from pipeline.browse.dataset import Dataset
from pipeline.browse.index_choice import build_index, choose_index, recall_at_k
from pipeline.browse.tar_offsets import image_offsets, read_member
from pipeline.shards.writer import write_shard

HOSTILE = 'a photo <script>alert("x")</script><img src=x onerror=alert(1)> of a bridge'


def test_index_kind_by_size():
    assert choose_index(10, 512).kind == "flat"
    assert choose_index(99_999, 512).kind == "flat"
    assert choose_index(100_000, 512).kind == "hnsw"
    spec = choose_index(5_000_000, 512)
    assert spec.kind == "ivfpq" and spec.factory == f"IVF{spec.params['nlist']},PQ64"
    assert spec.params["nlist"] & (spec.params["nlist"] - 1) == 0  # a power of two here
    assert choose_index(5_000_000, 100).params["m"] == 10  # m divides the dimension
    assert choose_index(10, 8, kind="hnsw").params["efSearch"] == 64
    with pytest.raises(ValueError, match="unknown index kind"):
        choose_index(10, 8, kind="lsh")


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(64, dim))
    x = centres[rng.integers(0, 64, n)] + 0.5 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def one_faiss_thread():
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # shared CI machine: OpenMP spinning under load costs 10x
    yield
    faiss.omp_set_num_threads(before)


@pytest.mark.parametrize("kind,min_recall", [("flat", 1.0), ("hnsw", 0.9), ("ivfpq", 0.3)])
def test_faiss_indices_against_exact_search(kind, min_recall, one_faiss_thread):
    data, queries = _clustered(6000, 32, 0), _clustered(100, 32, 1)
    spec = choose_index(len(data), 32, kind=kind)
    index = build_index(spec, 32, len(data), lambda: iter([data[:4000], data[4000:]]),
                        lambda size: data[:size])
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    _, found = index.search(queries, 10)
    recall = recall_at_k(exact, found, 10)
    assert recall >= min_recall, (kind, recall)


def _shard(folder, rows_spec):
    """A real shard through the writer of `wit shards`: kept rows get a JPEG."""
    rows, images = [], {}
    photos = real_images(len(rows_spec))
    for i, (status, caption, extra) in enumerate(rows_spec):
        key = f"{i:09d}"
        row = {"key": key, "uid": f"u{i}", "url": f"https://ex{i % 2}.org/{i}.jpg", "caption": caption,
               "texts": [caption], "status": status, "attempts": 1,
               "matched_entry_ids": [i % 3, 7], "clip_score": 0.05 * i if status == "success" else None,
               "error_message": extra, "source": "urls"}
        rows.append(row)
        if status == "success":
            images[key] = to_jpeg(photos[i][1])
    write_shard(str(folder), "00000", rows, images)
    return rows, images


def test_tar_offsets_serve_the_stored_bytes(tmp_path):
    rows, images = _shard(tmp_path, [("success", "one two three", None),
                                     ("filtered:min_side", "x", "basic filter: min_side"),
                                     ("success", "four five six", None)])
    offsets = image_offsets(str(tmp_path / "00000.tar"))
    assert set(offsets) == set(images)
    for key, member in offsets.items():
        assert member.image_format == "jpg"
        assert read_member(str(tmp_path / "00000.tar"), member.offset, member.size) == images[key]
    with pytest.raises(ValueError, match="truncated"):
        read_member(str(tmp_path / "00000.tar"), member.offset, 10**9)


def test_facets_count_every_row_and_drill_down():
    batch = {"key": ["a", "b", "c", "d"], "url": ["http://x.org/1", "http://y.org/2", "bad", None],
             "caption": ["c"] * 4,
             "status": ["success", "filtered:language", "duplicate_of:a", "failed_to_download"],
             "error_message": [None, "basic filter: language", "near duplicate of a", "HTTP 404 Not Found"],
             "matched_entry_ids": [[1, 2], [2], [], None], "clip_score": [0.31, None, -0.05, None],
             "source": ["warc"] * 4, "license": ["cc-by", None, "cc-by", "cc0"]}
    result = facets.count_facets([("00000", batch)], ["license"], {})
    assert result.total == result.matching == 4
    assert result.counts["status"] == {"success": 1, "filtered": 1, "duplicate": 1,
                                       "failed_to_download": 1}
    assert result.counts["reason"] == {"": 1, "language": 1, "near duplicate": 1, "HTTP 404 Not Found": 1}
    assert result.counts["entry"] == {"1": 1, "2": 2, "(none)": 2}
    assert result.counts["domain"]["x.org"] == 1 and result.counts["domain"]["(none)"] == 2
    assert result.counts["clip"] == {"0.3 to 0.4": 1, "-0.1 to 0.0": 1, "unscored": 2}
    assert result.counts["license"] == {"cc-by": 2, "(none)": 1, "cc0": 1}
    picked = facets.count_facets([("00000", batch)], ["license"], {"entry": "2", "license": "cc-by"},
                                 limit=10)
    assert picked.matching == 1 and [r["key"] for r in picked.rows] == ["a"]
    assert picked.rows[0]["shard"] == "00000"
    capped = facets.count_facets([("00000", batch)], [], {}, max_distinct=2)
    assert capped.counts["domain"] == {"x.org": 1, "y.org": 1, facets.OTHER: 2}
    page = facets.count_facets([("00000", batch)], [], {}, offset=1, limit=2)
    assert [r["key"] for r in page.rows] == ["b", "c"] and page.matching == 4


def test_extra_facet_columns_come_from_the_schema():
    import pyarrow as pa

    from schemas.shards import samples_schema
    extra = pa.schema([pa.field("collection", pa.string()), pa.field("blob", pa.binary()),
                       pa.field("_internal", pa.string())])
    # SAMPLES' language, provenance and licence columns with values shared between rows, then
    # a URL list's own column; never bytes, a private column or a value per row (offsets, times)
    assert facets.extra_facet_columns(samples_schema(extra)) == [
        "language", "source_file", "http_status", "content_type", "optout_checks",
        "page_licenses", "image_licenses", "license", "collection"]
    # a column another stage adds to SAMPLES itself is a facet too
    grown = pa.schema([*samples_schema(), pa.field("caption_language", pa.string())])
    assert facets.extra_facet_columns(grown)[-1] == "caption_language"


def test_link_and_address_guards():
    assert safe_link("https://x.org/a") and safe_link("HTTP://x.org")
    assert not safe_link("javascript:alert(1)") and not safe_link(None)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2")


def test_pages_escape_captions_and_check_shard_names(tmp_path):
    shards = tmp_path / "shards"
    _shard(shards, [("success", HOSTILE, None), ("filtered:language", HOSTILE, "basic filter: language"),
                    ("duplicate_of:000000000", "copy of it", "exact duplicate of 000000000")])
    client = create_app(Dataset(tmp_path), None).test_client()
    sample = client.get("/sample/00000/000000000")
    body = sample.get_data(as_text=True)
    assert sample.status_code == 200 and "<script>alert" not in body and "onerror=alert(1)>" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
    assert "script-src 'self'" in sample.headers["Content-Security-Policy"]
    assert "000000002" in body and "Kept copy: 000000000" in body  # its duplicate group
    rows = client.get("/rows?status=filtered").get_data(as_text=True)
    assert "Every candidate row: 1 of 3" in rows and "&lt;script&gt;" in rows and "<script>alert" not in rows
    image = client.get("/image/00000/000000000")
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    for bad in ("/image/..%2F..%2Fetc/passwd", "/image/00001/000000000", "/sample/x/000000000",
                "/image/00000/..%2F00000.parquet", "/image/00000/000000001"):
        assert client.get(bad).status_code == 404, bad
    assert client.get("/api/search?q=bridge").status_code == 409  # no index given
    assert client.post("/search").status_code == 409
    facets_json = client.get("/api/facets?reason=exact%20duplicate").get_json()
    assert facets_json["matching"] == 1 and facets_json["rows"][0]["key"] == "000000002"
    assert client.get("/rows?offset=x").status_code == 400


def test_ivfpq_search_reranked_by_the_exact_vectors(one_faiss_thread):
    """`wit browse` searches an IVF-PQ index for 10x candidates and orders them by their
    exact similarity: better recall than the compressed scores, exact scores returned."""
    from pipeline.browse.index_choice import rerank
    from pipeline.browse.search import nearest

    data, queries = _clustered(6000, 32, 0), _clustered(50, 32, 1)
    spec = choose_index(len(data), 32, kind="ivfpq")
    index = build_index(spec, 32, len(data), lambda: iter([data]), lambda size: data[:size])
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    plain = np.array([[i for i, _ in nearest(index, q, 10)] for q in queries])
    hits = [nearest(index, q, 10, data) for q in queries]
    reranked = np.array([[i for i, _ in h] for h in hits])
    assert recall_at_k(exact, reranked, 10) > recall_at_k(exact, plain, 10)
    for q, h in zip(queries, hits):
        scores = [s for _, s in h]
        assert scores == sorted(scores, reverse=True)
        assert scores == pytest.approx([float(data[i] @ q) for i, _ in h], abs=1e-5)
    assert rerank(np.array([-1, -1]), data, queries[0], 10) == []
