"""Byte-level BPE (HF ``tokenizers``): trained on the shards' captions or loaded from a file
(a ``tokenizer.json`` saved by this project or any HF tokenizer, or a GPT-2/CLIP style
``vocab.json`` with ``merges.txt`` beside it). Captions are lower-cased and NFC-normalised
like CLIP's; every encoding is ``<start_of_text> tokens <end_of_text>`` padded with
``<pad>`` to the context length, truncated so the end token is always kept. Text that spells a
special token (a caption containing ``<pad>``) is encoded as plain text, never as the special
token: only the wrapping above produces special ids.

A text is cut to :func:`max_chars` characters *before* it is tokenized (and to
``TRAIN_CHARS`` when training a vocabulary): BPE's cost grows with the text, and only the
first ``context_length - 2`` tokens are kept anyway, so a 20 MB caption in a shard costs what
a short one does. The cut is far past where the kept tokens end for any real caption (a token
would have to span 32 characters on average to reach it), so the ids are those of the whole
text."""

from __future__ import annotations

import os
from collections.abc import Iterable

import fsspec
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from pipeline.core.errors import InputError

PAD, SOT, EOT = "<pad>", "<start_of_text>", "<end_of_text>"
# A trained vocabulary numbers them in this order (pad 0, end 1, start 2). The end token must
# not be id 2: transformers' CLIPTextTransformer treats eos_token_id == 2 as a legacy config and
# pools at the largest token id instead of at the end token (see training/export_hf.py).
SPECIAL_TOKENS = [PAD, EOT, SOT]
# characters of a text kept before tokenizing: CHARS_PER_TOKEN x context length, at least
# MIN_CHARS (see the module docstring)
CHARS_PER_TOKEN = 32
MIN_CHARS = 1024
# characters of each caption a vocabulary is trained on
TRAIN_CHARS = 4096


def max_chars(context_length: int) -> int:
    """Characters of a text that :meth:`CaptionTokenizer.encode` reads."""
    return max(MIN_CHARS, CHARS_PER_TOKEN * context_length)


class CaptionTokenizer:
    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        # marks them special (skipped when decoding); adds those the vocabulary lacks
        tokenizer.add_special_tokens(SPECIAL_TOKENS)
        # caption text that spells any added token ("<pad>") is split like normal text
        tokenizer.encode_special_tokens = True
        ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        self.pad_id, self.eot_id, self.sot_id = (int(i or 0) for i in ids)
        self.special_ids = frozenset(tokenizer.get_added_tokens_decoder())

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, texts: list[str], context_length: int) -> torch.Tensor:
        if context_length < 2:
            raise ValueError(f"context length {context_length}: the start and end tokens need 2")
        out = torch.full((len(texts), context_length), self.pad_id, dtype=torch.long)
        limit = max_chars(context_length)
        capped = [text[:limit] for text in texts]  # before tokenizing: see the module docstring
        for row, enc in enumerate(self.tokenizer.encode_batch(capped, add_special_tokens=False)):
            ids = [self.sot_id, *enc.ids[: context_length - 2], self.eot_id]
            out[row, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def to_json(self) -> str:
        return self.tokenizer.to_str()

    def save(self, path: str) -> None:
        from pipeline.core.fsio import atomic_write_bytes
        atomic_write_bytes(path, self.to_json().encode("utf-8"))

    @staticmethod
    def from_json(text: str) -> CaptionTokenizer:
        return CaptionTokenizer(Tokenizer.from_str(text))


def _new_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_tokenizer(captions: Iterable[str], vocab_size: int) -> CaptionTokenizer:
    """Learn a byte-level BPE of about ``vocab_size`` tokens (all 256 bytes always included,
    so any caption encodes) from ``captions``."""
    tok = _new_bpe()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator((caption[:TRAIN_CHARS] for caption in captions), trainer=trainer)
    return CaptionTokenizer(tok)


def load_tokenizer(path: str) -> CaptionTokenizer:
    """``tokenizer.json`` (HF format) or ``vocab.json`` (+ ``merges.txt`` in the same folder)."""
    try:
        with fsspec.open(path, "rt", encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read tokenizer file: {exc}") from exc
    try:
        if '"model"' in text:
            return CaptionTokenizer.from_json(text)
        merges = os.path.join(os.path.dirname(path), "merges.txt")
        tok = _new_bpe()
        tok.model = models.BPE.from_file(path, merges)
        return CaptionTokenizer(tok)
    except InputError:
        raise
    except Exception as exc:  # tokenizers raises plain Exceptions with its own messages
        raise InputError(f"{path}: not a tokenizer.json nor a vocab.json with merges.txt: {exc}") from exc
