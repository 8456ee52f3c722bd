"""Trainer and evaluation fixes against the reference behaviour: captions that spell special
tokens stay text and the text feature is pooled at the end token itself; text->image
Recall@K uses per-pair ground truth (two images captioned "logo"); zero-shot class names from
folder names and class-name files."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.tinyclip import train_tiny_checkpoint

from pipeline.cli import main as wit
from pipeline.core.errors import InputError
from training.clip.configs import get_config
from training.clip.model import CLIP
from training.clip.tokenizer import EOT, PAD, SOT, train_tokenizer
from training.evaluate import load_labelled_set, recall_at_k
from training.synthetic import draw_shape

CAPTIONS = ["a red circle", "a blue square on white", "a green triangle", "logo"] * 20


def test_captions_spelling_special_tokens_never_give_special_ids():
    tok = train_tokenizer(CAPTIONS, vocab_size=300)
    texts = [PAD, f"a {PAD} caption", f"{SOT} x {EOT}", f"{PAD}{PAD}{EOT}", "<PAD>"]
    ids = tok.encode(texts, context_length=32)
    specials = {tok.pad_id, tok.sot_id, tok.eot_id}
    for row, text in zip(ids.tolist(), texts):
        end = row.index(tok.eot_id)
        assert row[0] == tok.sot_id and set(row[end + 1:]) <= {tok.pad_id}
        assert not specials & set(row[1:end]), text  # the caption body is plain text
        assert tok.decode(row).replace(" ", "") == text.lower().replace(" ", "")
    assert tok.eot_id != 2  # see training/export_hf.py: transformers' legacy eos rule


def _pooled_by_hand(model: CLIP, tokens: torch.Tensor, at: list[int]) -> torch.Tensor:
    text = model.text
    x = text.token_embedding(tokens) + text.positional_embedding[: tokens.shape[1]]
    x = text.ln_final(text.transformer(x))
    return x[torch.arange(len(at)), torch.tensor(at)] @ text.proj


def test_text_feature_is_pooled_at_the_end_token():
    torch.manual_seed(0)
    tok = train_tokenizer(CAPTIONS, vocab_size=300)
    model = CLIP(get_config("tiny"), tok.vocab_size, tok.eot_id).eval()
    tokens = tok.encode([PAD, "a red circle"], 32)
    # a pad id inside the body (as the old tokenizer made of "<pad>"): the count of non-pad
    # tokens minus one would land before the end token
    tokens[1, 2] = tok.pad_id
    ends = [row.index(tok.eot_id) for row in tokens.tolist()]
    with torch.no_grad():
        got = model.encode_text(tokens, normalize=False)
        assert torch.allclose(got, _pooled_by_hand(model, tokens, ends), atol=1e-6)
        assert not torch.allclose(got[1], _pooled_by_hand(model, tokens, [0, ends[1] - 1])[1])


def test_text_to_image_recall_is_per_pair_for_two_logo_images():
    # images 0 and 1 are both captioned "logo"; caption 0 ranks image 1 first
    image = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    text = torch.tensor([[0.8, 0.6, 0.0], [0.8, 0.6, 0.0], [0.0, 0.0, 1.0]])
    recall = recall_at_k(image, text, ["logo", "logo", "a red circle"], ks=(1, 2))
    assert recall["text_to_image_R@1"] == pytest.approx(2 / 3)  # caption 0 retrieved image 1
    assert recall["text_to_image_R@2"] == 1.0
    # image->text: captions 0 and 1 tie (same string, same embedding): either is correct
    assert recall["image_to_text_R@1"] == 1.0


def _folder_set(root, labels):
    for label in labels:
        (root / label).mkdir(parents=True)
        draw_shape("red", "circle", size=16).save(root / label / "a.png")
    return root


def test_zero_shot_class_names_from_folders_and_files(tmp_path):
    root = _folder_set(tmp_path / "set", ["golden_retriever", "tabby__cat"])
    labelled = load_labelled_set(str(root))
    assert labelled.classes == ["golden_retriever", "tabby__cat"]
    assert labelled.names == ["golden retriever", "tabby cat"]
    (tmp_path / "names.txt").write_text("golden retriever dog\nTabby cat\n")
    assert load_labelled_set(str(root), str(tmp_path / "names.txt")).names == [
        "golden retriever dog", "Tabby cat"]
    (root / "classnames.csv").write_text("label,name\ntabby__cat,tabby\n")  # found beside
    assert load_labelled_set(str(root)).names == ["golden retriever", "tabby"]
    (tmp_path / "short.txt").write_text("one name\n")
    with pytest.raises(InputError, match="1 class names for 2 classes"):
        load_labelled_set(str(root), str(tmp_path / "short.txt"))
    (tmp_path / "unknown.csv").write_text("label,name\nzebra,zebra\n")
    with pytest.raises(InputError, match="labels not in the set"):
        load_labelled_set(str(root), str(tmp_path / "unknown.csv"))
    table = tmp_path / "table.csv"
    table.write_text("path,label\nset/golden_retriever/a.png,golden_retriever\n")
    assert load_labelled_set(str(table)).names == ["golden retriever"]


@pytest.mark.integration
def test_wit_eval_prompts_use_the_display_names(tmp_path):
    root = _folder_set(tmp_path / "set", ["red_circle", "blue_square"])
    checkpoint = train_tiny_checkpoint(tmp_path, steps=2)
    names = tmp_path / "names.csv"
    names.write_text("label,name\nblue_square,blue box\n")
    assert wit(["eval", "--checkpoint", str(checkpoint), "--zeroshot", str(root),
                "--classnames", str(names), "--templates", str(_templates(tmp_path)),
                "--out", str(tmp_path / "eval")]) == 0
    zeroshot = json.loads((tmp_path / "eval" / "eval.json").read_text())["zeroshot"]
    assert zeroshot["class_names"] == ["blue box", "red circle"]
    assert set(zeroshot["per_class"]) == {"blue_square", "red_circle"}


def _templates(tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text("a photo of a {}.\n")
    return path
