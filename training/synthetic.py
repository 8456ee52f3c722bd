"""Small real shards for tests, benchmarks and trying the trainer without the pipeline:
generated pictures (coloured shapes, or any images you pass) served over loopback HTTP and
downloaded by img2dataset itself into its WebDataset layout, plus the ``sizes.json`` that
the ``shards`` stage writes. Never touches any address but 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import random
import threading
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageDraw

COLORS = {"red": (220, 30, 30), "green": (30, 170, 40), "blue": (30, 60, 220),
          "yellow": (240, 210, 20), "purple": (140, 40, 170), "orange": (250, 140, 20),
          "black": (10, 10, 10), "cyan": (30, 200, 210)}
SHAPES = ("circle", "square", "triangle", "cross")
BACKGROUNDS = {"white": (250, 250, 250), "gray": (128, 128, 128)}


def draw_shape(color: str, shape: str, background: str = "white", size: int = 64,
               rng: random.Random | None = None) -> Image.Image:
    """A ``shape`` in ``color`` on ``background``; ``rng`` jitters its position and size."""
    rng = rng or random.Random(0)
    img = Image.new("RGB", (size, size), BACKGROUNDS[background])
    d = ImageDraw.Draw(img)
    r = size * rng.uniform(0.25, 0.4)
    cx, cy = size / 2 + rng.uniform(-0.1, 0.1) * size, size / 2 + rng.uniform(-0.1, 0.1) * size
    fill = COLORS[color]
    if shape == "circle":
        d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "square":
        d.rectangle((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        w = r / 3
        d.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        d.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)
    return img


def shape_dataset(n: int, seed: int = 0, size: int = 64) -> Iterator[tuple[Image.Image, str]]:
    """``n`` (image, caption) pairs cycling through every colour x shape x background."""
    rng = random.Random(seed)
    combos = [(c, s, b) for c in COLORS for s in SHAPES for b in BACKGROUNDS]
    for i in range(n):
        color, shape, background = combos[i % len(combos)]
        yield (draw_shape(color, shape, background, size, rng),
               f"a {color} {shape} on a {background} background")


@contextlib.contextmanager
def serve_directory(root: str) -> Iterator[str]:
    """Serve ``root`` at http://127.0.0.1:PORT (a free port) from a thread."""
    handler = functools.partial(_QuietHandler, directory=root)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def write_sizes(shard_dir: str) -> dict[str, int]:
    """``sizes.json`` ({"00000.tar": n, ...}) from img2dataset's ``NNNNN_stats.json``."""
    sizes = {}
    for stats in sorted(Path(shard_dir).glob("*_stats.json")):
        tar = stats.name[: -len("_stats.json")] + ".tar"
        if (Path(shard_dir) / tar).exists():
            sizes[tar] = int(json.loads(stats.read_text())["successes"])
    (Path(shard_dir) / "sizes.json").write_text(json.dumps(sizes, indent=1) + "\n")
    return sizes


def make_shards(pairs: Iterator[tuple[Image.Image, str]], out_dir: str, work_dir: str,
                per_shard: int = 100, image_size: int = 64, processes: int = 1) -> dict[str, int]:
    """Write ``pairs`` as image files, serve them on loopback and let img2dataset download
    them into ``out_dir`` as WebDataset shards. Returns the sizes written to sizes.json."""
    from pipeline.core.offline import stay_offline

    stay_offline()  # before the import below, which would contact PyPI
    import img2dataset  # heavy: only when making shards
    images = Path(work_dir) / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (img, caption) in enumerate(pairs):
        name = f"{i:06d}.png"
        img.save(images / name)
        rows.append((name, caption))
    url_list = Path(work_dir) / "urls.csv"
    with serve_directory(str(images)) as base:
        import csv
        with open(url_list, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["url", "caption"])
            writer.writerows((f"{base}/{name}", caption) for name, caption in rows)
        img2dataset.download(
            url_list=str(url_list), input_format="csv", url_col="url", caption_col="caption",
            output_format="webdataset", output_folder=out_dir, image_size=image_size,
            resize_mode="keep_ratio", number_sample_per_shard=per_shard,
            processes_count=processes, thread_count=16, timeout=10, retries=1,
            distributor="multiprocessing", enable_wandb=False, compute_hash=None)
    return write_sizes(out_dir)
