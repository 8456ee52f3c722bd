"""The shards in the Hugging Face ecosystem: `datasets.load_dataset("webdataset")` reads the
tars of a real `wit shards` run (multi-text KEY.json included) with the same features in every
shard, offline; OUT/shards/README.md is a dataset card whose YAML parses and whose counts are
the shards' own (`_stats.json`), and `load_dataset(OUT/shards)` follows its configs. The card
itself is a pure function of the manifest, tested without Beam."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.shards import TRUSTED, Server, real_images, send, to_jpeg, write_candidates

from pipeline.cli import main
from pipeline.core.dataset_card import dataset_card, license_id, size_category

ENGLISH = ["a red sports car parked in front of the house", "an old wooden boat on a lake",
           "a mountain village under a clear sky", "a small dog asleep on a sofa",
           "a castle on a hill at sunset", "a bowl of fruit on a kitchen table",
           "a lighthouse on the rocks by the sea", "a bicycle leaning against a wall"]
ITALIAN = "Una macchina rossa parcheggiata davanti alla vecchia casa"


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    header, _, _ = card[4:].partition("\n---\n")
    return yaml.safe_load(header)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """`wit shards` over 8 images in shards of 3: the first shard's samples have one text
    each and no page URL, later ones several texts (one dropped by the language rule) and
    a page URL, so a reader that infers types from the first shard meets new values later."""
    tmp = tmp_path_factory.mktemp("hf")
    images = [to_jpeg(image) for _, image in real_images(len(ENGLISH))]
    site = Server()
    site.routes["/robots.txt"] = lambda h: send(h, 200, b"User-agent: *\nAllow: /\n", "text/plain")
    rows = []
    for i, (body, text) in enumerate(zip(images, ENGLISH)):
        site.routes[f"/img/{i}.jpg"] = body
        later = i >= 3
        rows.append({"url": site.url(f"/img/{i}.jpg"), "text": text,
                     "texts": [text, ITALIAN, f"{text} again"] if later else [text],
                     "page_url": site.url(f"/page{i}.html") if later else None})
    out = tmp / "out"
    try:
        assert main(["shards", "--candidates", str(write_candidates(tmp / "candidates", rows)),
                     "--out", str(out), "--allow-network", TRUSTED, "--processes", "1",
                     "--samples-per-shard", "3"]) == 0
    finally:
        site.close()
    return out / "shards"


@pytest.fixture
def offline_datasets(tmp_path, monkeypatch):
    """The datasets library with no network and its caches in the test's folder."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets  # after the variables: the library reads them when first imported
    import huggingface_hub.constants

    # and set where an earlier test of the session imported it already
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    return datasets


@pytest.mark.integration
def test_load_dataset_webdataset_reads_every_shard_with_the_same_features(run, offline_datasets, tmp_path):
    datasets = offline_datasets
    tars = sorted(str(p) for p in run.glob("*.tar"))
    manifest = json.loads((run / "manifest.json").read_text())
    assert len(tars) == 3 and manifest["counts"]["kept"] == len(ENGLISH)
    cache = str(tmp_path / "cache")
    whole = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train",
                                  cache_dir=cache)
    assert len(whole) == len(ENGLISH)
    # each shard on its own infers the same features as the whole (and as the first shard)
    for tar in tars:
        alone = datasets.load_dataset("webdataset", data_files={"train": [tar]}, split="train",
                                      cache_dir=cache)
        assert alone.features == whole.features, tar
    assert isinstance(whole.features["jpg"], datasets.Image)
    by_caption = {row["txt"]: row for row in whole}
    assert set(by_caption) == set(ENGLISH)
    for i, text in enumerate(ENGLISH):
        meta = by_caption[text]["json"]
        # only the texts that passed: the Italian one is gone and counted
        assert meta["texts"] == ([text, f"{text} again"] if i >= 3 else [text])
        assert meta["caption"] == text and meta["status"] == "success"
        # a null page URL is "", like url and caption; the columns about drops stay in the
        # Parquet (the dropped texts' reasons there: see the card test)
        assert (meta["page_url"] == "") == (i < 3)
        assert not {"text_filter_reasons", "error_message", "duplicate_of"} & set(meta)
        image = by_caption[text]["jpg"]
        assert image.size == (meta["width"], meta["height"])


@pytest.mark.integration
def test_dataset_card_parses_and_counts_what_the_shards_hold(run, offline_datasets, tmp_path):
    card = (run / "README.md").read_text()
    meta = front_matter(card)
    stats = [json.loads(p.read_text()) for p in sorted(run.glob("*_stats.json"))]
    manifest = json.loads((run / "manifest.json").read_text())
    kept = sum(s["successes"] for s in stats)
    assert meta["webimagetext"]["samples"] == kept == len(ENGLISH)
    assert meta["webimagetext"]["counts"]["candidates"] == sum(s["count"] for s in stats)
    assert meta["webimagetext"]["counts"] == manifest["counts"]
    assert meta["webimagetext"]["shards"] == len(stats)
    assert meta["license"] == "other"  # no per-sample licences recorded: a mix of web terms
    assert meta["size_categories"] == ["n<1K"]
    assert "zero-shot-image-classification" in meta["task_categories"]
    assert meta["configs"] == [{"config_name": "default",
                                "data_files": [{"split": "train", "path": "*.tar"}]}]
    # the datasheet's sections, with the texts the language rule dropped
    for section in ("## Sources", "## Curation steps", "## Filters and thresholds",
                    "## Deduplication and decontamination", "## Licence",
                    "## Known limitations"):
        assert section in card
    dropped = sum(s["filtered_texts"].get("language", 0) for s in stats)
    assert f"| language | 0 | {dropped} |" in card and dropped == 5
    # the Hub's loader follows the card's configs: the tars only, not the Parquets
    ds = offline_datasets.load_dataset(str(run), split="train", cache_dir=str(tmp_path / "c"))
    assert len(ds) == kept and "jpg" in ds.features


def manifest_of(samples: int, licenses: dict[str, int] | None = None) -> dict:
    """A manifest as the job writes it, its counts a consistent funnel."""
    counts = {"candidates": samples + 7, "downloaded": samples + 5, "after_filters": samples + 3,
              "after_pixel_guard": samples + 3, "after_decontamination": samples + 2,
              "after_clip_filter": samples + 2, "after_exact_dedup": samples + 1, "kept": samples}
    manifest = {
        "counts": counts, "statuses": {"success": samples, "failed_to_download": 2},
        "filtered": {"caption_words": 2}, "texts": {"kept": samples, "filtered": {"language": 4}},
        "duplicates": {"exact": 1, "near": 1},
        "shards": {"count": 2, "samples_per_shard": 10000, "samples": samples},
        "config": {"filters": {"preset": "datacomp-basic", "min_words": 3, "languages": ["en"]},
                   "near_dup_bits": 10, "contamination_bits": 10,
                   "eval_images": ['eval "set": a|b'], "eval_hashes": 12, "clip_filter": None},
        "inputs": [{"path": "/data/it's: \"odd\"\npath.parquet", "bytes": 10, "sha256": "ab"}],
    }
    if licenses is not None:
        manifest["licenses"] = licenses
    return manifest


def test_card_from_the_manifest_alone():
    manifest = manifest_of(12345, {"CC-BY-4.0": 12345})
    card = dataset_card(manifest)
    meta = front_matter(card)
    assert meta["license"] == "cc-by-4.0" and meta["size_categories"] == ["10K<n<100K"]
    assert meta["webimagetext"]["counts"] == manifest["counts"]
    # a path holding quotes, a colon or a newline stays inside its table cell
    assert "| `/data/it's: \"odd\" path.parquet` | 10 |" in card
    assert '`eval "set": a|b`' in card
    for (step, count), previous in zip(list(manifest["counts"].items())[1:],
                                       list(manifest["counts"].values())):
        assert f"| `{step}` |" in card and f"| {count} | {previous - count} |" in card


def test_licence_and_size_category():
    assert license_id(None) == license_id({}) == "other"
    assert license_id({"cc-by-4.0": 3, "cc0-1.0": 1}) == "other"  # a mix: the datasheet lists it
    assert license_id({"All rights reserved": 3}) == "other"
    assert license_id({"CC0-1.0": 3}) == "cc0-1.0" and license_id({"ODbL-1.0": 2}) == "odbl"
    # the manifest's buckets for samples without a known licence
    assert license_id({"(none)": 3}) == license_id({"(text, no known licence)": 1}) == "other"
    assert [size_category(n) for n in (0, 999, 1000, 99_999, 2_000_000)] == \
        ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]
    card = dataset_card(manifest_of(5, {"cc-by-4.0": 3, "cc0-1.0": 2}))
    assert front_matter(card)["license"] == "other" and "| cc0-1.0 | 2 |" in card
