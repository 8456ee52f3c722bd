"""The offset index of a WebDataset tar: where each image member's data lies, so a sample's
image is served by one seek and read, without extracting the tar."""

from __future__ import annotations

import tarfile
from typing import NamedTuple

IMAGE_FORMATS = ("jpg", "jpeg", "png", "webp")
CONTENT_TYPES = {"jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png",
                 "webp": "image/webp"}


class Member(NamedTuple):
    offset: int  # of the data, from the start of the tar
    size: int
    image_format: str


def image_offsets(path: str) -> dict[str, Member]:
    """``{key: Member}`` of the image members (``KEY.jpg`` etc.) of the local tar ``path``;
    one pass over the headers (the data is skipped, not read)."""
    members: dict[str, Member] = {}
    with tarfile.open(path, mode="r:") as tar:
        for info in tar:
            if not info.isfile():
                continue
            key, dot, ext = info.name.rpartition(".")
            if dot and ext.lower() in IMAGE_FORMATS:
                members[key] = Member(info.offset_data, info.size, ext.lower())
    return members


def read_member(path: str, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset`` of ``path`` (an image member's data)."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise ValueError(f"{path}: truncated: {size} bytes expected at offset {offset}, "
                         f"{len(data)} read (the tar changed since `wit index`?)")
    return data
