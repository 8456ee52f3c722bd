"""Downstream of ``wit crawl --worldwide``: `wit shards` with the language rule off carries
the candidates' ``language`` column into the samples, and the trainer's caption tokenizer,
a byte-level BPE trained on the shards' captions, learns every script: on the five-language
fixture captions (tests/data/worldwide) it encodes and decodes every caption exactly
(lower-cased, NFC) and learns merges inside the non-Latin scripts too. `wit shards
--worldwide` is the one switch for that stage."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

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


@pytest.mark.integration
@pytest.mark.usefixtures("beam_temp_files")
@pytest.mark.parametrize(("argv", "expected"), [
    # the one switch: any language, words of no-space scripts counted per character
    (["--worldwide"], {"en": "success", "de": "success", "ja": "success", "zh": "success",
                       "th": "success"}),
    # by hand, as before --worldwide existed
    (["--languages", "any", "--min-words", "1"],
     {"en": "success", "de": "success", "ja": "success", "zh": "success", "th": "success"}),
    # the language rule off alone: the Japanese, Chinese and Thai captions are one
    # whitespace "word" each and fail DataComp's 3-word minimum
    (["--languages", "any"], {"en": "success", "de": "success", "ja": "filtered:caption_words",
                              "zh": "filtered:caption_words", "th": "filtered:caption_words"}),
], ids=["worldwide", "by-hand", "languages-any-only"])
def test_shards_keep_the_language_column(tmp_path, argv, expected) -> None:
    """Worldwide candidates (captions in five languages, each with its `language`) through
    `wit shards --worldwide` (or its options by hand): every image is kept, and its sample
    row carries the candidate's language; without the word rule for no-space scripts the
    Japanese, Chinese and Thai captions are filtered."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq
    from helpers.shards import TRUSTED, Server, real_images, to_jpeg

    from pipeline.cli import main
    from schemas.candidates import CANDIDATES

    rows = [json.loads(line) for line in
            (DATA / "captions.jsonl").read_text(encoding="utf-8").splitlines()][:5]
    site = Server()
    candidates = []
    for i, ((_, image), row) in enumerate(zip(real_images(5), rows)):
        site.routes[f"/img/{i}.jpg"] = to_jpeg(image)
        lang = row["url"].split("/")[3]
        candidates.append({"uid": f"uid{i}", "url": site.url(f"/img/{i}.jpg"),
                           "text": row["caption"], "texts": [row["caption"]], "page_url": None,
                           "source": "urls", "matched_entry_ids": [0], "language": lang})
    folder = tmp_path / "candidates"
    folder.mkdir()
    pq.write_table(pa.Table.from_pylist(candidates, schema=CANDIDATES),
                   folder / "part-00000.parquet")
    out = tmp_path / "out"
    try:
        assert main(["shards", "--candidates", str(folder), "--out", str(out),
                     "--allow-network", TRUSTED, "--processes", "1", *argv]) == 0
    finally:
        site.close()
    df = pd.concat(pd.read_parquet(p) for p in sorted((out / "shards").glob("*.parquet")))
    assert dict(zip(df["language"], df["status"])) == expected
    kept = df[df["status"] == "success"]
    assert dict(zip(kept["caption"], kept["language"])) == {
        c["text"]: c["language"] for c in candidates if expected[c["language"]] == "success"}
    if argv == ["--worldwide"]:
        manifest = json.loads((out / "shards" / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["config"]["filter_changes"] == {
            "languages": {"value": [], "preset": ["en"]},
            "script_words": {"value": True, "preset": False}}
