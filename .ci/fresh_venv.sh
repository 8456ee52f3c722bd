#!/usr/bin/env bash
# A throwaway venv of the newest releases, without the lock: fresh_venv.sh DIR [PIP_ARGS...]
# (`make test-latest`, `make lock`, `make test-oldest`). torch keeps its pin: a bare
# requirement would pull a multi-GB CUDA build. Extra arguments go to the project's install
# (e.g. 'apache-beam[gcp]==2.64.0' to try the oldest supported Beam). pip's log: DIR/install.log.
set -euo pipefail
dir=${1:?usage: fresh_venv.sh DIR [PIP_ARGS...]}
shift
: "${PYTHON:=python3}" "${TORCH_VERSION:=2.13.0}"
rm -rf "$dir"
"$PYTHON" -m venv "$dir"
log="$dir/install.log"
echo "fresh venv: installing the newest releases into $dir${*:+ with $*} (pip's log: $log)"
pip() { "$dir/bin/pip" "$@" >> "$log" 2>&1 || { cat "$log"; exit 1; }; }
pip install -q --upgrade pip
pip install -q "torch==$TORCH_VERSION"
pip install -q -e '.[dev,bench,gcp]' "$@"
