"""Issue 15.2/15.3: every text of an image (alt, title, data-image-title; figcaption is our
extension) is matched, counted and balanced per text as MetaCLIP does; the kept texts travel
to the candidates, the shards' input and training (`--text random|first`); URL-list captions
are plain text (never HTML-unescaped), HTML/WAT text is."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.crawl import wat_envelope, write_metadata, write_warc, write_wat

from pipeline.cli import main
from pipeline.crawl.balancing import keep, keep_texts, text_draw_key
from pipeline.crawl.html_extract import extract_pairs
from pipeline.crawl.url_lists import url_list_pairs
from pipeline.crawl.wat import wat_pairs
from pipeline.shards.reader import to_input_table
from schemas import CANDIDATES, ENTRY_COUNTS, read_validated
from schemas.shards import DOWNLOAD_INPUT_COLUMNS
from training.sample_decoding import MalformedMetadata, pick_text, sample_texts

THREE = ('<img src="/a.jpg" alt="a red fox" title="fox in the snow" '
         'data-image-title="arctic wildlife">')


def test_all_three_texts_in_field_order() -> None:
    pairs, counts = extract_pairs(f"<html><body>{THREE}</body></html>", "https://e.com/")
    assert pairs == [("https://e.com/a.jpg", ("a red fox", "fox in the snow",
                                              "arctic wildlife"))]
    assert counts["with_text"] == 1 and counts["texts"] == 3
    # duplicates collapse, empty ones are absent; figcaption (our extension) comes last
    page = ('<figure><img src="b.jpg" alt="cat" title="cat" data-image-title=" ">'
            '<figcaption>a sleeping cat</figcaption></figure>')
    assert extract_pairs(page, "https://e.com/")[0] == [("https://e.com/b.jpg",
                                                         ("cat", "a sleeping cat"))]


def test_keep_texts_per_text_draws() -> None:
    counts = {0: 1, 1: 1_000_000}
    # text 0 matched a rare entry (p = 1), text 2 only a frequent one (p = 1e-5)
    uids = [f"u{i}" for i in range(200)]
    kept = [keep_texts(u, [(0, [0]), (2, [1])], counts, 10, 7) for u in uids]
    assert all(0 in k for k in kept)
    assert sum(2 in k for k in kept) < 5
    # each text draws on its own key; a one-text image draws exactly as keep()
    assert [text_draw_key("u", 0), text_draw_key("u", 1)] == ["u", "u\x001"]
    for u in uids:
        assert (keep_texts(u, [(0, [1])], counts, 500_000, 3) == [0]) == keep(
            u, [1], counts, 500_000, 3)


@pytest.mark.integration
def test_crawl_counts_each_text_and_keeps_them(tmp_path: Path) -> None:
    warc = write_warc(tmp_path / "p.warc.gz", [("https://e.com/", f"<html>{THREE}"
                                                "<img src='/b.jpg' alt='a fox den'></html>")])
    meta = write_metadata(tmp_path / "m.json", ["fox", "snow", "wildlife", "den"])
    assert main(["crawl", "--warc", str(warc), "--metadata", meta,
                 "--out", str(tmp_path / "out")]) == 0
    folder = tmp_path / "out" / "candidates"
    rows = read_validated(str(next(folder.glob("part-*.parquet"))), CANDIDATES).to_pylist()
    by_url = {r["url"]: r for r in rows}
    a = by_url["https://e.com/a.jpg"]
    assert a["texts"] == ["a red fox", "fox in the snow", "arctic wildlife"]
    assert a["text"] == "a red fox" and a["matched_entry_ids"] == [0, 1, 2]
    assert by_url["https://e.com/b.jpg"]["texts"] == ["a fox den"]
    counts = {r["entry"]: r["count"] for r in
              read_validated(str(folder / "entry_counts.parquet"), ENTRY_COUNTS).to_pylist()}
    # "fox" is in two texts of a.jpg and one of b.jpg: three matches (MetaCLIP counts texts)
    assert counts == {"fox": 3, "snow": 1, "wildlife": 1, "den": 1}
    stats = json.loads((folder / "stats.json").read_text())["sources"]["warc"]
    assert stats["texts"] == 4 and stats["with_text"] == 2


def test_url_list_captions_are_plain_text(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text('url,caption\nhttps://e.com/1.jpg,Terms&notice\n'
                    'https://e.com/2.jpg,5&times;7 print\nhttps://e.com/3.jpg,a &amp; b\n')
    texts = [p.text for p in url_list_pairs(str(path), Counter())]
    assert texts == ["Terms&notice", "5&times;7 print", "a &amp; b"]


def test_wat_and_html_text_is_unescaped(tmp_path: Path) -> None:
    wat = write_wat(tmp_path / "w.wat.gz", [wat_envelope("https://e.com/", [
        {"path": "IMG@/src", "url": "/x.jpg", "alt": "5&times;7 &amp; more",
         "title": "Terms&amp;notice"}])])
    pairs = list(wat_pairs(str(wat), Counter()))
    assert [p.texts for p in pairs] == [("5×7 & more", "Terms&notice")]
    html_pairs, _ = extract_pairs('<img src="/y.jpg" alt="5&times;7">', "https://e.com/")
    assert html_pairs[0][1] == ("5×7",)


def test_shards_input_carries_texts() -> None:
    table = pa.table({"uid": ["u"], "url": ["https://e.com/a.jpg"], "text": ["a"],
                      "texts": [["a", "b"]], "page_url": [None], "source": ["warc"],
                      "matched_entry_ids": [[1]]})
    out = to_input_table(table, 0)
    assert out.column_names == DOWNLOAD_INPUT_COLUMNS
    assert out.column("texts").to_pylist() == [["a", "b"]]
    assert out.column("caption").to_pylist() == ["a"]
    # candidates written before texts existed: the caption alone
    old = to_input_table(table.drop_columns(["texts"]), 5)
    assert old.column("texts").to_pylist() == [["a"]]
    pq.write_table(out, "/dev/null")  # a table the Parquet writer takes


def test_training_text_choice() -> None:
    sample = {"__key__": "000001", "txt": b"a red fox",
              "json": json.dumps({"texts": ["a red fox", "fox in the snow",
                                            "arctic wildlife"]}).encode()}
    assert sample_texts(sample, "a red fox") == ["a red fox", "fox in the snow",
                                                 "arctic wildlife"]
    assert all(pick_text(sample, "a red fox", "first", 0, e) == "a red fox" for e in range(9))
    drawn = [pick_text(sample, "a red fox", "random", 0, e) for e in range(40)]
    assert drawn == [pick_text(sample, "a red fox", "random", 0, e) for e in range(40)]
    assert set(drawn) == {"a red fox", "fox in the snow", "arctic wildlife"}
    # no texts in the JSON (older shards), or none a string: the caption
    assert sample_texts({}, "cap") == ["cap"]
    assert sample_texts({"json": b'{"url": "x"}'}, "cap") == ["cap"]
    assert sample_texts({"json": b'{"texts": [1, null, " "]}'}, "cap") == ["cap"]
    # a damaged JSON: the sample is skipped and counted by the stream (bad_metadata)
    deep = b'{"texts": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"
    for damaged in (b"{not json", b"\xff\xfe", deep, b"[1, 2]", b'{"texts": "one"}'):
        with pytest.raises(MalformedMetadata):
            sample_texts({"json": damaged}, "cap")


def test_shard_stream_draws_a_text_per_epoch(tmp_path: Path) -> None:
    import io
    import tarfile

    from training.batch_stream import ShardStream, StreamConfig

    texts = ["a red fox", "fox in the snow", "arctic wildlife"]
    shard = tmp_path / "00000.tar"
    with tarfile.open(shard, "w") as tar:
        for key in ("000000", "000001"):
            for ext, data in (("jpg", b"not decoded here"), ("txt", texts[0].encode()),
                              ("json", json.dumps({"texts": texts}).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

    def epoch_texts(mode: str, epoch: int) -> list[str]:
        cfg = StreamConfig(shards=[str(shard)], batch_size=2, image_size=8, context_length=8,
                           steps_per_epoch=1, shuffle_buffer=0, resampled=False, text=mode)
        samples = ShardStream(cfg, tokenizer=None)._samples(epoch, 0)
        return [text for _, text in itertools.islice(samples, 2)]

    assert all(epoch_texts("first", e) == [texts[0]] * 2 for e in range(3))
    drawn = [epoch_texts("random", e) for e in range(12)]
    assert drawn == [epoch_texts("random", e) for e in range(12)]  # same seed, same draws
    assert {t for pair in drawn for t in pair} == set(texts)
