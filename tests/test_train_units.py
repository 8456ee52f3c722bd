"""Units of the trainer that need no shards: loss, temperature, tokenizer, optimizer groups,
schedule, transforms, shuffle buffer, and the tiny model overfitting one batch."""

from __future__ import annotations

import math
import random
import re

import pytest
import torch

from training import batch_stream, sample_decoding
from training.clip import preprocess
from training.clip.configs import get_config
from training.clip.model import CLIP, LOGIT_SCALE_MAX, count_parameters
from training.clip.tokenizer import load_tokenizer, train_tokenizer
from training.evaluate import recall_at_k
from training.loss import clip_loss
from training.optim import cosine_with_warmup, param_groups
from training.synthetic import shape_dataset


@pytest.fixture(autouse=True)
def one_thread():
    # the CI machine is shared: intra-op threads spinning against other processes make
    # these tiny models ~10x slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


CAPTIONS = [f"a {c} {s} on a {b} background" for c in ("red", "green", "blue", "yellow")
            for s in ("circle", "square") for b in ("white", "gray")]


def test_loss_equals_hand_computed_reference():
    img = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    txt = torch.tensor([[0.8, 0.6], [0.0, 1.0], [1.0, 0.0]])
    scale = 2.0
    logits = [[scale * sum(a * b for a, b in zip(i, t)) for t in txt.tolist()] for i in img.tolist()]

    def xent(rows):  # mean of -log softmax(row)[i]
        return sum(math.log(sum(math.exp(v) for v in row)) - row[i] for i, row in enumerate(rows)) / len(rows)

    columns = [list(col) for col in zip(*logits)]
    expected = (xent(logits) + xent(columns)) / 2
    got = clip_loss(img, txt, torch.tensor(scale))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_temperature_initialised_and_clamped():
    model = CLIP(get_config("tiny"), vocab_size=300)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    _, _, scale = model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.ones(2, 5, dtype=torch.long))
    assert scale.item() == pytest.approx(100.0)
    model.clamp_logit_scale()
    assert model.logit_scale.item() == pytest.approx(LOGIT_SCALE_MAX)


def test_tokenizer_trains_saves_and_loads(tmp_path):
    tok = train_tokenizer(CAPTIONS * 10, vocab_size=300)
    ids = tok.encode(["A Red circle", "x" * 500], context_length=16)
    assert ids.shape == (2, 16)
    assert ids[0, 0] == tok.sot_id and tok.eot_id in ids[0].tolist()
    assert tok.decode(ids[0].tolist()).strip() == "a red circle"  # lower-cased like CLIP
    assert ids[1, -1] == tok.eot_id  # truncation keeps the end token
    tok.save(str(tmp_path / "tokenizer.json"))
    again = load_tokenizer(str(tmp_path / "tokenizer.json"))
    assert torch.equal(again.encode(CAPTIONS, 16), tok.encode(CAPTIONS, 16))
    # a GPT-2/CLIP style vocab.json + merges.txt
    tok.tokenizer.model.save(str(tmp_path))
    from_vocab = load_tokenizer(str(tmp_path / "vocab.json"))
    assert from_vocab.decode(from_vocab.encode(["a blue square"], 16)[0].tolist()).strip() == "a blue square"


def test_bad_tokenizer_file_is_a_clear_error(tmp_path):
    from pipeline.core.errors import InputError
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": 3}')
    with pytest.raises(InputError, match="tokenizer.json"):
        load_tokenizer(str(bad))


def test_weight_decay_only_on_matrices():
    model = CLIP(get_config("tiny"), vocab_size=300)
    decay, no_decay = param_groups(model, 0.2)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert "logit_scale" in no_decay_names
    assert all(p.ndim >= 2 for p in decay["params"])
    assert any(n.endswith("ln_1.weight") for n in no_decay_names)
    assert no_decay["weight_decay"] == 0 and decay["weight_decay"] == 0.2


def test_cosine_schedule_with_warmup():
    values = [cosine_with_warmup(s, warmup=10, total=100) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert values[10] == pytest.approx(1.0) and values[55] == pytest.approx(0.5)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))


def test_transforms_shapes_and_determinism():
    img, _ = next(shape_dataset(1, size=80))
    a = sample_decoding.random_resized_crop(img, 32, random.Random(3))
    b = sample_decoding.random_resized_crop(img, 32, random.Random(3))
    assert a.size == (32, 32) and a.tobytes() == b.tobytes()
    t = preprocess.to_uint8_tensor(preprocess.center_crop(img.resize((90, 60)), 32))
    assert t.shape == (3, 32, 32) and t.dtype == torch.uint8


def test_shuffle_buffer_is_a_seeded_permutation():
    out = list(batch_stream.shuffled(iter(range(1000)), 100, random.Random(1), initial=50))
    assert sorted(out) == list(range(1000)) and out != list(range(1000))
    assert out == list(batch_stream.shuffled(iter(range(1000)), 100, random.Random(1), initial=50))


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    model = CLIP(get_config("tiny"), vocab_size=300)
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    tokens = torch.randint(3, 300, (4, 10))
    grads = []
    for enabled in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enabled)
        clip_loss(*model(images, tokens)).backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    pairs = list(shape_dataset(16, seed=1, size=48))[::2]  # 8 distinct captions
    captions = [c for _, c in pairs]
    assert len(set(captions)) == 8
    tok = train_tokenizer(captions * 20, vocab_size=300)
    cfg = get_config("tiny")
    images = torch.stack([preprocess.to_uint8_tensor(preprocess.center_crop(img, cfg.image_size)) for img, _ in pairs])
    tokens = tok.encode(captions, cfg.context_length)
    model = CLIP(cfg, tok.vocab_size, tok.eot_id)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    for _ in range(120):
        loss = clip_loss(*model(images, tokens))
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.clamp_logit_scale()
    assert loss.item() < 0.05
    model.eval()
    with torch.no_grad():
        recall = recall_at_k(model.encode_image(images), model.encode_text(tokens), captions)
    assert recall["image_to_text_R@1"] == 1.0 and recall["text_to_image_R@1"] == 1.0


def test_labelled_tables_parquet_and_errors(tmp_path):
    import pandas as pd

    from pipeline.core.errors import InputError
    from training.evaluate import load_labelled_set

    pd.DataFrame({"path": ["a.png", "/abs/b.png", "c.png"], "label": ["cat", "dog", "cat"]}
                 ).to_parquet(tmp_path / "set.parquet")
    labelled = load_labelled_set(str(tmp_path / "set.parquet"))
    assert labelled.classes == ["cat", "dog"] and labelled.labels.tolist() == [0, 1, 0]
    assert labelled.paths == [f"{tmp_path}/a.png", "/abs/b.png", f"{tmp_path}/c.png"]
    (tmp_path / "bad.csv").write_text("file,label\nx.png,cat\n")
    with pytest.raises(InputError, match=r"bad.csv: missing column\(s\) \['path'\]"):
        load_labelled_set(str(tmp_path / "bad.csv"))


def test_named_configs_and_vit_b_32_sizes():
    from pipeline.core.errors import InputError
    cfg = get_config("ViT-B-32")  # CLIP's (Radford et al. 2021)
    assert (cfg.image_size, cfg.patch_size, cfg.vision_width, cfg.vision_layers) == (224, 32, 768, 12)
    assert (cfg.text_width, cfg.text_layers, cfg.context_length, cfg.embed_dim) == (512, 12, 77, 512)
    assert cfg.vocab_size == 49408 and cfg.pool == "cls"
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = CLIP(cfg, cfg.vocab_size)
        small = CLIP(get_config("small"), get_config("small").vocab_size)
    assert count_parameters(model) == 151_277_313  # exactly open_clip's ViT-B-32
    assert 15e6 < count_parameters(small) < 25e6
    assert get_config("tiny", image_size=48).image_size == 48
    with pytest.raises(InputError, match="unknown model config 'ViT-H-14'"):
        get_config("ViT-H-14")


def test_config_values_checked_and_parameters_estimated():
    """Every config value is checked on construction (named configs with overrides and
    checkpoints' configs alike), and the parameter count computed without building the model
    equals the built model's, so a checkpoint's config is sized before anything is allocated."""
    from dataclasses import replace

    from pipeline.core.errors import InputError
    from training.clip.configs import (
        CONFIGS,
        MAX_PARAMETERS,
        ModelConfig,
        check_size,
        estimate_parameters,
    )

    for cfg in CONFIGS.values():
        for variant in (cfg, replace(cfg, mlp_ratio=2.5, pool="mean", patch_size=cfg.patch_size // 2)):
            for vocab in (300, 49408):
                with torch.device("meta"):
                    model = CLIP(variant, vocab)
                assert estimate_parameters(variant, vocab) == count_parameters(model)
    tiny = get_config("tiny").to_dict()
    for change, message in [({"image_size": 33}, "not a multiple of patch"),
                            ({"context_length": 1}, "context_length=1"),
                            ({"vision_width": 2**20}, "vision_width=1048576"),
                            ({"text_heads": 3}, "does not divide"),
                            ({"embed_dim": 64.0}, "not a whole number"),
                            ({"mlp_ratio": float("inf")}, "mlp_ratio"),
                            ({"mlp_ratio": 0.001}, "an MLP of no units"),
                            ({"pool": None}, "pool=None"),
                            ({"image_size": 8192, "patch_size": 1}, "patches per image")]:
        with pytest.raises(InputError, match=re.escape(message)):
            ModelConfig.from_dict({**tiny, **change})
    with pytest.raises(InputError, match="unknown keys"):
        ModelConfig.from_dict({**tiny, "__class__": 1})
    with pytest.raises(InputError, match="not a multiple"):  # a command-line override too
        get_config("tiny", image_size=33)
    huge = replace(get_config("ViT-B-32"), vision_width=16384, vision_heads=16, vision_layers=256)
    assert estimate_parameters(huge, 49408) > MAX_PARAMETERS
    with pytest.raises(InputError, match="parameters"):
        check_size(huge, 49408)
    with pytest.raises(InputError, match="vocabulary"):
        check_size(get_config("tiny"), 10**9)


def _bench_module():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / "train.py"
    spec = importlib.util.spec_from_file_location("bench_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_flops_and_peak_lookup():
    """bench/train.py's MFU inputs: FLOPs per sample against torch's own FLOP counter of a
    forward + backward pass, and the bf16 peak from CUDA device names as the cards report them."""
    from torch.utils.flop_counter import FlopCounterMode
    bench = _bench_module()
    cfg = get_config("ViT-B-32")
    with torch.device("meta"):
        model = CLIP(cfg, cfg.vocab_size)
        images = torch.zeros(2, 3, 224, 224, dtype=torch.uint8)
        tokens = torch.ones(2, 77, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        clip_loss(*model(images, tokens)).backward()
    counted = counter.get_total_flops() / 2
    assert bench.flops_per_sample(cfg) == pytest.approx(counted, rel=0.05)
    peak = bench.peak_tflops_for
    assert peak("NVIDIA H100 80GB HBM3") == 989.0 and peak("NVIDIA H200") == 989.0
    assert peak("NVIDIA H100 PCIe") == 756.0 and peak("NVIDIA H100 NVL") == 835.0
    assert peak("NVIDIA A100-SXM4-80GB") == 312.0 and peak("NVIDIA A10") == 125.0
    assert peak("Some Future GPU") is None
    assert bench.shard_image_size(224) == 256
