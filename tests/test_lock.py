"""The dependency lock (constraints.txt) and its tool (.ci/lock.py).

The lock is what `make setup` installs; setup.py keeps ranges. These tests keep the two
consistent: every dependency setup.py declares for the installed extras is locked, at a
version inside setup.py's range, and torch's pin is the Makefile's.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
LOCKED_EXTRAS = ("dev", "bench", "gcp")  # what `make setup` installs: `-e .[dev,bench,gcp]`


def load_lock_tool():
    spec = importlib.util.spec_from_file_location("ci_lock", REPO / ".ci" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ci_lock"] = module
    spec.loader.exec_module(module)
    return module


lock = load_lock_tool()


def setup_requirements() -> list[Requirement]:
    """INSTALL_REQUIRES and the locked extras of setup.py, read without running setup()."""
    source = (REPO / "setup.py").read_text(encoding="utf-8")
    namespace: dict = {}
    exec(source[:source.index("setup(")], namespace)  # the lists only, not setup()
    raw = list(namespace["INSTALL_REQUIRES"])
    for extra in LOCKED_EXTRAS:
        raw += namespace["EXTRAS"][extra]
    return [Requirement(r) for r in raw]


def test_the_lock_pins_every_declared_dependency_inside_its_range():
    pins = lock.read_lock(lock.DEFAULT_LOCK)
    assert len(pins) > 100
    for req in setup_requirements():
        key = lock.canonical(req.name)
        assert key in pins, f"{req.name} is declared in setup.py but not locked"
        version = pins[key][1]
        assert req.specifier.contains(version, prereleases=True), (
            f"lock has {req.name}=={version}, outside setup.py's {req}")
        for extra in req.extras:  # e.g. apache-beam[gcp] pulls google-cloud-* packages
            assert extra != "gcp" or "google-cloud-storage" in pins


def test_the_lock_is_sorted_exact_and_names_its_python():
    text = lock.DEFAULT_LOCK.read_text(encoding="utf-8")
    assert re.search(r"^# Python 3\.\d+\.\d+ on \w+ \w+, written \d{4}-\d\d-\d\d", text, re.M)
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==\S+", line) for line in lines)
    names = [lock.canonical(line.split("==")[0]) for line in lines]
    assert names == sorted(names) and len(names) == len(set(names))
    assert not any(name == "webimagetext" for name in names)  # the project is not its own dep


def test_torch_is_locked_at_the_makefiles_pin():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    pinned = re.search(r"^TORCH_VERSION \?= (\S+)", makefile, re.M)[1]
    locked = lock.read_lock(lock.DEFAULT_LOCK)["torch"][1]
    assert locked.split("+")[0] == pinned


def test_changes_lists_added_removed_and_moved_packages():
    old = lock.parse(["a==1", "B_c==2", "gone==3"], "old")
    new = lock.parse(["a==1", "b-c==2.1", "new==4"], "new")
    assert lock.changes(old, new) == ["  ~ b-c 2 -> 2.1", "  - gone==3 (not installed)",
                                      "  + new==4 (not in the lock)"]
    assert lock.changes(old, old) == []


def test_a_line_that_is_not_a_pin_is_refused_naming_the_file_and_line():
    with pytest.raises(SystemExit, match=r"constraints\.txt:2: not a `name==version` line"):
        lock.parse(["a==1", "b>=2"], "constraints.txt")
