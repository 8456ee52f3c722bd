"""DataComp's "basic" and LAION's filters as pure functions over a sample's metadata.

Each returns the reason (the suffix of ``filtered:<reason>``) of the first rule a sample
breaks, or None. Caption rules need no image, so the downloader applies them before it
fetches anything (no bandwidth spent on a sample that would be dropped anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FilterConfig:
    min_words: int = 2
    min_chars: int = 5
    min_side: int = 200
    max_aspect: float = 3.0
    max_pixels: int = 40_000_000
    min_bytes: int = 5000


def caption_reason(caption: str | None, config: FilterConfig) -> str | None:
    text = (caption or "").strip()
    if len(text.split()) < config.min_words:
        return "caption_words"
    if len(text) < config.min_chars:
        return "caption_chars"
    return None


def image_reason(width: int | None, height: int | None, num_bytes: int | None,
                 config: FilterConfig) -> str | None:
    """Rules on the *original* image: its size in pixels and in bytes."""
    if not width or not height:
        return "unknown_size"
    if min(width, height) < config.min_side:
        return "min_side"
    if max(width, height) / min(width, height) > config.max_aspect:
        return "aspect_ratio"
    if width * height > config.max_pixels:
        return "max_pixels"
    if num_bytes is not None and num_bytes < config.min_bytes:
        return "min_bytes"
    return None


def filter_reason(sample: Mapping[str, Any], config: FilterConfig) -> str | None:
    return caption_reason(sample.get("caption"), config) or image_reason(
        sample.get("original_width"), sample.get("original_height"),
        sample.get("original_bytes"), config)
