"""The dependency lock (constraints.txt): write it from a venv, compare a venv with it.

    python .ci/lock.py write VENV [LOCK]   write LOCK from VENV's `pip freeze`, print what changed
    python .ci/lock.py diff VENV [LOCK]    print the packages whose version in VENV differs
    python .ci/lock.py check VENV [LOCK]   exit 1 unless every locked package is installed in
                                           VENV at exactly the locked version
    python .ci/lock.py workers VENV [EXTRA,...]
                                           print the locked pins of what the runtime install
                                           (plus those extras) needs: a --requirements_file
                                           for Beam workers (docs/scaling.md)

VENV is a virtual environment folder (its bin/python is used); LOCK defaults to
constraints.txt at the repository root. The lock lists every distribution `pip freeze --all`
reports (pip and setuptools included), the project's own editable install excepted.
"""

from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LOCK = REPO / "constraints.txt"
HEADER = """\
# The lock: the exact version of every package `make setup` installs (the runtime and the dev,
# bench and gcp extras, torch's CPU build included), the versions CI tested together. `make setup`
# passes it to pip (-c constraints.txt); setup.py keeps ranges for people who install the
# package into their own environment. Refresh it on purpose, in its own commit, with
# `make lock` (a clean venv of the newest releases) and `make test` green.
"""


def canonical(name: str) -> str:
    """PEP 503 normalised name: how pip compares distribution names."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse(lines: list[str], where: str) -> dict[str, tuple[str, str]]:
    """{canonical name: (name as written, version)} from `name==version` lines."""
    pins = {}
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if not match:
            sys.exit(f"lock: {where}:{number}: not a `name==version` line: {raw.strip()!r}")
        pins[canonical(match[1])] = (match[1], match[2])
    return pins


def venv_python(venv: str) -> str:
    python = Path(venv) / "bin" / "python"
    if not python.exists():
        sys.exit(f"lock: {venv} is not a virtual environment (no bin/python)")
    return str(python)


def frozen(venv: str) -> dict[str, tuple[str, str]]:
    out = subprocess.run([venv_python(venv), "-m", "pip", "freeze", "--all", "--exclude-editable"],
                         check=True, capture_output=True, text=True).stdout
    # a non-editable install of the project itself is not a dependency either
    lines = [line for line in out.splitlines() if not line.lower().startswith("webimagetext")]
    return parse(lines, f"pip freeze of {venv}")


def read_lock(lock: Path) -> dict[str, tuple[str, str]]:
    if not lock.exists():
        return {}
    return parse(lock.read_text(encoding="utf-8").splitlines(), str(lock))


def python_version(venv: str) -> str:
    return subprocess.run([venv_python(venv), "-c", "import platform; print(platform.python_version())"],
                          check=True, capture_output=True, text=True).stdout.strip()


def changes(old: dict[str, tuple[str, str]], new: dict[str, tuple[str, str]]) -> list[str]:
    """One line per package added, removed or at another version, sorted by name."""
    lines = []
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            lines.append(f"  - {old[key][0]}=={old[key][1]} (not installed)")
        elif key not in old:
            lines.append(f"  + {new[key][0]}=={new[key][1]} (not in the lock)")
        elif old[key][1] != new[key][1]:
            lines.append(f"  ~ {new[key][0]} {old[key][1]} -> {new[key][1]}")
    return lines


def write(venv: str, lock: Path) -> None:
    old, new = read_lock(lock), frozen(venv)
    body = "".join(f"{name}=={version}\n" for _, (name, version) in sorted(new.items()))
    stamp = (f"# Python {python_version(venv)} on {platform.system()} {platform.machine()}, "
             f"written {datetime.date.today().isoformat()} by `make lock`.\n")
    tmp = lock.with_name(lock.name + ".tmp")
    tmp.write_text(HEADER + stamp + body, encoding="utf-8")
    os.replace(tmp, lock)
    diff = changes(old, new)
    print(f"lock: wrote {lock.name} ({len(new)} packages); "
          + (f"{len(diff)} changed:" if diff else "no version changed"))
    if diff:
        print("\n".join(diff))


def diff(venv: str, lock: Path) -> int:
    lines = changes(read_lock(lock), frozen(venv))
    print(f"lock: {venv} differs from {lock.name} in {len(lines)} package(s)"
          + (":" if lines else ""))
    if lines:
        print("\n".join(lines))
    return len(lines)


def check(venv: str, lock: Path) -> int:
    locked, installed = read_lock(lock), frozen(venv)
    if not locked:
        sys.exit(f"lock: {lock} is missing or empty")
    wrong = [f"  {name}: locked {version}, installed {installed[key][1] if key in installed else 'nothing'}"
             for key, (name, version) in sorted(locked.items())
             if installed.get(key, ("", None))[1] != version]
    if wrong:
        print(f"lock: {venv} does not match {lock.name} in {len(wrong)} package(s):")
        print("\n".join(wrong))
        return 1
    print(f"lock: pip freeze of {venv} equals {lock.name} for all {len(locked)} locked packages")
    return 0


# Runs inside VENV's interpreter: the distributions the project's runtime requirements (and
# the given extras) pull, transitively, as `name==version` of what is installed there.
CLOSURE = """
import sys
from importlib import metadata
from packaging.requirements import Requirement
extras = [e for e in sys.argv[1].split(",") if e]
seen, todo = {}, [(r, extra) for r in metadata.requires("webimagetext") or []
                  for extra in [""] + extras]
while todo:
    raw, extra = todo.pop()
    req = Requirement(raw)
    if req.marker and not req.marker.evaluate({"extra": extra}):
        continue
    name = req.name.lower().replace("_", "-").replace(".", "-")
    wanted = seen.setdefault(name, set())
    new = (set(req.extras) | {""}) - wanted
    if not new:
        continue
    wanted |= new
    try:
        todo += [(r, e) for r in metadata.requires(req.name) or [] for e in new]
    except metadata.PackageNotFoundError:
        sys.exit(f"{req.name} is not installed")
for name in sorted(seen):
    print(name)
"""


def workers(venv: str, extras: str) -> None:
    found = subprocess.run([venv_python(venv), "-c", CLOSURE, extras],
                           capture_output=True, text=True)
    if found.returncode:
        sys.exit(f"lock: {venv}: {found.stderr.strip().splitlines()[-1]}")
    names = found.stdout.split()
    locked = read_lock(DEFAULT_LOCK)
    missing = [n for n in names if canonical(n) not in locked]
    if missing:
        sys.exit(f"lock: {', '.join(missing)} not in {DEFAULT_LOCK.name}: run make lock")
    print(f"# Beam workers' pins from {DEFAULT_LOCK.name} (runtime"
          + (f" + {extras}" if extras else "") + "): `make worker-requirements`")
    pins = [locked[canonical(name)] for name in sorted(names, key=canonical)]
    if any(version.endswith("+cpu") for _, version in pins):  # torch's CPU build lives there
        print("--extra-index-url https://download.pytorch.org/whl/cpu")
    for written, version in pins:
        print(f"{written}=={version}")


def main(argv: list[str]) -> int:
    if len(argv) in (2, 3) and argv[0] == "workers":
        workers(argv[1], argv[2] if len(argv) == 3 else "")
        return 0
    if len(argv) not in (2, 3) or argv[0] not in ("write", "diff", "check"):
        print(__doc__, file=sys.stderr)
        return 2
    command, venv = argv[0], argv[1]
    lock = Path(argv[2]) if len(argv) == 3 else DEFAULT_LOCK
    if command == "write":
        write(venv, lock)
        return 0
    if command == "diff":
        diff(venv, lock)
        return 0
    return check(venv, lock)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
