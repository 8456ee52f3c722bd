"""Named model sizes in one place. ``tiny`` trains in seconds on a CPU (tests), ``small`` is a
laptop-GPU model and ``ViT-B-32`` is CLIP's (Radford et al. 2021, table 19)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from pipeline.core.errors import InputError


@dataclass(frozen=True)
class ModelConfig:
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    context_length: int
    text_width: int
    text_layers: int
    text_heads: int
    embed_dim: int
    # size a BPE vocabulary trained on the captions aims at; a loaded vocabulary sets its own
    vocab_size: int = 49408
    # "cls": the class token is the image feature (CLIP); "mean": mean over patch tokens
    pool: str = "cls"
    mlp_ratio: float = 4.0

    def __post_init__(self) -> None:
        check_config(self)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: Any) -> ModelConfig:
        """A config from a checkpoint's ``model_config``: every value checked
        (:func:`check_config`) before anything is built from it."""
        if not isinstance(d, dict):
            raise InputError(f"model config is a {type(d).__name__}, not a mapping")
        names = {f.name for f in fields(ModelConfig)}
        unknown = sorted(str(k) for k in d if k not in names)
        if unknown:
            raise InputError(f"model config has unknown keys {unknown[:5]}")
        required = {f.name for f in fields(ModelConfig) if f.name not in _DEFAULTED}
        missing = sorted(required - set(d))
        if missing:
            raise InputError(f"model config lacks {missing}")
        return ModelConfig(**d)


_DEFAULTED = ("vocab_size", "pool", "mlp_ratio")
# (low, high) of each whole-number field. Wide enough for any CLIP that fits a machine (ViT-G
# has width 1664, 48 layers; vocabularies stay under a million), narrow enough that no value
# asks for an absurd allocation before the parameter estimate below is even computed.
LIMITS: dict[str, tuple[int, int]] = {
    "image_size": (1, 8192), "patch_size": (1, 8192), "vision_width": (1, 16384),
    "vision_layers": (1, 256), "vision_heads": (1, 1024), "context_length": (2, 16384),
    "text_width": (1, 16384), "text_layers": (1, 256), "text_heads": (1, 1024),
    "embed_dim": (1, 16384), "vocab_size": (1, 4_194_304)}
MAX_PATCHES = 65_536  # (image_size / patch_size)^2: ViT-L/14 at 336 px has 576
MAX_MLP_RATIO = 16.0
# 20 billion parameters (80 GB in fp32): 8x ViT-G
MAX_PARAMETERS = 20_000_000_000


def check_config(cfg: ModelConfig) -> None:
    """Every value of ``cfg`` of the right type and in range, and the parts fitting together
    (patches tile the image, heads divide the widths); an :class:`InputError` naming the
    first that does not."""
    for name, (low, high) in LIMITS.items():
        value = getattr(cfg, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"model config {name}={value!r}: not a whole number")
        if not low <= value <= high:
            raise InputError(f"model config {name}={value}: outside [{low}, {high}]")
    if cfg.pool not in ("cls", "mean"):
        raise InputError(f"model config pool={cfg.pool!r}: expected 'cls' or 'mean'")
    ratio = cfg.mlp_ratio
    if (not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not math.isfinite(ratio)
            or not 0 < ratio <= MAX_MLP_RATIO):
        raise InputError(f"model config mlp_ratio={ratio!r}: not a number in (0, {MAX_MLP_RATIO:g}]")
    if min(int(cfg.vision_width * ratio), int(cfg.text_width * ratio)) < 1:
        raise InputError(f"model config mlp_ratio={ratio!r}: an MLP of no units")
    if cfg.image_size % cfg.patch_size:
        raise InputError(f"model config: image size {cfg.image_size} is not a multiple of patch "
                         f"size {cfg.patch_size}")
    if (cfg.image_size // cfg.patch_size) ** 2 > MAX_PATCHES:
        raise InputError(f"model config: {(cfg.image_size // cfg.patch_size) ** 2} patches per "
                         f"image (image size {cfg.image_size} / patch size {cfg.patch_size}, "
                         f"squared) > {MAX_PATCHES}")
    for tower in ("vision", "text"):
        width, heads = getattr(cfg, f"{tower}_width"), getattr(cfg, f"{tower}_heads")
        if width % heads:
            raise InputError(f"model config: {tower}_heads={heads} does not divide "
                             f"{tower}_width={width}")


def estimate_parameters(cfg: ModelConfig, vocab_size: int) -> int:
    """The parameters of a CLIP of ``cfg`` with a vocabulary of ``vocab_size``, computed
    without building it (equal to ``count_parameters(CLIP(cfg, vocab_size))``)."""
    def tower(width: int, layers: int) -> int:
        hidden = int(width * cfg.mlp_ratio)
        block = (4 * width  # two LayerNorms
                 + 3 * width * width + 3 * width  # qkv
                 + width * width + width  # out
                 + width * hidden + hidden + hidden * width + width)  # MLP
        return layers * block + 4 * width + width * cfg.embed_dim  # 2 LayerNorms, projection
    patches = (cfg.image_size // cfg.patch_size) ** 2
    vision = (tower(cfg.vision_width, cfg.vision_layers)
              + 3 * cfg.patch_size ** 2 * cfg.vision_width  # patch embedding
              + (patches + 2) * cfg.vision_width)  # positions and class token
    text = (tower(cfg.text_width, cfg.text_layers) - 2 * cfg.text_width  # one final LayerNorm
            + (vocab_size + cfg.context_length) * cfg.text_width)
    return vision + text + 1  # + logit scale


def check_size(cfg: ModelConfig, vocab_size: int) -> int:
    """The parameter count of ``cfg`` with ``vocab_size`` tokens, refused above
    ``MAX_PARAMETERS``: checked before any tensor is allocated."""
    if not isinstance(vocab_size, int) or not 1 <= vocab_size <= LIMITS["vocab_size"][1]:
        raise InputError(f"a vocabulary of {vocab_size} tokens: outside [1, "
                         f"{LIMITS['vocab_size'][1]}]")
    n = estimate_parameters(cfg, vocab_size)
    if n > MAX_PARAMETERS:
        raise InputError(f"model config asks for {n:,} parameters ({4 * n / 2**30:,.0f} GiB in "
                         f"fp32), more than the {MAX_PARAMETERS:,} this version builds")
    return n


CONFIGS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(image_size=32, patch_size=8, vision_width=64, vision_layers=2,
                        vision_heads=2, context_length=32, text_width=64, text_layers=2,
                        text_heads=2, embed_dim=64, vocab_size=1000),
    "small": ModelConfig(image_size=128, patch_size=16, vision_width=384, vision_layers=6,
                         vision_heads=6, context_length=77, text_width=256, text_layers=6,
                         text_heads=4, embed_dim=256, vocab_size=16384),
    "ViT-B-32": ModelConfig(image_size=224, patch_size=32, vision_width=768, vision_layers=12,
                            vision_heads=12, context_length=77, text_width=512, text_layers=12,
                            text_heads=8, embed_dim=512, vocab_size=49408),
}


def get_config(name: str, **overrides: Any) -> ModelConfig:
    if name not in CONFIGS:
        raise InputError(f"unknown model config {name!r}; choose one of {sorted(CONFIGS)}")
    return replace(CONFIGS[name], **{k: v for k, v in overrides.items() if v is not None})
