"""Nearest images to a text, an uploaded image or an indexed sample: the checkpoint's model,
the faiss index and the embedding arrays of ``wit index``, loaded once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.browse.dataset import Mapping
from pipeline.browse.embed import Encoder
from pipeline.browse.index_choice import RERANK_FACTOR, apply_search_params, rerank
from pipeline.core.errors import InputError

MAX_K = 500


def clamp_k(k: int) -> int:
    return max(1, min(MAX_K, k))


def nearest(index: Any, query: np.ndarray, k: int, vectors: np.ndarray | None = None
            ) -> list[tuple[int, float]]:
    """(index id, cosine similarity) of the ``k`` nearest vectors to one query vector. With
    ``vectors`` (an IVF-PQ index's exact embeddings), ``RERANK_FACTOR * k`` candidates of
    the compressed codes are re-ranked by their exact similarity."""
    k = min(clamp_k(k), index.ntotal)
    query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
    if vectors is not None:
        _, ids = index.search(query, min(index.ntotal, k * RERANK_FACTOR))
        return rerank(ids[0], vectors, query[0], k)
    scores, ids = index.search(query, k)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


class Searcher:
    def __init__(self, folder: str | Path, device: str = "cpu"):
        import faiss

        self.folder = Path(folder)
        info_path = self.folder / "index.json"
        if not info_path.is_file():
            raise InputError(f"{self.folder}: no index.json: not a complete `wit index` output "
                             "(run or resume `wit index`)")
        self.info = json.loads(info_path.read_text())
        self.index = faiss.read_index(str(self.folder / "image.faiss"))
        apply_search_params(self.index, self.info)
        self.images = np.load(self.folder / "image.npy", mmap_mode="r")
        self.mapping = Mapping(self.folder / "mapping.parquet")
        if not (self.index.ntotal == len(self.images) == self.mapping.file.metadata.num_rows
                == self.info["count"]):
            raise InputError(f"{self.folder}: image.faiss, image.npy and mapping.parquet "
                             "disagree on the sample count: rebuild with `wit index`")
        self.encoder = Encoder(self.info["checkpoint"], device)
        # compressed codes give approximate scores: re-rank their candidates exactly
        self.exact = self.images if self.info["kind"] == "ivfpq" else None

    def _results(self, hits: list[tuple[int, float]]) -> list[dict[str, Any]]:
        rows = self.mapping.rows([i for i, _ in hits])
        return [{"shard": r["shard"], "key": r["key"], "url": r["url"], "caption": r["caption"],
                 "score": round(score, 6), "index_id": i}
                for (i, score), r in zip(hits, rows)]

    def by_text(self, text: str, k: int) -> list[dict[str, Any]]:
        return self._results(nearest(self.index, self.encoder.texts([text])[0], k, self.exact))

    def by_image(self, data: bytes, k: int) -> list[dict[str, Any]]:
        """Raises ``ValueError`` naming what is wrong for bytes that are not an image."""
        try:
            tensor = self.encoder.image_tensor(data)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad upload
            raise ValueError(f"not a readable image: {' '.join(str(exc).split())[:200]}") from None
        return self._results(nearest(self.index, self.encoder.images([tensor])[0], k, self.exact))

    def like(self, shard: str, key: str, k: int) -> list[dict[str, Any]] | None:
        """Nearest images to an indexed sample's image; None when it is not indexed."""
        i = self.mapping.find(shard, key)
        if i is None:
            return None
        return self._results(nearest(self.index, np.asarray(self.images[i]), k, self.exact))
