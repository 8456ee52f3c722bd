"""`wit takedown` on the shards of a real `wit shards` run (loopback image server): a list of
every kind, the untouched shards byte-identical, the rewritten ones readable by webdataset
and pandas, sizes.json and the manifest right, idempotence, what a reader that opened a
shard before the takedown sees, and a later `wit shards --exclude` that fetches nothing
the list names by URL, page or domain."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import webdataset as wds
from helpers.shards import TRUSTED, Server, real_images, send, to_jpeg, write_candidates

from pipeline.cli import main
from pipeline.core.takedown_list import read_lists
from pipeline.takedown.shard_rewrite import rewrite_shard
from training.shard_reading import iterate_shard, resolve_shards, shard_sizes

pytestmark = pytest.mark.integration

N = 12
CAPTIONS = [f"a real photo of a thing, number {i}" for i in range(N)]
# which row each kind of entry names (the page and domain ones through the row's page URL)
BY_URL, BY_PAGE, BY_DOMAIN, BY_SHA256, BY_PHASH = 0, 2, 6, 7, 9


def page_of(i: int) -> str:
    if i == BY_DOMAIN:
        return "http://blog.takedown.example/posts/6.html"
    return f"http://pages.example.org/{i}.html"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    return {p.name: digest(p) for p in sorted(folder.iterdir()) if p.is_file()}


def run_shards(candidates: Path, out: Path, *extra: str) -> None:
    assert main(["shards", "--candidates", str(candidates), "--out", str(out),
                 "--allow-network", TRUSTED, "--processes", "1", "--samples-per-shard", "3",
                 *extra]) == 0


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A served set of 12 images (row 4's URL answers 404), their candidates and the shards
    of a real `wit shards` run; yields (root, candidates, server, image bytes)."""
    root = tmp_path_factory.mktemp("takedown")
    images = [to_jpeg(image) for _, image in real_images(N)]
    server = Server()
    server.routes["/robots.txt"] = lambda h: send(h, 200, b"User-agent: *\nAllow: /\n", "text/plain")
    for i, data in enumerate(images):
        if i != 4:
            server.routes[f"/img/{i}.jpg"] = data
    rows = [{"url": server.url(f"/img/{i}.jpg"), "text": CAPTIONS[i], "page_url": page_of(i)}
            for i in range(N)]
    candidates = write_candidates(root / "candidates", rows)
    try:
        run_shards(candidates, root / "out")
        yield root, candidates, server, images
    finally:
        server.close()


def fresh_shards(built, tmp_path: Path) -> Path:
    """A copy of the fixture's untouched shards (each test takes its own copy down)."""
    return Path(shutil.copytree(built[0] / "out" / "shards", tmp_path / "shards",
                                ignore=shutil.ignore_patterns("_work")))


def rows_of(shards: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(p).assign(shard=p.stem) for p in sorted(shards.glob("*.parquet"))]
    return pd.concat(frames).set_index("caption", drop=False)


def write_list(path: Path, before: pd.DataFrame, images: list[bytes], server: Server) -> Path:
    phash = int(before.loc[CAPTIONS[BY_PHASH], "phash"], 16) ^ 0b101  # 2 bits off the stored one
    path.write_text("\n".join([
        "# takedown requests of 2026-12-07",
        f"url {server.url(f'/img/{BY_URL}.jpg')}   # the image itself",
        f"page {page_of(BY_PAGE)}",
        "domain takedown.example",
        f"sha256 {hashlib.sha256(images[BY_SHA256]).hexdigest()}",
        f"phash {phash:016x} 3",
        "url http://nowhere.example/not-in-the-dataset.jpg",
        "",
    ]))
    return path


def test_takedown_every_kind_then_exclude(built, tmp_path, capsys):
    _, candidates, server, images = built
    shards = fresh_shards(built, tmp_path)
    before, files_before = rows_of(shards), snapshot(shards)
    takedown = write_list(tmp_path / "takedown.txt", before, images, server)
    # --dry-run: the same matches said, nothing written
    assert main(["takedown", "--shards", str(shards), "--list", str(takedown), "--dry-run"]) == 0
    assert "(dry run, nothing written): 5 row(s) matched" in capsys.readouterr().out
    assert snapshot(shards) == files_before
    named = [CAPTIONS[i] for i in (BY_URL, BY_PAGE, BY_DOMAIN, BY_SHA256, BY_PHASH)]
    touched = set(before.loc[named, "shard"])
    untouched = set(before["shard"]) - touched
    assert untouched, "the fixture must leave a shard without a listed sample"
    assert (before.loc[named, "status"] == "success").all()

    # a reader that opened a shard before the takedown (a training run): an open file
    # keeps the old contents (the rename gives the path a new file, the old one lives on)
    victim = before.loc[CAPTIONS[BY_URL], "shard"]
    old_reader = iterate_shard(str(shards / f"{victim}.tar"))
    first = next(old_reader)
    capsys.readouterr()

    assert main(["takedown", "--shards", str(shards), "--list", str(takedown)]) == 0
    printed = capsys.readouterr().out
    assert "5 row(s) matched, 5 sample(s) removed from" in printed
    assert "rows matched by kind: url 1 (1 in the tars), page 1 (1 in the tars), domain 1 " \
           "(1 in the tars), sha256 1 (1 in the tars), phash 1 (1 in the tars)" in printed
    assert "dataset version 2" in printed

    old_keys = [first["__key__"]] + [s["__key__"] for s in old_reader]
    assert before.loc[CAPTIONS[BY_URL], "key"] in old_keys  # the old version, read to its end

    after, files_after = rows_of(shards), snapshot(shards)
    # every file of an untouched shard is the very same
    for stem in untouched:
        for name in (f"{stem}.tar", f"{stem}.parquet", f"{stem}_stats.json"):
            assert files_after[name] == files_before[name], name
    for stem in touched:
        assert files_after[f"{stem}.tar"] != files_before[f"{stem}.tar"]
    assert not [n for n in files_after if n.startswith(".tmp-")]

    # the Parquets: every row still there; the removed ones with their key and hashes only
    assert len(after) == len(before) == N
    removed = after[after["status"] == "removed"]
    assert sorted(removed["key"]) == sorted(before.loc[named, "key"])
    assert (removed["url"] == "").all() and removed["page_url"].isna().all()
    assert list(removed["sha256"]) == list(before.set_index("key").loc[removed["key"], "sha256"])
    assert removed["error_message"].str.startswith("takedown ").all()
    kept = before[~before["caption"].isin(named)]
    assert list(after.loc[kept.index, "status"]) == list(kept["status"])

    # the tars: webdataset reads the rewritten ones; what is left is the kept samples
    keys = set()
    for tar in sorted(shards.glob("*.tar")):
        for sample in wds.WebDataset(str(tar), shardshuffle=False):
            keys.add(sample["__key__"])
            assert sample["txt"].decode() == after.set_index("key").loc[sample["__key__"], "caption"]
    assert keys == set(after.loc[after["status"] == "success", "key"])

    # sizes.json, the per-shard stats and the manifest describe the new version
    sizes = json.loads((shards / "sizes.json").read_text())
    assert sizes == {f"{s}.tar": int((after["shard"] == s).mul(after["status"] == "success").sum())
                     for s in sorted(set(after["shard"]))}
    assert shard_sizes(resolve_shards(str(shards))) == {str(shards / k): v for k, v in sizes.items()}
    for stem in touched:
        stats = json.loads((shards / f"{stem}_stats.json").read_text())
        assert stats["successes"] == sizes[f"{stem}.tar"]
        assert stats["status_dict"]["removed"] == int(((after["shard"] == stem)
                                                       & (after["status"] == "removed")).sum())
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["statuses"]["removed"] == 5
    assert manifest["counts"]["kept"] == manifest["shards"]["samples"] == sum(sizes.values())
    assert manifest["takedowns"][-1]["matched"] == {k: 1 for k in
                                                    ("url", "page", "domain", "sha256", "phash")}
    # the dataset card states the new version and size, and lists the takedown
    card = (shards / "README.md").read_text()
    assert f"  samples: {sum(sizes.values())}\n" in card and "Version 2." in card
    assert "| 2 | 5 | " in card
    # the report's sample grid no longer shows a removed image
    report = (shards / "report.html").read_text()
    assert "dataset version 2" in report
    for caption in named:
        assert caption not in report

    # removals.jsonl: one record per removal, hashes and rules, never image bytes
    records = [json.loads(line) for line in (shards / "removals.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in records) == sorted(removed["key"])
    assert {r["kind"] for r in records} == {"url", "page", "domain", "sha256", "phash"}
    assert all(r["list"].startswith(str(takedown) + ":") and r["version"] == 2 for r in records)
    assert all(set(r) == {"version", "shard", "key", "uid", "status_before", "url", "page_url",
                          "sha256", "phash", "kind", "rule", "list"} for r in records)
    # a new reader sees the new version
    assert before.loc[CAPTIONS[BY_URL], "key"] not in [
        s["__key__"] for s in iterate_shard(str(shards / f"{victim}.tar"))]

    # idempotent: the same list, and the removals as a list, change nothing at all
    assert main(["takedown", "--shards", str(shards), "--list", str(takedown),
                 "--list", str(shards / "removals.jsonl")]) == 0
    assert "0 row(s) matched" in capsys.readouterr().out
    assert snapshot(shards) == files_after

    # a later build given the list: URL, page and domain entries are never fetched; the
    # sha256 and pHash ones are refused once fetched and never written
    hits_before = dict(server.hits)
    run_shards(candidates, tmp_path / "rebuilt", "--exclude", str(takedown))
    summary = capsys.readouterr().out
    rebuilt = rows_of(tmp_path / "rebuilt" / "shards")
    assert set(rebuilt.loc[rebuilt["status"] == "removed", "caption"]) == set(named)
    assert "removed: 5" in summary
    fetched = {i: server.hits[f"/img/{i}.jpg"] - hits_before.get(f"/img/{i}.jpg", 0)
               for i in (BY_URL, BY_PAGE, BY_DOMAIN, BY_SHA256, BY_PHASH)}
    assert fetched == {BY_URL: 0, BY_PAGE: 0, BY_DOMAIN: 0, BY_SHA256: 1, BY_PHASH: 1}
    refused = rebuilt.loc[[CAPTIONS[BY_SHA256], CAPTIONS[BY_PHASH]]]
    assert refused["sha256"].notna().all() and refused["phash"].notna().all()
    rebuilt_keys = {s["__key__"] for tar in sorted((tmp_path / "rebuilt" / "shards").glob("*.tar"))
                    for s in wds.WebDataset(str(tar), shardshuffle=False)}
    assert rebuilt_keys == set(rebuilt.loc[rebuilt["status"] == "success", "key"])
    assert not rebuilt_keys & set(removed["key"])

    # removals.jsonl as the list: it holds every removed image's URL, so none is fetched
    hits_before = dict(server.hits)
    run_shards(candidates, tmp_path / "rebuilt2", "--exclude", str(shards / "removals.jsonl"))
    rebuilt = rows_of(tmp_path / "rebuilt2" / "shards")
    assert set(rebuilt.loc[rebuilt["status"] == "removed", "caption"]) == set(named)
    assert all(server.hits[f"/img/{i}.jpg"] == hits_before.get(f"/img/{i}.jpg", 0)
               for i in (BY_URL, BY_PAGE, BY_DOMAIN, BY_SHA256, BY_PHASH))

def test_a_killed_takedown_is_finished_by_the_rerun(built, tmp_path, capsys):
    """Killed after recording one shard's removals but before renaming its files, and after
    replacing another shard but before sizes.json: the rerun replaces the first, records
    nothing twice, and sets sizes.json and the manifest right."""
    _, _, server, _ = built
    shards = fresh_shards(built, tmp_path)
    before = rows_of(shards)
    listed = tmp_path / "takedown.txt"
    listed.write_text(f"url {server.url(f'/img/{BY_URL}.jpg')}\ndomain takedown.example\n")
    first, second = (before.loc[CAPTIONS[i], "shard"] for i in (BY_URL, BY_DOMAIN))
    assert first != second
    rules = read_lists([str(listed)])
    recorded = rewrite_shard(str(shards), first, rules, 2)  # recorded, temporaries left
    replaced = rewrite_shard(str(shards), second, rules, 2)  # recorded and in place
    assert recorded is not None and replaced is not None
    with (shards / "removals.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in recorded.records + replaced.records)
    replaced.commit()
    assert [p.name for p in shards.glob(".tmp-*")]

    assert main(["takedown", "--shards", str(shards), "--list", str(listed)]) == 0
    assert "1 row(s) matched, 1 sample(s) removed from 1 of 4 shard(s)" in capsys.readouterr().out
    records = [json.loads(line) for line in (shards / "removals.jsonl").read_text().splitlines()]
    assert sorted(r["key"] for r in records) == sorted(before.loc[[CAPTIONS[BY_URL],
                                                                   CAPTIONS[BY_DOMAIN]], "key"])
    assert not list(shards.glob(".tmp-*"))
    after = rows_of(shards)
    sizes = json.loads((shards / "sizes.json").read_text())
    for stem in (first, second):
        assert sizes[f"{stem}.tar"] == int(((after["shard"] == stem)
                                            & (after["status"] == "success")).sum())
        assert sizes[f"{stem}.tar"] == int(((before["shard"] == stem)
                                            & (before["status"] == "success")).sum()) - 1
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["version"] == 2 and manifest["shards"]["samples"] == sum(sizes.values())


def test_a_bad_list_line_fails_before_any_shard_is_touched(built, tmp_path, capsys):
    shards = fresh_shards(built, tmp_path)
    files = snapshot(shards)
    bad = tmp_path / "bad.txt"
    bad.write_text("domain fine.example\nsha256 not-a-hash\n")
    assert main(["takedown", "--shards", str(shards), "--list", str(bad)]) == 1
    assert f"{bad}:2: sha256 must be 64 hex digits" in capsys.readouterr().err
    assert main(["shards", "--candidates", str(built[1]), "--out", str(tmp_path / "o"),
                 "--exclude", str(bad)]) == 1
    assert f"{bad}:2:" in capsys.readouterr().err
    good = tmp_path / "good.txt"
    good.write_text("domain fine.example\n")
    assert main(["takedown", "--shards", str(tmp_path / "none"), "--list", str(good)]) == 1
    assert "no shard Parquet files" in capsys.readouterr().err
    assert snapshot(shards) == files


def test_a_training_stream_started_before_the_takedown_keeps_going(built, tmp_path, capsys):
    """The trainer's sample stream (batch_stream.ShardStream), set up on the old version:
    the shard it has open is read to its old end, the shards it opens afterwards are the
    new ones, and batches keep coming with the old epoch length."""
    from training.batch_stream import ShardStream, StreamConfig
    from training.clip.tokenizer import train_tokenizer

    _, _, server, _ = built
    shards = fresh_shards(built, tmp_path)
    before = rows_of(shards)
    paths = resolve_shards(str(shards))
    sizes = shard_sizes(paths)
    cfg = StreamConfig(shards=paths, batch_size=4, image_size=32, context_length=16,
                       steps_per_epoch=sum(sizes.values()) // 4, seed=1, shuffle_buffer=1)
    stream = ShardStream(cfg, train_tokenizer(CAPTIONS, 300))
    first = next(stream._shard_order(0, 0, 1)[1])  # the shard the stream reads first
    pairs = stream._samples(0, 0, 1)
    seen = [next(pairs)[1]]  # that shard is open now
    kept = before[before["status"] == "success"]
    victims = kept.groupby("shard")["caption"].first()  # one sample of every shard
    listed = tmp_path / "takedown.txt"
    listed.write_text("".join(f"url {kept.loc[c, 'url']}\n" for c in victims))
    assert main(["takedown", "--shards", str(shards), "--list", str(listed)]) == 0
    capsys.readouterr()

    seen += [next(pairs)[1] for _ in range(sizes[first] - 1)]
    assert set(seen) == set(kept.loc[kept["shard"] == Path(first).stem, "caption"])
    later = {next(pairs)[1] for _ in range(40)}  # several shards opened after the takedown
    assert later and not later & set(victims)
    images, tokens, _ = next(iter(ShardStream(cfg, stream.tokenizer)))
    assert images.shape == (4, 3, 32, 32) and tokens.shape == (4, 16)
