"""Evaluation of a checkpoint: zero-shot classification (class names x prompt templates ->
averaged text embeddings), a linear probe (logistic regression on frozen image features,
regularisation chosen on a validation split) and image<->text retrieval Recall@K."""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import fsspec
import numpy as np
import torch
import torch.nn.functional as F

from pipeline.core.errors import InputError
from pipeline.core.progress import Progress
from training import shard_reading
from training.clip import preprocess
from training.clip.model import CLIP
from training.clip.tokenizer import CaptionTokenizer

# CLIP's own first template plus a few of its ImageNet ensemble (Radford et al. 2021, A.1)
DEFAULT_TEMPLATES = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a photo of the {}.",
    "a drawing of a {}.",
    "a close-up photo of a {}.",
    "a rendering of a {}.",
    "a {}.",
)
PROBE_CS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


CLASSNAME_FILES = ("classnames.txt", "classnames.csv")


@dataclass
class LabelledSet:
    paths: list[str]
    labels: np.ndarray  # class index per image
    classes: list[str]  # class label (folder name / table label) per index
    source: str
    # display name per index, what zero-shot prompts say (default: the label, "_" -> " ")
    names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.names:
            self.names = [display_name(c) for c in self.classes]


def display_name(label: str) -> str:
    """``golden_retriever`` -> ``golden retriever``."""
    return " ".join(label.replace("_", " ").split())


def read_classnames(path: str, classes: Sequence[str]) -> list[str]:
    """Display names for ``classes`` from ``path``: a ``.csv`` with columns ``label,name``
    (labels it lacks keep their default name), or a text file with one name per line in the
    order of the sorted labels (as ``classes``)."""
    import pandas as pd
    try:
        if path.endswith(".csv"):
            table = pd.read_csv(path, dtype=str, keep_default_na=False)
        else:
            with fsspec.open(path, "rt", encoding="utf-8") as f:
                lines = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read class names: {exc}") from exc
    if not path.endswith(".csv"):
        if len(lines) != len(classes):
            raise InputError(f"{path}: {len(lines)} class names for {len(classes)} classes "
                             f"(one per line, in the order {list(classes)[:3]}...)")
        return lines
    if not {"label", "name"} <= set(table.columns):
        raise InputError(f"{path}: expected columns label,name (has {list(table.columns)})")
    given = dict(zip(table["label"].str.strip(), table["name"].str.strip()))
    unknown = sorted(set(given) - set(classes))
    if unknown:
        raise InputError(f"{path}: labels not in the set: {unknown[:5]}")
    return [given.get(c) or display_name(c) for c in classes]


# ---------------------------------------------------------------- labelled sets

def load_labelled_set(source: str, classnames: str | None = None) -> LabelledSet:
    """An image folder per class (``DIR/CLASS/*.png``) or a CSV/Parquet table with columns
    ``path`` and ``label`` (paths relative to the table's folder unless absolute). Display
    names come from ``classnames`` (see ``read_classnames``), else from ``DIR/classnames.txt``
    or ``DIR/classnames.csv`` of a folder set, else from the labels."""
    dataset = _load_labelled_set(source)
    if classnames is None:
        fs, _, (root,) = fsspec.get_fs_token_paths(source)
        found = [f"{root}/{n}" for n in CLASSNAME_FILES if fs.isdir(root) and fs.isfile(f"{root}/{n}")]
        classnames = _with_protocol(fs, found[0]) if found else None
    if classnames is not None:
        dataset.names = read_classnames(classnames, dataset.classes)
    return dataset


def _load_labelled_set(source: str) -> LabelledSet:
    fs, _, (root,) = fsspec.get_fs_token_paths(source)
    if fs.isdir(root):
        classes = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)
                         if fs.isdir(p))
        paths, labels = [], []
        for index, name in enumerate(classes):
            # regular files only: a FIFO or device named x.jpg would block or never end
            entries = sorted(fs.ls(f"{root}/{name}", detail=True), key=lambda e: e["name"])
            for entry in entries:
                p = entry["name"]
                if entry.get("type") == "file" and p.lower().endswith(IMAGE_SUFFIXES) \
                        and _regular(fs, p):
                    paths.append(_with_protocol(fs, p))
                    labels.append(index)
        if not paths:
            raise InputError(f"{source}: no images in class folders (expected DIR/CLASS/IMAGE)")
        return LabelledSet(paths, np.asarray(labels), classes, source)
    import pandas as pd
    try:
        if source.endswith(".parquet"):
            table = pd.read_parquet(source)
        else:
            table = pd.read_csv(source, dtype={"label": str})
    except (OSError, ValueError) as exc:
        raise InputError(f"{source}: not a readable CSV/Parquet table: {exc}") from exc
    missing = {"path", "label"} - set(table.columns)
    if missing:
        raise InputError(f"{source}: missing column(s) {sorted(missing)} (has {list(table.columns)})")
    base = source.rsplit("/", 1)[0] if "/" in source else "."
    names = table["label"].astype(str).tolist()
    classes = sorted(set(names))
    class_index = {c: i for i, c in enumerate(classes)}
    paths = [p if "://" in p or os.path.isabs(p) else f"{base}/{p}" for p in table["path"].astype(str)]
    return LabelledSet(paths, np.asarray([class_index[n] for n in names]), classes, source)


def _with_protocol(fs: fsspec.AbstractFileSystem, path: str) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return path if protocol in ("file", "local") else fs.unstrip_protocol(path)


def _regular(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """False for a local path that is not a regular file (a FIFO, a socket, a device):
    fsspec's local listing calls those files too."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol not in ("file", "local"):
        return True
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def _read_local(path: str) -> bytes:
    """A local file's bytes, opened without blocking and refused unless it is a regular
    file: a FIFO named x.jpg would block ``open`` (no writer) or ``read`` (no end)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(f"{path}: cannot read image: not a regular file")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def _read_image(path: str, size: int) -> torch.Tensor:
    try:
        if "://" in path and not path.startswith("file://"):
            with fsspec.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = _read_local(path.removeprefix("file://"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read image: {preprocess.image_error_text(exc)}") from None
    try:
        return preprocess.image_tensor(raw, size)
    except Exception as exc:  # noqa: BLE001 - the decoder's ImageError, or anything else
        raise InputError(f"{path}: cannot read image: {preprocess.image_error_text(exc)}") from None


# ---------------------------------------------------------------- features

def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


@torch.no_grad()
def image_features(model: CLIP, images: Iterable[torch.Tensor], device: torch.device,
                   total: int | None = None) -> torch.Tensor:
    """L2-normalised features of uint8 image batches, on the CPU."""
    out = []
    progress = Progress("image features", total=total, unit="img")
    for batch in images:
        out.append(model.encode_image(batch.to(device)).float().cpu())
        progress.update(len(batch))
    progress.close()
    return torch.cat(out)


@torch.no_grad()
def text_features(model: CLIP, tokenizer: CaptionTokenizer, texts: Sequence[str],
                  device: torch.device, batch_size: int = 256) -> torch.Tensor:
    out = []
    for batch in _batches(texts, batch_size):
        tokens = tokenizer.encode(list(batch), model.cfg.context_length).to(device)
        out.append(model.encode_text(tokens).float().cpu())
    return torch.cat(out)


def labelled_features(model: CLIP, dataset: LabelledSet, device: torch.device,
                      batch_size: int = 256) -> torch.Tensor:
    size = model.cfg.image_size
    batches = (torch.stack([_read_image(p, size) for p in chunk])
               for chunk in _batches(dataset.paths, batch_size))
    return image_features(model, batches, device, total=len(dataset.paths))


# ---------------------------------------------------------------- zero-shot

def zero_shot_classifier(model: CLIP, tokenizer: CaptionTokenizer, classes: Sequence[str],
                         templates: Sequence[str], device: torch.device) -> torch.Tensor:
    """[classes, dim]: per class, the normalised mean of its normalised prompt embeddings."""
    weights = []
    for name in classes:
        prompts = [t.format(name) for t in templates]
        weights.append(F.normalize(text_features(model, tokenizer, prompts, device).mean(0), dim=0))
    return torch.stack(weights)


def classification_metrics(logits: torch.Tensor, labels: np.ndarray, classes: Sequence[str]
                           ) -> dict:
    target = torch.as_tensor(labels)
    k = min(5, logits.shape[1])
    top = logits.topk(k, dim=1).indices
    correct1 = top[:, 0] == target
    correctk = (top == target[:, None]).any(dim=1)
    per_class = {name: float(correct1[target == i].float().mean()) if (target == i).any() else None
                 for i, name in enumerate(classes)}
    recalls = [v for v in per_class.values() if v is not None]
    return {"top1": float(correct1.float().mean()), f"top{k}": float(correctk.float().mean()),
            # balanced accuracy over the classes present (DataComp's mean_per_class_recall)
            "mean_per_class_recall": sum(recalls) / len(recalls),
            "per_class": per_class, "n": int(len(target)), "classes": len(classes),
            "chance": 1 / len(classes)}


def zero_shot(model: CLIP, tokenizer: CaptionTokenizer, dataset: LabelledSet,
              device: torch.device, templates: Sequence[str] = DEFAULT_TEMPLATES,
              features: torch.Tensor | None = None) -> dict:
    for t in templates:
        if "{}" not in t:
            raise InputError(f"prompt template {t!r} has no '{{}}' for the class name")
    feats = features if features is not None else labelled_features(model, dataset, device)
    classifier = zero_shot_classifier(model, tokenizer, dataset.names, templates, device)
    result = classification_metrics(feats @ classifier.T, dataset.labels, dataset.classes)
    result["templates"] = len(templates)
    result["class_names"] = list(dataset.names)  # what the prompts called each class
    return result


# ---------------------------------------------------------------- linear probe

def linear_probe(features: np.ndarray, labels: np.ndarray, seed: int = 0,
                 cs: Sequence[float] = PROBE_CS,
                 test_fraction: float = 0.2, val_fraction: float = 0.2) -> dict:
    """Logistic regression on frozen, standardised features: a stratified
    train/validation/test split,
    the inverse regularisation C with the best validation accuracy, refit on
    train+validation, accuracy on the test split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(labels)
    if (counts[counts > 0] < 3).any():
        raise InputError("linear probe: every class needs at least 3 images (train/val/test)")
    x_rest, x_test, y_rest, y_test = train_test_split(
        features, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
        stratify=y_rest)

    def fit(c: float, x: np.ndarray, y: np.ndarray) -> Pipeline:
        # standardised features: L-BFGS converges in far fewer iterations
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000)).fit(x, y)

    sweep = {str(c): float(fit(c, x_train, y_train).score(x_val, y_val)) for c in cs}
    best = max(cs, key=lambda c: (sweep[str(c)], -c))  # ties: the stronger regularisation
    final = fit(best, x_rest, y_rest)
    return {"accuracy": float(final.score(x_test, y_test)), "best_C": best,
            "validation_sweep": sweep, "train": len(y_train), "validation": len(y_val),
            "test": len(y_test), "chance": 1 / len(set(labels.tolist()))}


# ---------------------------------------------------------------- retrieval

def recall_at_k(image_feats: torch.Tensor, text_feats: torch.Tensor, captions: Sequence[str],
                ks: Sequence[int] = (1, 5, 10), text_image: Sequence[int] | None = None,
                chunk: int = 1024) -> dict:
    """Image->text and text->image Recall@K. Text t is a caption of image ``text_image[t]``
    (default: pair i is image i with caption i; a retrieval benchmark gives an image
    several captions).

    Text->image uses the standard per-caption ground truth: only its own image answers a
    caption, even when another image has the same caption. Image->text counts any caption
    that is the same string as one of the image's own: identical captions have identical
    embeddings, so those candidates tie and their order is arbitrary. Similarities are
    computed a chunk of queries at a time: memory grows with one chunk, not images x texts."""
    owner = torch.as_tensor(range(len(captions)) if text_image is None else text_image)
    group_of = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    group = torch.tensor([group_of[c] for c in captions])
    images = image_feats.shape[0]
    # [image, caption string]: the strings that count as a right answer for the image
    answers = torch.zeros(images, len(group_of), dtype=torch.bool)
    answers[owner, group] = True
    out: dict = {"n": images, "texts": len(captions)}
    hits = {(d, k): 0 for d in ("image_to_text", "text_to_image") for k in ks}
    for start in range(0, images, chunk):
        top = (image_feats[start:start + chunk] @ text_feats.T).topk(
            min(max(ks), len(captions)), dim=1).indices
        right = answers[start:start + chunk].gather(1, group[top])
        for k in ks:
            hits["image_to_text", k] += int(right[:, :k].any(dim=1).sum())
    for start in range(0, len(captions), chunk):
        top = (text_feats[start:start + chunk] @ image_feats.T).topk(
            min(max(ks), images), dim=1).indices
        right = top == owner[start:start + chunk, None]
        for k in ks:
            hits["text_to_image", k] += int(right[:, :k].any(dim=1).sum())
    for (direction, k), n in hits.items():
        out[f"{direction}_R@{k}"] = n / (images if direction == "image_to_text" else len(captions))
    return out


def retrieval(model: CLIP, tokenizer: CaptionTokenizer, shards: list[str], device: torch.device,
              limit: int = 1000, batch_size: int = 256) -> dict:
    size = model.cfg.image_size
    caps: list[str] = []
    skipped: Counter[str] = Counter()

    def images() -> Iterator[torch.Tensor]:
        chunk: list[torch.Tensor] = []
        for raw, text, key in shard_reading.iterate_pairs(shards, limit, skipped):
            try:
                tensor = preprocess.image_tensor(raw, size)
            except Exception as exc:  # noqa: BLE001 - Pillow raises many types for hostile bytes
                raise InputError(f"sample {key} of --retrieval {_spec(shards)}: undecodable "
                                 f"image: {preprocess.image_error_text(exc)}") from None
            chunk.append(tensor)
            caps.append(text)
            if len(chunk) == batch_size:
                yield torch.stack(chunk)
                chunk = []
        if chunk:
            yield torch.stack(chunk)

    feats = image_features(model, images(), device, total=limit)
    if not caps:
        raise InputError(f"{shards}: no (image, caption) samples for retrieval")
    result = recall_at_k(feats, text_features(model, tokenizer, caps, device), caps)
    return {**result, "skipped": dict(skipped)}


def _spec(shards: list[str]) -> str:
    return shards[0] if len(shards) == 1 else f"{shards[0]} ... ({len(shards)} shards)"


def read_templates(path: str) -> list[str]:
    with fsspec.open(path, "rt", encoding="utf-8") as f:
        templates = [line.strip() for line in f if line.strip() and not line.startswith("#")]
    if not templates:
        raise InputError(f"{path}: no prompt templates (one per line, with {{}})")
    return templates
