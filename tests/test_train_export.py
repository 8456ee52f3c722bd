"""`wit export --format hf`: transformers' CLIPModel and tokenizer loaded from the exported
folder give the same embeddings as `wit eval` (the same functions) on real images and
captions, a `<pad>` caption and a truncated one included."""

from __future__ import annotations

import glob
import json

import pytest
import torch
import torch.nn.functional as F
from helpers.tinyclip import train_tiny_checkpoint

from pipeline.cli import main as wit
from training import evaluate
from training.clip.checkpoint import load_model
from training.synthetic import shape_dataset

pytestmark = pytest.mark.integration

transformers = pytest.importorskip("transformers", reason="the hf extra: pip install -e '.[hf]'")
CAPTIONS = ["a red circle on white", "a <pad> caption", "<end_of_text> logo <start_of_text>",
            "golden retriever " * 30, "LOGO", "a photo of a frog."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.set_num_threads(1)
    return train_tiny_checkpoint(tmp_path_factory.mktemp("export"))


def _images(tmp_path):
    """Generated shapes, plus OpenClipart PNGs where the system has them."""
    paths = []
    for i, (image, _) in enumerate(shape_dataset(4, seed=3, size=48)):
        paths.append(str(tmp_path / f"shape{i}.png"))
        image.save(paths[-1])
    return paths + sorted(glob.glob("/usr/share/openclipart/png/animals/*.png"))[:12]


def _features(output):
    # transformers 5 returns a model output, earlier versions a tensor
    return F.normalize(getattr(output, "pooler_output", output), dim=-1)


def test_hf_export_gives_the_same_embeddings(checkpoint, tmp_path):
    out = tmp_path / "hf"
    assert wit(["export", "--checkpoint", str(checkpoint), "--format", "hf", "--out", str(out)]) == 0
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    model, tokenizer = load_model(str(checkpoint))
    hf = transformers.CLIPModel.from_pretrained(str(out)).eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    assert json.loads((out / "config.json").read_text())["text_config"]["eos_token_id"] == tokenizer.eot_id

    ctx = model.cfg.context_length
    ids = hf_tok(CAPTIONS, padding="max_length", truncation=True, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, tokenizer.encode(CAPTIONS, ctx))  # same ids, <pad> text included
    paths = _images(tmp_path)
    labelled = evaluate.LabelledSet(paths, torch.zeros(len(paths)).numpy(), ["x"], "test")
    device = torch.device("cpu")
    ours_image = evaluate.labelled_features(model, labelled, device)  # as `wit eval` computes
    ours_text = evaluate.text_features(model, tokenizer, CAPTIONS, device)
    pixels = torch.stack([evaluate._read_image(p, model.cfg.image_size) for p in paths])
    with torch.no_grad():
        hf_image = _features(hf.get_image_features(pixel_values=model.normalize_images(pixels)))
        hf_text = _features(hf.get_text_features(input_ids=ids))
        # padding to the longest caption only: the same text features
        short = hf_tok(CAPTIONS, padding=True, truncation=True, return_tensors="pt")
        hf_short = _features(hf.get_text_features(**short))
    diff = max((ours_image - hf_image).abs().max().item(), (ours_text - hf_text).abs().max().item(),
               (ours_text - hf_short).abs().max().item())
    print(f"max abs difference: {diff:.3g} over {len(paths)} images, {len(CAPTIONS)} captions")
    assert diff <= 1e-4
    processor = transformers.CLIPImageProcessor.from_pretrained(str(out))
    from PIL import Image
    size = model.cfg.image_size
    assert processor(Image.open(paths[0]), return_tensors="pt")["pixel_values"].shape == (1, 3, size, size)


def test_export_refuses_an_existing_folder(checkpoint, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert wit(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "taken")]) == 1
    assert "exists" in capsys.readouterr().err
    assert wit(["--help"]) == 0 and "export" in capsys.readouterr().out
