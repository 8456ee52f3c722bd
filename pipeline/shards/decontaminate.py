"""Decontamination against evaluation images.

The eval sets are small (thousands of images): their pHashes are computed once on the
launcher, passed to the Beam job as a side input (broadcast to every worker) and put in a
faiss binary index once per worker. A training image within ``max_bits`` of any eval image
is marked ``contaminated``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.core.errors import InputError
from pipeline.core.images import decoding, open_image
from pipeline.shards.phash import phash_image, to_faiss_codes

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"}


def eval_image_paths(folders: list[str]) -> list[Path]:
    paths: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.is_dir():
            raise InputError(f"--eval-images {folder}: not a folder")
        # regular files only: a FIFO named x.jpg would block the read forever
        paths.extend(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    return sorted(set(paths))


def hash_eval_images(folders: list[str], max_pixels: int) -> tuple[list[int], list[str]]:
    """(hashes, paths) of every readable image under ``folders``; unreadable ones are
    skipped and returned in the second list (reported in the manifest). Opened through
    :mod:`pipeline.core.images`: browser formats only, bounded before decoding."""
    hashes: list[int] = []
    skipped: list[str] = []
    for path in eval_image_paths(folders):
        try:
            with open_image(path.read_bytes(), max_pixels, "--max-pixels").image as image:
                image.draft("L", (128, 128))
                with decoding(image):
                    hashes.append(phash_image(image))
        except Exception as exc:  # noqa: BLE001 - one bad eval file must not stop the job
            skipped.append(f"{path}: {exc}")
    return hashes, skipped


class EvalIndex:
    """Nearest-eval-image lookups over a faiss binary index."""

    def __init__(self, hashes: list[int]):
        import faiss

        self.size = len(hashes)
        self.index = faiss.IndexBinaryFlat(64)
        if hashes:
            self.index.add(to_faiss_codes(hashes))

    def nearest_distance(self, values: list[int]) -> np.ndarray:
        """Hamming distance from each value to its nearest eval hash (65 when none)."""
        if not self.size or not values:
            return np.full(len(values), 65, dtype=np.int64)
        distances, _ = self.index.search(to_faiss_codes(values), 1)
        return distances[:, 0].astype(np.int64)
