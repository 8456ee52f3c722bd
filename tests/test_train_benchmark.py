"""`wit eval --benchmark` on a suite in CLIP_benchmark's/DataComp's webdataset format, built
here from real images: MNIST digits (../shared/data) as a classification set (webp + cls,
test/nshards.txt), openclipart PNGs with their titles as captions as retrieval sets (one and
two captions per image). Checked against `wit eval --zeroshot` / `--retrieval` on the same
images with the same checkpoint, names and templates; bad suites are one-line errors."""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from helpers.data import shared_file
from helpers.mnist import render_mnist
from helpers.shards import real_images
from helpers.tinyclip import train_tiny_checkpoint
from PIL import Image

from pipeline.cli import main as wit
from training import benchmark_suite
from training.evaluate import recall_at_k

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TEMPLATES = ["a photo of the number {c}.", "handwritten digit {c}", "the {c} {in braces}"]


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buf.getvalue()


def write_tar(path: Path, samples: list[dict[str, bytes]]) -> None:
    """A webdataset tar as CLIP_benchmark's exporter writes it: keys s0000000, s0000001..."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for index, sample in enumerate(samples):
            for ext, payload in sample.items():
                info = tarfile.TarInfo(f"s{index:07d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def mnist_suite(root: Path) -> tuple[Path, Path]:
    """``root/wds_mnist_test`` (two shards, nshards.txt) and the same digits as a
    ``path,label`` table for `wit eval --zeroshot`."""
    rendered = render_mnist(str(shared_file("eval/mnist_5k.csv.gz")), str(root / "digits"))
    # the first 30 of each digit (the file is not shuffled), in the file's order
    seen: dict[str, int] = {}
    rows = []
    for row in csv.DictReader(open(rendered)):
        seen[row["label"]] = seen.get(row["label"], 0) + 1
        if seen[row["label"]] <= 30:
            rows.append(row)
    table = root / "digits" / "bench.csv"
    table.write_text("path,label\n" + "".join(f"{r['path']},{r['label']}\n" for r in rows))
    folder = root / "wds_mnist_test"
    samples = [{"webp": _encoded(Image.open(root / "digits" / r["path"]), "WEBP"),
                "cls": r["label"].encode()} for r in rows]
    write_tar(folder / "test" / "0.tar", samples[:160])
    write_tar(folder / "test" / "1.tar", samples[160:])
    (folder / "test" / "nshards.txt").write_text("2\n")
    (folder / "classnames.txt").write_text("\n".join(NAMES) + "\n")
    (folder / "zeroshot_classification_templates.txt").write_text("\n".join(TEMPLATES) + "\n")
    return folder, table


def title(name: str) -> str:
    """An openclipart file's title: ``armadillo_architetto_fra_01`` -> ``armadillo architetto fra``."""
    words = [w for w in name.replace("-", " ").replace("_", " ").split() if not w.isdigit()]
    return " ".join(words) or name


def clipart_suite(root: Path, name: str, captions_per_image: int) -> tuple[Path, list]:
    images = real_images(24)
    folder = root / name
    (folder / "test").mkdir(parents=True)
    (folder / "dataset_type.txt").write_text("retrieval\n")
    pairs = [(image, [title(n), f"an illustration of {title(n)}"][:captions_per_image])
             for n, image in images]
    write_tar(folder / "test" / "0.tar",
              [{"png": _encoded(image, "PNG"), "txt": "\n".join(caps).encode()} for image, caps in pairs])
    return folder, pairs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.set_num_threads(1)  # shared CI machine
    return train_tiny_checkpoint(tmp_path_factory.mktemp("tiny"), steps=4)


@pytest.mark.integration
def test_benchmark_suite_agrees_with_zeroshot_and_retrieval(tmp_path, checkpoint, capsys):
    mnist, table = mnist_suite(tmp_path)
    single, pairs = clipart_suite(tmp_path, "clipart_titles", 1)
    double, _ = clipart_suite(tmp_path, "clipart_two_captions", 2)
    out = tmp_path / "bench"
    assert wit(["eval", "--checkpoint", str(checkpoint), "--benchmark", str(mnist), str(single),
                str(double), "--batch-size", "64", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "benchmark.json").read_text())
    rows = {r["dataset"]: r for r in result["datasets"]}
    assert list(rows) == ["wds_mnist_test", "clipart_titles", "clipart_two_captions"]

    # the same digits, names and templates through --zeroshot; the same pairs as an
    # img2dataset-layout shard through --retrieval
    names = tmp_path / "names.txt"
    names.write_text("\n".join(NAMES) + "\n")
    templates = tmp_path / "templates.txt"
    templates.write_text("\n".join(t.replace("{c}", "{}").replace("{in braces}", "{{in braces}}")
                                   for t in TEMPLATES) + "\n")
    heldout = tmp_path / "heldout" / "00000.tar"
    heldout.parent.mkdir()
    with tarfile.open(heldout, "w") as tar:
        for i, (image, (caption,)) in enumerate(pairs):
            for ext, payload in (("png", _encoded(image, "PNG")), ("txt", caption.encode())):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    assert wit(["eval", "--checkpoint", str(checkpoint), "--zeroshot", str(table),
                "--classnames", str(names), "--templates", str(templates),
                "--retrieval", str(heldout.parent), "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "eval.json").read_text())

    digits, z = rows["wds_mnist_test"], plain["zeroshot"]
    assert digits["samples"] == z["n"] == 300 and digits["main_metric"] == "acc1"
    assert digits["acc1"] == pytest.approx(z["top1"]) and digits["acc5"] == pytest.approx(z["top5"])
    per_class = [v for v in z["per_class"].values() if v is not None]
    assert digits["mean_per_class_recall"] == pytest.approx(sum(per_class) / len(per_class))

    titles, r = rows["clipart_titles"], plain["retrieval"]
    assert titles["samples"] == r["n"] == len(pairs)
    for direction in ("image_to_text_R@1", "text_to_image_R@1"):
        assert titles[direction] == pytest.approx(r[direction])
    assert titles["score"] == pytest.approx((r["image_to_text_R@1"] + r["text_to_image_R@1"]) / 2)
    two = json.loads((out / "eval.json").read_text())["benchmark"]["datasets"][2]
    assert two["samples"] == len(pairs) and two["main_metric"] == "mean_recall@1"

    # DataComp's average of the main metrics, the same in the JSON, CSV and printed table
    scores = [row["score"] for row in rows.values()]
    assert result["average"] == pytest.approx(sum(scores) / 3)
    table_rows = list(csv.DictReader(open(out / "benchmark.csv")))
    assert [t["dataset"] for t in table_rows] == [*rows, "average (3 datasets)"]
    assert float(table_rows[-1]["score"]) == pytest.approx(result["average"], abs=1e-4)
    assert (out / "benchmark.md").read_text() in printed
    assert "| average (3 datasets) |" in printed


@pytest.mark.integration
def test_bad_suites_are_one_line_errors_naming_the_file(tmp_path, checkpoint, capsys):
    images = real_images(3)
    good = {"png": _encoded(images[0][1], "PNG"), "cls": b"0"}

    def suite(name: str, samples: list[dict[str, bytes]], files: dict[str, str]) -> Path:
        folder = tmp_path / name
        write_tar(folder / "test" / "0.tar", samples)
        for file, text in files.items():
            (folder / file).write_text(text)
        return folder

    complete = {"classnames.txt": "cat\ndog\n",
                "zeroshot_classification_templates.txt": "a photo of a {c}.\n"}
    cases = [
        (suite("no_classnames", [good], {"zeroshot_classification_templates.txt": "a {c}\n"}),
         "classnames.txt: missing"),
        (suite("no_placeholder", [good], {**complete,
                                          "zeroshot_classification_templates.txt": "a photo\n"}),
         "has no {c}"),
        (suite("no_cls", [good, {"png": good["png"]}], complete), "sample s0000001 has no cls"),
        (suite("bad_cls", [{**good, "cls": b"7"}], complete), "cls '7' is not a class index 0..1"),
        (suite("multilabel", [good], {**complete, "dataset_type.txt": "multilabel\n"}),
         "dataset type 'multilabel' is not supported"),
        (suite("no_captions", [{"png": good["png"]}], {"dataset_type.txt": "retrieval\n"}),
         "sample s0000000 has no captions"),
    ]
    empty = tmp_path / "empty"
    empty.mkdir()
    cases.append((empty, "no test/*.tar"))
    counted = tmp_path / "counted"
    write_tar(counted / "test" / "0.tar", [good])
    (counted / "test" / "nshards.txt").write_text("2\n")
    for name, text in complete.items():
        (counted / name).write_text(text)
    cases.append((counted, "1.tar: missing ("))
    truncated = suite("truncated", [good, good], complete)
    tar = truncated / "test" / "0.tar"
    tar.write_bytes(tar.read_bytes()[:700])  # cut inside the first image
    cases.append((truncated, "0.tar: unreadable benchmark tar: "))
    for folder, expected in cases:
        code = wit(["eval", "--checkpoint", str(checkpoint), "--benchmark", str(folder),
                    "--out", str(tmp_path / "out" / folder.name)])
        err = capsys.readouterr().err.strip()
        assert code == 1, (folder.name, err)
        assert expected in err and len(err.splitlines()) == 1, (folder.name, err)
        assert not (tmp_path / "out" / folder.name / "benchmark.json").exists()


def test_recall_counts_every_caption_of_an_image():
    """Three images, five captions (image 0 has three): with orthogonal embeddings whose
    nearest neighbours are known, each direction's recall follows from the construction."""
    eye = torch.eye(4)
    images = eye[:3]
    # captions a-c of image 0 (c points at image 1), d of image 1, e of image 2 (e points at
    # image 0)
    texts = torch.stack([eye[0], eye[0], eye[1], eye[1], 0.5 * eye[0] + eye[3]])
    owner = [0, 0, 0, 1, 2]
    got = recall_at_k(images, texts, ["a", "b", "c", "d", "e"], ks=(1, 5), text_image=owner)
    # image->text: every image's captions are among all five (the R@1 ties are arbitrary)
    assert got["image_to_text_R@5"] == 1.0
    assert got["text_to_image_R@1"] == pytest.approx(3 / 5)  # a, b, d
    assert got["text_to_image_R@5"] == 1.0
    assert got["n"] == 3 and got["texts"] == 5
    # one caption per image: the pairwise form the --retrieval eval uses
    pairs = recall_at_k(images, eye[:3], ["x", "y", "z"], ks=(1,))
    assert pairs["image_to_text_R@1"] == pairs["text_to_image_R@1"] == 1.0


def test_suite_names_templates_and_averaging():
    assert benchmark_suite.task_key("wds_vtab-caltech101_test") == "vtab/caltech101"
    assert benchmark_suite.task_key("wds_imagenet1k_test") == "imagenet1k"
    assert benchmark_suite.main_metric("vtab/pets", "classification") == "mean_per_class_recall"
    assert benchmark_suite.main_metric("cifar10", "classification") == "acc1"
    assert benchmark_suite.main_metric("flickr", "retrieval") == "mean_recall@1"
    template = benchmark_suite.prompt_template("a {c} in {braces}", "t.txt")
    assert template.format("cat") == "a cat in {braces}"
    with pytest.raises(Exception, match="t.txt: template 'a photo' has no"):
        benchmark_suite.prompt_template("a photo", "t.txt")
