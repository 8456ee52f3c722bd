"""Near-duplicate detection on real images, the LSH search (pure driver and Beam job) against
the brute-force keeper rule, bounded groups, faiss against numpy, the keeper rule, filters,
header checks and the tar reader."""

from __future__ import annotations

import io
import random
import tarfile
from collections import defaultdict

import numpy as np
import pytest
from helpers.shards import png_header_bomb, real_images, to_jpeg
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

from pipeline.core.net import retry_after_seconds as parse_retry_after
from pipeline.shards.dedup import (
    NearDupConfig,
    Ranked,
    brute_force_pairs,
    exact_duplicates,
    faiss_pairs,
    lsh_key,
    near_duplicate_marks,
    pairwise_marks,
    preference,
    table_keys,
)
from pipeline.shards.filters import FilterConfig, filter_reason
from pipeline.shards.imaging import ResizeConfig, jpeg_is_truncated, process_image
from pipeline.shards.near_duplicates import NearDuplicates
from pipeline.shards.phash import phash_bytes, phash_image, to_hex
from pipeline.shards.tario import read_tar_images

NEAR_DUP_BITS = 10  # the --near-dup-bits default


def stored(data: bytes) -> bytes:
    """What the pipeline hashes: img2dataset's keep_ratio resize to 256, JPEG."""
    from img2dataset.resizer import Resizer

    resizer = Resizer(image_size=256, resize_mode="keep_ratio", resize_only_if_bigger=False)
    image, *_, error = resizer(io.BytesIO(data))
    assert error is None
    return image


def copies(image: Image.Image) -> dict[str, bytes]:
    w, h = image.size
    return {
        "reencoded": to_jpeg(image, 50),
        "resized": to_jpeg(image.resize((w // 2, h // 2))),
        "cropped": to_jpeg(image.crop((w * 3 // 100, h * 3 // 100, w - w * 3 // 100, h - h * 3 // 100))),
        "brighter": to_jpeg(ImageEnhance.Brightness(image).enhance(1.2)),
    }


def ranked_items(hashes: list[int], seed: int = 0) -> list[tuple[str, int, tuple[int, str]]]:
    """(key, hash, preference) with seeded pixel counts: ties and non-ties in the ranking."""
    rng = random.Random(seed)
    return [(f"{i:05d}", value, preference(rng.choice([100, 200, 300]), 100, f"{i:05d}"))
            for i, value in enumerate(hashes)]


def test_near_duplicates_of_real_images_recall_and_precision():
    originals = real_images(40)
    hashes: list[int] = []
    origin_of: list[int] = []
    for index, (_, image) in enumerate(originals):
        for data in [to_jpeg(image), *copies(image).values()]:
            hashes.append(phash_bytes(stored(data)))
            origin_of.append(index)
    truth = {(i, j) for i in range(len(hashes)) for j in range(i + 1, len(hashes))
             if origin_of[i] == origin_of[j]}
    found = set(brute_force_pairs(hashes, NEAR_DUP_BITS))  # what pHash at 10 bits calls near
    items = ranked_items(hashes)
    check_marks(items, near_duplicate_marks(items, NearDupConfig()), NEAR_DUP_BITS, 0.99)
    true_positives = len(found & truth)
    recall, precision = true_positives / len(truth), true_positives / max(1, len(found))
    print(f"near-dup @ {NEAR_DUP_BITS} bits on {len(originals)} real images x 5 versions: "
          f"recall {recall:.3f}, precision {precision:.3f}")
    assert recall >= 0.9
    assert precision >= 0.97
    # copies of each original end up attached to it: everything within a group of copies
    by_origin = defaultdict(set)
    for i, j in found & truth:
        by_origin[origin_of[i]].update((i, j))
    assert len(by_origin) >= 0.9 * len(originals)


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=4, max_value=10), st.integers(min_value=0, max_value=2**31))
def test_lsh_search_keeps_the_pairwise_keeper_rule(bits, seed):
    """Random hashes with planted near copies and exact repeats: every pair within 4 bits is
    found (each round of 5 disjoint bands has a clean one), so the marks equal the brute-force
    keeper rule; farther planted pairs may be missed, never invented."""
    rng = random.Random(seed)
    hashes = [rng.getrandbits(64) for _ in range(60)]
    for _ in range(30):
        base = rng.choice(hashes)
        hashes.append(base ^ sum(1 << f for f in rng.sample(range(64), rng.randint(0, 4))))
    hashes += [rng.choice(hashes) for _ in range(5)]
    items = ranked_items(hashes, seed)
    assert near_duplicate_marks(items, NearDupConfig(max_bits=bits)) == pairwise_marks(items, bits)
    for _ in range(20):
        base = rng.choice(hashes)
        hashes.append(base ^ sum(1 << f for f in rng.sample(range(64), rng.randint(5, bits + 2))))
    items = ranked_items(hashes, seed)
    check_marks(items, near_duplicate_marks(items, NearDupConfig(max_bits=bits)), bits, 0.9)


def check_marks(items: list, found: dict[str, str], bits: int, agreement: float) -> None:
    """Precision 1.0 (every keeper is better ranked and within ``bits``) and at least
    ``agreement`` of the brute-force keeper rule's marks."""
    by_key = {key: (value, pref) for key, value, pref in items}
    for key, keeper in found.items():
        assert (by_key[key][0] ^ by_key[keeper][0]).bit_count() <= bits
        assert by_key[keeper][1] < by_key[key][1]
    truth = pairwise_marks(items, bits)
    assert sum(found.get(k) == v for k, v in truth.items()) >= agreement * len(truth)


def clustered_hashes(rng: random.Random) -> list[int]:
    """A hot cluster (hashes within 3 bits of one centre, like blank or text-only images),
    many copies of one hash, and spread hashes."""
    centre = rng.getrandbits(64)
    cluster = [centre ^ sum(1 << f for f in rng.sample(range(64), rng.randint(1, 3))) for _ in range(300)]
    return cluster + [centre] * 40 + [rng.getrandbits(64) for _ in range(200)]


def test_crowded_keys_are_split_to_the_bound():
    """With a small bound the hot cluster's keys are split (in rounds, the last one to all
    bits): no group exceeds the bound, and the marks still follow the pairwise rule."""
    hashes = clustered_hashes(random.Random(3))
    items = ranked_items(hashes, 3)
    config = NearDupConfig(group_bound=60)
    stats: dict[str, int] = {}
    splits: dict = {}
    marks = near_duplicate_marks(items, config, stats, splits)
    assert splits and stats["max_group"] <= 60
    check_marks(items, marks, NEAR_DUP_BITS, 0.99)
    assert set(marks) == set(pairwise_marks(items, NEAR_DUP_BITS))  # none left unmarked
    distinct = np.unique(np.array(hashes, dtype=np.uint64))
    assert any(bits < 0 for bits in splits.values())  # the cluster survived the bit splits
    for table in (0, 7):  # the vectorised keys are lsh_key's
        more, keyed, _, _ = table_keys(distinct, table, config)
        assert [(table, int(m), int(k)) for m, k in zip(more, keyed)] == \
            [lsh_key(int(value), table, config, splits) for value in distinct]


@pytest.mark.integration
def test_near_duplicates_beam_job_equals_the_pure_driver():
    """The Beam composite (real pipeline, with salted same-hash groups and split keys at a
    small bound) gives the pure driver's marks."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    hashes = clustered_hashes(random.Random(5))
    items = ranked_items(hashes, 5)
    config = NearDupConfig(group_bound=60)
    expected = [(key, ("near", keeper)) for key, keeper in near_duplicate_marks(items, config).items()]
    with beam.Pipeline("DirectRunner") as pipeline:
        marks = (pipeline
                 | beam.Create([(to_hex(value), Ranked(pref, key)) for key, value, pref in items])
                 | NearDuplicates(config))
        assert_that(marks, equal_to(expected))


def test_phash_equals_imagehash():
    """Our matrix-product pHash gives imagehash's bits on real images, their greyscale and
    resized versions, flat images and a gradient."""
    import imagehash

    def reference(image: Image.Image) -> int:
        bits = imagehash.phash(image.convert("L"), hash_size=8).hash.flatten()
        return int("".join("1" if b else "0" for b in bits), 2)

    images = [image for _, image in real_images(40)]
    images += [image.resize((256, 181)) for image in images[:20]] + [i.convert("L") for i in images[:20]]
    images += [Image.new("RGB", (90, 70), color) for color in ("white", "black", (10, 200, 30))]
    images.append(Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (64, 1))))
    values = [phash_image(image) for image in images]
    assert values == [reference(image) for image in images]
    assert len(set(values)) >= 40 and phash_image(Image.new("L", (8, 8), 255)) == 1 << 63


def test_faiss_equals_brute_force():
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, 3000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 3000, dtype=np.uint64)
    hashes[10] = hashes[20] ^ np.uint64(0b1011)
    hashes[30] = hashes[40] ^ np.uint64(1 << 63)
    assert faiss_pairs(hashes, 4) == brute_force_pairs(hashes, 4) and (10, 20) in faiss_pairs(hashes, 4)


def test_keeper_rule_is_deterministic():
    members = [(preference(100, 100, "0003"), "0003"), (preference(200, 100, "0009"), "0009"),
               (preference(200, 100, "0005"), "0005")]
    assert exact_duplicates(members) == [("0009", "0005"), ("0003", "0005")]
    assert exact_duplicates(list(reversed(members))) == exact_duplicates(members)


def test_basic_filters():
    config = FilterConfig(min_bytes=5000)
    ok = {"caption": "a red car", "original_width": 400, "original_height": 300, "original_bytes": 9000}
    assert filter_reason(ok, config) is None
    assert filter_reason({**ok, "caption": "car"}, config) == "caption_words"
    assert filter_reason({**ok, "caption": "a b c"}, config) == "caption_chars"
    assert filter_reason({**ok, "original_height": 150}, config) == "min_side"
    assert filter_reason({**ok, "original_width": 1300}, config) == "aspect_ratio"
    assert filter_reason({**ok, "original_bytes": 10}, config) == "min_bytes"
    assert filter_reason({**ok, "original_width": 9000, "original_height": 9000}, config) == "max_pixels"


def test_header_checks_bound_pixels_before_decoding():
    def status(data: bytes, max_pixels: int = 40_000_000) -> tuple[str, str | None]:
        done = process_image(data, ResizeConfig(max_pixels=max_pixels))
        return done.status, done.error

    state, error = status(png_header_bomb(30000, 30000))
    assert state == "filtered:max_pixels" and error is not None and "pixels" in error
    image = to_jpeg(real_images(1)[0][1])
    assert status(image)[0] == "success"
    assert not jpeg_is_truncated(image) and jpeg_is_truncated(image[: len(image) // 2])
    assert status(image[: len(image) // 2])[0] == "failed_to_resize"
    assert status(b"<html>")[0] == "failed_to_resize"
    big = Image.new("L", (5000, 5000))
    buffer = io.BytesIO()
    big.save(buffer, "PNG")
    assert status(buffer.getvalue(), 20_000_000) == (
        "filtered:max_pixels", "5000x5000 = 25000000 pixels exceeds --max-pixels 20000000")


def test_retry_after_parsing():
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 10) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_tar_reader_matches_tarfile(tmp_path, fmt):
    """The header scan that reads kept images gives tarfile's members: pax (webdataset's
    download tars, float mtimes), GNU long names, ustar prefixes; it fails on a cut tar."""
    deep = ("d" * 80 if fmt == tarfile.USTAR_FORMAT else "a" * 130) + "/k1"
    members = [(deep + ".jpg", b"x" * 700), ("k2.jpg", b"y" * 512), ("k2.txt", b"t"),
               ("k3.jpg", b""), ("k4.json", b"{}"), ("k5.jpg", bytes(range(256)) * 9)]
    path = tmp_path / "t.tar"
    with tarfile.open(path, "w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1795760958.599
            tar.addfile(info, io.BytesIO(data))

    def reference(suffix: str, wanted: set[str] | None = None) -> dict[str, bytes]:
        with tarfile.open(path) as tar:
            return {m.name[: -len(suffix) - 1]: tar.extractfile(m).read() for m in tar  # type: ignore[union-attr]
                    if m.name.endswith("." + suffix)
                    and (wanted is None or m.name[: -len(suffix) - 1] in wanted)}

    for suffix in ("jpg", "txt", "json"):
        assert read_tar_images(str(path), suffix) == reference(suffix)
    assert read_tar_images(str(path), "jpg", {"k2", "k5"}) == reference("jpg", {"k2", "k5"})
    assert len(read_tar_images(str(path), "jpg")) == 4
    cut = tmp_path / "cut.tar"
    cut.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="cut.tar"):
        read_tar_images(str(cut), "jpg")
