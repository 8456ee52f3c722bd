"""Downstream of ``wit crawl --worldwide``: the trainer's caption tokenizer is a byte-level
BPE trained on the shards' captions, so a worldwide dataset trains it on every script. On
the five-language fixture captions (tests/data/worldwide) it encodes and decodes every
caption exactly (lower-cased, NFC) and learns merges inside the non-Latin scripts too."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

from training.clip.tokenizer import train_tokenizer

DATA = Path(__file__).parent / "data" / "worldwide"


def test_tokenizer_learns_every_script() -> None:
    rows = [json.loads(line) for line in
            (DATA / "captions.jsonl").read_text(encoding="utf-8").splitlines()]
    captions = [r["caption"] for r in rows]
    tokenizer = train_tokenizer(captions, vocab_size=1000)
    for lang in ("en", "de", "ja", "zh", "th"):
        texts = [r["caption"] for r in rows if f"/{lang}/" in r["url"]]
        ids = tokenizer.encode(texts, context_length=77)
        for text, row in zip(texts, ids.tolist()):
            decoded = tokenizer.decode(row).strip()
            assert decoded == unicodedata.normalize("NFC", text).lower(), (lang, text)
            tokens = [i for i in row if i not in tokenizer.special_ids]
            # merges learned: fewer tokens than UTF-8 bytes, in every script
            assert len(tokens) < len(text.encode("utf-8")), (lang, text)
