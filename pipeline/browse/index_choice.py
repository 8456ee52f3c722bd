"""Which faiss index a set of vectors gets, and building it: exact search (flat) while it is
cheap, a graph (HNSW) for mid-size sets that fit in memory at full precision, and IVF-PQ
(compressed codes) above. Vectors are L2-normalised, so inner product = cosine similarity."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

KINDS = ("auto", "flat", "hnsw", "ivfpq")
FLAT_BELOW = 100_000  # exact search of 100k x 512 floats: ~20 ms per query on one core
HNSW_BELOW = 2_000_000  # HNSW keeps full vectors (+ ~256 B of graph each): 2M x 512 ~ 4.6 GB
MAX_TRAIN = 200_000  # vectors IVF-PQ trains on (a sample): bounded memory and time


@dataclass(frozen=True)
class IndexSpec:
    kind: str  # flat | hnsw | ivfpq
    factory: str  # faiss.index_factory string
    params: dict[str, Any] = field(default_factory=dict)  # search/build parameters

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pq_subquantizers(dim: int) -> int:
    """Bytes per PQ code: one per 8 dimensions when that divides ``dim``, else the largest
    divisor of ``dim`` not above dim/8 (faiss requires m | dim)."""
    target = max(1, dim // 8)
    return next(m for m in range(target, 0, -1) if dim % m == 0)


def choose_index(n: int, dim: int, kind: str = "auto", flat_below: int = FLAT_BELOW,
                 hnsw_below: int = HNSW_BELOW) -> IndexSpec:
    """The index for ``n`` vectors of ``dim``: ``kind`` auto picks flat below ``flat_below``,
    HNSW below ``hnsw_below``, IVF-PQ above."""
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r} (choose {', '.join(KINDS)})")
    if kind == "auto":
        kind = "flat" if n < flat_below else "hnsw" if n < hnsw_below else "ivfpq"
    if kind == "flat":
        return IndexSpec("flat", "Flat", {})
    if kind == "hnsw":
        m = 32
        return IndexSpec("hnsw", f"HNSW{m},Flat", {"M": m, "efConstruction": 80, "efSearch": 64})
    # nlist: a power of two near 4 sqrt(n), with at least 39 training points per list (faiss'
    # minimum for k-means)
    wanted = min(4 * np.sqrt(n), 65536, max(1, min(n, MAX_TRAIN) // 39))
    nlist = 1 << int(np.floor(np.log2(max(1.0, wanted))))
    m = _pq_subquantizers(dim)
    return IndexSpec("ivfpq", f"IVF{nlist},PQ{m}", {
        "nlist": nlist, "m": m, "nbits": 8, "nprobe": min(nlist, 32),
        "train_size": min(n, MAX_TRAIN)})


def build_index(spec: IndexSpec, dim: int, n: int,
                chunks: Callable[[], Iterator[np.ndarray]],
                train_sample: Callable[[int], np.ndarray] | None = None) -> Any:
    """A faiss index of ``spec`` over the ``n`` vectors ``chunks()`` yields in id order
    (float32 ``[rows, dim]``); IVF-PQ trains first on ``train_sample(size)``."""
    import faiss

    index: Any = faiss.index_factory(dim, spec.factory, faiss.METRIC_INNER_PRODUCT)
    if spec.kind == "hnsw":
        index.hnsw.efConstruction = spec.params["efConstruction"]
    if spec.kind == "ivfpq":
        # index_factory turns on polysemous training (10x the training time), which only
        # serves Hamming-threshold search: not used here
        ivfpq: Any = faiss.downcast_index(index)
        ivfpq.do_polysemous_training = False
        assert train_sample is not None
        index.train(np.ascontiguousarray(train_sample(spec.params["train_size"]), dtype=np.float32))
    for chunk in chunks():
        index.add(np.ascontiguousarray(chunk, dtype=np.float32))
    if index.ntotal != n:
        raise RuntimeError(f"index holds {index.ntotal} vectors, {n} expected")
    apply_search_params(index, spec)
    return index


def apply_search_params(index: Any, spec: IndexSpec | dict[str, Any]) -> None:
    """Search-time parameters (efSearch, nprobe), which faiss does not store in the file."""
    import faiss

    kind = spec.kind if isinstance(spec, IndexSpec) else spec["kind"]
    params = spec.params if isinstance(spec, IndexSpec) else spec["params"]
    if kind == "hnsw":
        hnsw: Any = faiss.downcast_index(index)
        hnsw.hnsw.efSearch = params["efSearch"]
    elif kind == "ivfpq":
        faiss.extract_index_ivf(index).nprobe = params["nprobe"]


RERANK_FACTOR = 10  # approximate candidates per result that exact scores re-rank (IVF-PQ)


def rerank(ids: np.ndarray, vectors: np.ndarray, query: np.ndarray, k: int
           ) -> list[tuple[int, float]]:
    """The ``k`` best of candidate ``ids`` (-1 = none) by exact inner product with ``query``;
    ``vectors`` may be a memory map (only the candidates' rows are read)."""
    ids = np.asarray([i for i in ids if i >= 0], dtype=np.int64)
    if not len(ids):
        return []
    order = np.argsort(ids)  # rows read in file order
    scores = np.empty(len(ids), dtype=np.float32)
    scores[order] = np.asarray(vectors[ids[order]], dtype=np.float32) @ query.astype(np.float32)
    best = np.argsort(-scores, kind="stable")[:k]
    return [(int(ids[j]), float(scores[j])) for j in best]


def recall_at_k(exact: np.ndarray, approx: np.ndarray, k: int) -> float:
    """Mean fraction of each query's exact top ``k`` ids found in its approximate top ``k``."""
    hits = [len(set(e[:k].tolist()) & set(a[:k].tolist())) for e, a in zip(exact, approx)]
    return float(np.mean(hits)) / k if hits else 0.0
