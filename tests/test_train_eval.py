"""Zero-shot and linear probe end to end on real data: MNIST digits (../shared/data) rendered
to PNGs; a tiny CLIP trained on img2dataset shards of captioned digits, then `wit eval` on
held-out digits as a CSV table (path,label)."""

from __future__ import annotations

import json
import random

import pytest
import torch
from helpers.data import shared_file
from helpers.mnist import render_mnist

from pipeline.cli import main as wit
from training.evaluate import load_labelled_set
from training.synthetic import make_shards

pytestmark = pytest.mark.integration

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
CAPTIONS = ["a photo of the number {}.", "handwritten digit {}", "the number {} written by hand",
            "a {} on a black background"]


@pytest.fixture(autouse=True)
def one_thread():
    from threadpoolctl import threadpool_limits
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # shared CI machine: see test_train_units (BLAS likewise)
    with threadpool_limits(1):
        yield
    torch.set_num_threads(threads)


def test_zero_shot_and_linear_probe_on_mnist(tmp_path, capsys):
    csv = shared_file("eval/mnist_5k.csv.gz")
    table = render_mnist(str(csv), str(tmp_path / "digits"), names=NAMES)
    digits = load_labelled_set(table)
    assert len(digits.paths) == 5000 and digits.classes == sorted(NAMES)
    # shuffled split: 1200 captioned digits to train on, 1000 held out for evaluation
    order = list(range(5000))
    random.Random(0).shuffle(order)
    rng = random.Random(1)
    from PIL import Image

    def pairs():
        for i in order[:1200]:
            name = digits.classes[digits.labels[i]]
            yield Image.open(digits.paths[i]).convert("RGB"), rng.choice(CAPTIONS).format(name)

    make_shards(pairs(), str(tmp_path / "shards"), str(tmp_path / "work"), per_shard=400,
                image_size=32)
    def table_of(rows: list[int], name: str):
        path = tmp_path / name
        path.write_text("path,label\n" + "".join(
            f"digits/{digits.paths[i].rsplit('/', 1)[-1]},{digits.classes[digits.labels[i]]}\n"
            for i in rows))
        return path

    heldout = table_of(order[4000:], "heldout.csv")
    probe_set = table_of(order[2000:4000], "probe.csv")  # digits not trained on
    templates = tmp_path / "templates.txt"
    templates.write_text("a photo of the number {}.\nhandwritten digit {}\n")

    train = tmp_path / "train"
    assert wit(["train", "--shards", str(tmp_path / "shards"), "--steps", "120",
                "--batch-size", "64", "--lr", "2e-3", "--workers", "0", "--out", str(train)]) == 0
    assert wit(["eval", "--checkpoint", str(train / "checkpoint.pt"), "--zeroshot", str(heldout),
                "--templates", str(templates), "--linear-probe", str(probe_set),
                "--probe-c", "0.01,0.1,1",
                "--out", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "eval.json").read_text())
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk != "per_class"}
                      for k, v in results.items() if isinstance(v, dict)}, indent=1))
    z, probe = results["zeroshot"], results["linear_probe"]
    assert z["n"] == 1000 and z["classes"] == 10 and z["templates"] == 2
    assert set(z["per_class"]) == set(NAMES)
    assert z["top1"] > 2 * z["chance"]  # learnt the digits' names from 1,200 captions
    assert probe["accuracy"] > 0.5  # chance is 0.1
    assert probe["test"] == 400 and len(probe["validation_sweep"]) == 3
