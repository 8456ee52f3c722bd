"""MNIST digits from the sample data's CSV rendered to PNGs with a labels table, the input
`wit eval` reads."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image


def render_mnist(csv_path: str, out_dir: str, limit: int | None = None,
                 names: Sequence[str] | None = None) -> str:
    """Render the MNIST CSV (784 pixel columns then the label, no header) to PNGs and a
    ``labels.csv`` (path,label) beside them; label strings from ``names`` if given."""
    table = pd.read_csv(csv_path, header=None, nrows=limit)
    if table.shape[1] != 785:
        raise ValueError(f"{csv_path}: expected 785 columns (784 pixels + label), got {table.shape[1]}")
    pixels = table.iloc[:, :784].to_numpy(np.uint8).reshape(-1, 28, 28)
    labels = table.iloc[:, 784].to_numpy()
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    for i, (img, label) in enumerate(zip(pixels, labels)):
        name = f"{i:05d}.png"
        Image.fromarray(img, mode="L").save(os.path.join(out_dir, name))
        rows.append((name, names[int(label)] if names else str(label)))
    pd.DataFrame(rows, columns=["path", "label"]).to_csv(os.path.join(out_dir, "labels.csv"), index=False)
    return os.path.join(out_dir, "labels.csv")

