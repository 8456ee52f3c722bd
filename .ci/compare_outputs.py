"""Compare two output trees of `wit demo` (or of any stage) file by file: the check that a
refactor changed no output.

    wit demo --out /tmp/before --steps 10      # on the old code
    wit demo --out /tmp/after --steps 10       # on the new code
    python .ci/compare_outputs.py /tmp/before /tmp/after

Every file must be byte-identical, except the few that hold run-dependent values: JSON
files are compared after dropping the timing keys below and writing each tree's own root
as ``<root>`` in paths; checkpoint.pt after dropping the process-global RNG states (tensors
compared exactly); report.html files are skipped (they embed times and paths); so are the
download rounds' work files (``_work/``) and TensorBoard logs. Two runs of the same code
pass. Exit status 1 when anything differs."""

from __future__ import annotations

import filecmp
import json
import sys
from pathlib import Path
from typing import Any

# keys whose values are timings (manifest.json, log.jsonl, the shards' _stats.json), and the
# download's network counters (waits, retries, DNS cache hits: they follow the hosts' timing)
VOLATILE = {"seconds", "time", "samples_per_s", "duration", "start_time", "end_time", "network"}
SKIPPED_PARTS = ("_work", "tensorboard")


def clean(value: Any, root: str) -> Any:
    """``value`` without timing keys, with the tree's root in paths written ``<root>``."""
    if isinstance(value, dict):
        return {k: clean(v, root) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [clean(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<root>")
    return value


def load_json(path: Path, root: Path) -> Any:
    text = path.read_text()
    if path.suffix == ".jsonl":
        return [clean(json.loads(line), str(root)) for line in text.splitlines() if line.strip()]
    return clean(json.loads(text), str(root))


def same_checkpoint(a: Path, b: Path, roots: tuple[Path, Path]) -> bool:
    import torch

    x, y = (torch.load(p, weights_only=True) for p in (a, b))

    def same(u: Any, v: Any) -> bool:
        if isinstance(u, dict):
            return isinstance(v, dict) and u.keys() == v.keys() and all(same(u[k], v[k]) for k in u)
        if isinstance(u, (list, tuple)):
            return isinstance(v, (list, tuple)) and len(u) == len(v) and all(map(same, u, v))
        if isinstance(u, torch.Tensor):
            return isinstance(v, torch.Tensor) and torch.equal(u, v)
        return u == v

    def stable(c: dict) -> dict:
        return {k: v for k, v in c.items() if k not in ("rng", "options")}

    return same(stable(x), stable(y)) and (clean(x.get("options", {}), str(roots[0]))
                                           == clean(y.get("options", {}), str(roots[1])))


def files(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*")
            if p.is_file() and not any(part in SKIPPED_PARTS for part in p.parts)}


def compare(before: Path, after: Path) -> list[str]:
    """One line per difference between the two trees."""
    old, new = files(before), files(after)
    problems = [f"only in {before if rel in old else after}: {rel}" for rel in sorted(old ^ new)]
    for rel in sorted(old & new):
        a, b = before / rel, after / rel
        if rel.name == "report.html" or filecmp.cmp(a, b, shallow=False):
            continue
        if rel.suffix in (".json", ".jsonl"):
            equal = load_json(a, before) == load_json(b, after)
        elif rel.name == "checkpoint.pt":
            equal = same_checkpoint(a, b, (before, after))
        else:
            equal = False
        if not equal:
            problems.append(f"differs: {rel}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    before, after = map(Path, argv)
    problems = compare(before, after)
    print("\n".join(problems + [f"{len(files(before))} files compared, "
                                f"{len(problems)} differ"]))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
