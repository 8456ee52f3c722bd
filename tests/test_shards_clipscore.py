"""CLIP-score filtering in `wit shards` with a checkpoint trained in the test: every scored
sample's clip_score (Parquet and .json) equals the cosine similarity that `wit eval`'s model
gives its stored image and caption, the --clip-top-fraction keeps exactly the best rows
(ties kept), the rest are filtered:clip_score, and report.html shows the histogram."""

from __future__ import annotations

import json
import math
import tarfile

import apache_beam as beam
import pandas as pd
import pytest
import torch
from apache_beam.testing.util import assert_that, equal_to
from helpers.shards import TRUSTED, Server, served_rows, write_candidates
from helpers.tinyclip import train_tiny_checkpoint

from pipeline.cli import main as wit
from pipeline.shards.clipscore import ClipFilter, ClipFilterConfig, clip_reason, quantize
from training.clip import preprocess
from training.clip.checkpoint import load_model

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    return train_tiny_checkpoint(tmp_path_factory.mktemp("clip"))


def _shards(candidates, out, *extra):
    return ["shards", "--candidates", str(candidates), "--out", str(out), "--allow-network",
            TRUSTED, "--processes", "1", "--threads", "4", "--image-size", "64",
            "--download-shard-size", "4", "--samples-per-shard", "3", *extra]


def test_clip_top_fraction_end_to_end(checkpoint, tmp_path):
    server = Server()
    try:
        candidates = write_candidates(tmp_path / "candidates", served_rows(server, 8))
        out = tmp_path / "out"
        assert wit(_shards(candidates, out, "--clip-filter", str(checkpoint),
                           "--clip-top-fraction", "0.5", "--clip-batch-size", "3")) == 0
    finally:
        server.close()
    shards = out / "shards"
    rows = pd.concat([pd.read_parquet(p) for p in sorted(shards.glob("*.parquet"))])
    scored = rows[rows["clip_score"].notna()]
    # the 8 downloads (one of them twice, deduplicated after scoring) are scored; the 404 is not
    assert len(scored) == 9 and rows[rows["status"] == "failed_to_download"]["clip_score"].isna().all()
    passed = scored[scored["status"] != "filtered:clip_score"]
    assert len(passed) >= math.ceil(0.5 * len(scored))  # ties with the cut are kept
    assert passed["clip_score"].min() > scored[scored["status"] == "filtered:clip_score"]["clip_score"].max()
    assert (passed["status"].str.startswith("success") | passed["status"].str.startswith("duplicate_of")).all()

    # the stored score is the cosine similarity `wit eval`'s model gives the stored sample
    model, tokenizer = load_model(str(checkpoint))
    size, kept_json = model.cfg.image_size, {}
    for tar_path in sorted(shards.glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, payload in members.items():
            if not name.endswith(".json"):
                continue
            record = json.loads(payload)
            kept_json[record["key"]] = record["clip_score"]
            image = preprocess.image_tensor(members[name.replace(".json", ".jpg")], size)
            with torch.no_grad():
                expected = float(model.encode_image(image[None]) @ model.encode_text(
                    tokenizer.encode([record["caption"]], model.cfg.context_length)).T)
            assert record["clip_score"] == pytest.approx(expected, abs=2e-6)
    kept = rows[rows["status"] == "success"].set_index("key")["clip_score"].to_dict()
    assert kept_json == kept and len(kept) >= 4

    manifest = json.loads((shards / "manifest.json").read_text())
    counts = manifest["counts"]
    assert counts["after_decontamination"] == 9 and counts["after_clip_filter"] == len(passed)
    assert manifest["filtered"]["clip_score"] == 9 - len(passed)
    assert manifest["config"]["clip_filter"]["top_fraction"] == 0.5
    assert sum(manifest["histograms"]["clip_score"]) == 9
    assert sum(manifest["histograms"]["clip_score_kept"]) == len(kept)
    assert "CLIP score (image-caption cosine), scored samples" in (shards / "report.html").read_text()


def test_min_clip_score_in_a_beam_pipeline():
    clip = ClipFilterConfig("unused.pt", min_score=0.25)
    records = [{"key": str(i), "status": status, "clip_score": score}
               for i, (status, score) in enumerate(
                   [("success", 0.3), ("success", 0.25), ("success", 0.249999),
                    ("filtered:min_side", 0.1), ("success", None)])]
    with beam.Pipeline() as p:
        result = (p | beam.Create(records) | ClipFilter(clip)
                  | beam.Map(lambda r: (r["key"], r["status"])))
        assert_that(result, equal_to([("0", "success"), ("1", "success"),
                                      ("2", "filtered:clip_score"), ("3", "filtered:min_side"),
                                      ("4", "success")]))
    assert "< --min-clip-score 0.25" in clip_reason(records[2], clip, None)
    assert clip_reason(records[0], ClipFilterConfig("x", top_fraction=0.1), quantize(0.31)) is not None


def test_clip_options_are_checked_before_any_download(checkpoint, tmp_path, capsys):
    candidates = write_candidates(tmp_path / "candidates",
                                  [{"url": "http://127.0.0.2:9/a.jpg", "text": "a cat on a mat"}])
    assert wit(_shards(candidates, tmp_path / "a", "--min-clip-score", "0.2")) == 1
    assert "need --clip-filter" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert wit(_shards(candidates, tmp_path / "b", "--clip-filter", str(bad))) == 1
    err = capsys.readouterr().err
    assert "bad.pt" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b" / "shards" / "_work" / "round0").exists()
    with pytest.raises(SystemExit) as exc:
        wit(_shards(candidates, tmp_path / "c", "--clip-filter", str(checkpoint),
                    "--clip-top-fraction", "0"))
    assert exc.value.code == 2
