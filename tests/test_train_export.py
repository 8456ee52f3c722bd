"""`wit export --format hf`: transformers' CLIPModel, tokenizer and CLIPProcessor loaded from
the exported folder give the same embeddings as `wit eval` (the same functions) on real
images (OpenClipart PNGs with transparency, generated JPEGs of odd sizes and aspect ratios, a
palette PNG with a transparent colour) and captions, a `<pad>` caption and truncated ones
included; the tokenizer returns only what CLIPModel takes, and the folder names only classes
every supported transformers has."""

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
    """Generated shapes; JPEGs wide, tall, tiny and large enough for a reduced-scale decode;
    RGBA and LA PNGs with transparency and a palette PNG with a transparent index; plus
    OpenClipart PNGs (RGBA) where the system has them."""
    import numpy as np
    from PIL import Image

    paths = []
    for i, (image, _) in enumerate(shape_dataset(4, seed=3, size=48)):
        paths.append(str(tmp_path / f"shape{i}.png"))
        image.save(paths[-1])
    rng = np.random.default_rng(0)
    for i, (w, h) in enumerate([(640, 480), (97, 203), (1000, 31), (33, 32), (1600, 1200)]):
        noise = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
        paths.append(str(tmp_path / f"photo{i}.jpg"))
        Image.fromarray(noise).resize((w, h), Image.Resampling.BILINEAR).save(paths[-1], quality=90)
    rgba = rng.integers(0, 256, (60, 90, 4), dtype=np.uint8)
    rgba[:, :30, 3] = 0  # a fully transparent band over random colours
    for mode in ("RGBA", "LA"):
        paths.append(str(tmp_path / f"alpha_{mode}.png"))
        Image.fromarray(rgba).convert(mode).save(paths[-1])
    palette = Image.fromarray(rng.integers(0, 4, (70, 50), dtype=np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] * 64)
    paths.append(str(tmp_path / "palette.png"))
    palette.save(paths[-1], transparency=0)
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
    # a class every supported transformers has, and only the inputs CLIPModel takes
    tok_config = json.loads((out / "tokenizer_config.json").read_text())
    assert tok_config["tokenizer_class"] == "PreTrainedTokenizerFast" and "backend" not in tok_config
    assert set(hf_tok(CAPTIONS)) == {"input_ids", "attention_mask"}

    ctx = model.cfg.context_length
    ids = hf_tok(CAPTIONS, padding="max_length", truncation=True, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, tokenizer.encode(CAPTIONS, ctx))  # same ids, <pad> text included
    paths = _images(tmp_path)
    labelled = evaluate.LabelledSet(paths, torch.zeros(len(paths)).numpy(), ["x"], "test")
    device = torch.device("cpu")
    ours_image = evaluate.labelled_features(model, labelled, device)  # as `wit eval` computes
    ours_text = evaluate.text_features(model, tokenizer, CAPTIONS, device)
    # CLIPProcessor as a user calls it; the PIL backend (transformers picks torchvision's,
    # whose resize differs from PIL's, when torchvision is installed)
    processor = transformers.CLIPProcessor.from_pretrained(str(out), backend="pil")
    from PIL import Image
    images = [Image.open(p) for p in paths]
    with torch.no_grad():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        assert pixels.shape == (len(paths), 3, model.cfg.image_size, model.cfg.image_size)
        hf_image = _features(hf.get_image_features(pixel_values=pixels))
        hf_text = _features(hf.get_text_features(input_ids=ids))
        # the documented call, padding to the longest caption only: the same text features
        short = hf_tok(CAPTIONS, padding=True, truncation=True, return_tensors="pt")
        hf_short = _features(hf.get_text_features(**short))
        both = hf(**processor(text=CAPTIONS[:2], images=images[:2], padding=True,
                              return_tensors="pt"))
    per_image = (ours_image - hf_image).abs().amax(dim=1)
    diff = max(per_image.max().item(), (ours_text - hf_text).abs().max().item(),
               (ours_text - hf_short).abs().max().item())
    print(f"max abs difference: {diff:.3g} over {len(paths)} images, {len(CAPTIONS)} captions")
    assert diff <= 1e-5, {p.rsplit("/", 1)[-1]: round(d, 5) for p, d in zip(paths, per_image.tolist())}
    expected = ours_image[:2] @ ours_text[:2].T * model.logit_scale.exp()
    assert torch.allclose(both.logits_per_image, expected, atol=1e-3)


def test_long_captions_give_the_ids_of_the_whole_text(checkpoint, tmp_path):
    """Our tokenizer cuts a text before encoding it (training/clip/tokenizer.py); the exported
    one encodes the whole text and truncates: the same ids for long real captions."""
    from training.clip.tokenizer import max_chars

    out = tmp_path / "hf"
    assert wit(["export", "--checkpoint", str(checkpoint), "--out", str(out)]) == 0
    model, tokenizer = load_model(str(checkpoint))
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(out))
    ctx = model.cfg.context_length
    long = ["a red circle on white " * 500, "golden " * 3000 + "retriever", "<pad> " * 2000]
    assert all(len(text) > max_chars(ctx) for text in long)
    ids = hf_tok(long, padding="max_length", truncation=True, return_tensors="pt")["input_ids"]
    assert torch.equal(ids, tokenizer.encode(long, ctx))


def test_export_checks_the_transformers_version():
    from pipeline.core.errors import InputError
    from training.export_hf import check_transformers_version

    for version in ("5.21.0", "5.25.0", "6.0.0.dev0"):
        check_transformers_version(version)
    for version in ("4.45.2", "5.20.2", "5.0.0rc1", "garbage"):
        with pytest.raises(InputError, match=">= 5.21"):
            check_transformers_version(version)


def test_export_refuses_an_existing_folder(checkpoint, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    assert wit(["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "taken")]) == 1
    assert "exists" in capsys.readouterr().err
    assert wit(["--help"]) == 0 and "export" in capsys.readouterr().out
