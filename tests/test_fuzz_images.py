"""Property-based fuzzing (hypothesis) of every entry point that decodes strangers' image
bytes: the download's decoder and resizer, training's sample decoding, evaluation's image
loading, pHash and the decontamination hashes. Inputs are arbitrary bytes and mutations
(byte edits, cuts, splices) of small real files of every allowed format and of formats PIL
reads but we refuse (EPS, PDF, PSD, PPM...). Each entry point returns a result or raises the
project's own error (:class:`ImageError`, an :class:`InputError`), nothing else, and never
runs an external program (an audit hook records every process start while they run)."""

from __future__ import annotations

import contextlib
import io
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from helpers.images import sample_files
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pipeline.core.errors import InputError
from pipeline.core.images import ImageError
from pipeline.shards.decontaminate import hash_eval_images
from pipeline.shards.imaging import ResizeConfig, process_image
from pipeline.shards.phash import phash_bytes
from schemas import status as status_names
from training.clip.preprocess import decode_image, image_tensor
from training.evaluate import _read_image
from training.sample_decoding import random_resized_crop

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PROCESS_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                  "os.fork", "os.forkpty", "pty.spawn")
_started: list[str] = []
_watching = False


def _audit(event: str, args: tuple) -> None:
    if _watching and event in PROCESS_EVENTS:
        _started.append(f"{event}: {args[:2]!r}")


sys.addaudithook(_audit)


@contextlib.contextmanager
def no_program_runs() -> Iterator[None]:
    global _watching
    _started.clear()
    _watching = True
    try:
        yield
    finally:
        _watching = False
    assert _started == [], _started


SEEDS = sample_files()


def _mutate(seed: bytes, edits: list[tuple[int, int]], cut: int | None, splice: bytes) -> bytes:
    data = bytearray(seed)
    for position, value in edits:
        data[position % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    return bytes(data) + splice


image_bytes = st.one_of(
    st.binary(max_size=512),
    st.builds(_mutate, st.sampled_from(SEEDS),
              st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=6),
              st.none() | st.integers(0, 1 << 16), st.binary(max_size=32)),
    st.sampled_from(SEEDS),
)
REFUSED = {status_names.FAILED_TO_RESIZE, *(status_names.filtered(r) for r in (
    status_names.MAX_PIXELS, status_names.ASPECT_RATIO, status_names.DECODE_BUDGET))}


@FUZZ
@given(image_bytes)
def test_download_decoder_gives_a_status(data):
    with no_program_runs():
        done = process_image(data, ResizeConfig(image_size=24, max_pixels=4_000_000))
    if done.status == status_names.SUCCESS:
        assert done.data and done.width and done.height and done.phash is not None
        assert Image.open(io.BytesIO(done.data)).size == (done.width, done.height)
    else:
        assert done.status in REFUSED and done.error and " at 0x" not in done.error, done


@FUZZ
@given(image_bytes, st.integers(0, 1 << 30))
def test_training_sample_decoding_gives_an_image_or_image_error(data, seed):
    with no_program_runs():
        try:
            image = decode_image(data, 16)
        except ImageError as exc:
            assert exc.reason and str(exc)
            return
        crop = random_resized_crop(image, 16, random.Random(seed))
        tensor = image_tensor(data, 16)
    assert image.mode == "RGB" and crop.size == (16, 16) and tuple(tensor.shape) == (3, 16, 16)


@FUZZ
@given(image_bytes)
def test_eval_image_loading_gives_a_tensor_or_input_error(data):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.jpg"
        path.write_bytes(data)
        with no_program_runs():
            try:
                tensor = _read_image(str(path), 16)
            except InputError as exc:
                assert str(path) in str(exc)
                return
    assert tuple(tensor.shape) == (3, 16, 16)


@FUZZ
@given(image_bytes)
def test_phash_gives_a_hash_or_image_error(data):
    with no_program_runs():
        try:
            value = phash_bytes(data)
        except ImageError:
            return
    assert 0 <= value < 1 << 64


@FUZZ
@given(image_bytes)
def test_decontamination_hashes_or_skips_every_file(data):
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "eval.png").write_bytes(data)
        with no_program_runs():
            hashes, skipped = hash_eval_images([folder], 4_000_000)
    assert len(hashes) + len(skipped) == 1
