"""Named model sizes in one place. ``tiny`` trains in seconds on a CPU (tests), ``small`` is a
laptop-GPU model and ``ViT-B-32`` is CLIP's (Radford et al. 2021, table 19)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ModelConfig:
        return ModelConfig(**d)


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
