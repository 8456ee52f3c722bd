# webimagetext — every target is a thin wrapper around the `wit` console script.
# Variables: OUT (output root), RUNNER / BEAM_ARGS (Beam runner and its options).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
OUT ?= out
RUNNER ?= DirectRunner
BEAM_ARGS ?=
TORCH_VERSION ?= 2.13.0
WIT := $(VENV)/bin/wit
PY := $(VENV)/bin/python
# Inputs of the stages (see `wit <stage> --help`).
WIKI ?=
PAGEVIEWS ?=
QUERIES_ARGS ?=
CRAWL_ARGS ?=
SHARDS_ARGS ?=
LIST ?=
TAKEDOWN_ARGS ?=
TRAIN_ARGS ?=
EVAL_ARGS ?=
INDEX_ARGS ?=
BROWSE_ARGS ?=
DEMO_ARGS ?=
PYTEST_ARGS ?=
BEAM := -- --runner=$(RUNNER) $(BEAM_ARGS)

.DEFAULT_GOAL := help
.PHONY: help setup lock test-latest test-oldest worker-requirements test test-fast lint queries crawl shards takedown train eval export index browse demo bench clean

help: ## list every target
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14
	@echo "variables: OUT=$(OUT) RUNNER=$(RUNNER) BEAM_ARGS='$(BEAM_ARGS)' WIKI PAGEVIEWS *_ARGS"

# torch first and pinned: a bare requirement would pull a multi-GB CUDA build. Every install
# goes through the lock (constraints.txt), so a fresh clone gets the versions CI tested. pip's
# and setuptools' own notices go to a log, shown only when an install fails, so that
# `make demo` and `make test` print nothing but the project's output.
LOCK := constraints.txt
PIP_LOCKED = $(VENV)/bin/pip install -q -c $(LOCK)
$(VENV)/.installed: setup.py $(LOCK)
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing the locked versions ($(LOCK)) into $(VENV) (pip's log: $(VENV)/install.log)"
	@$(PIP_LOCKED) --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(PIP_LOCKED) torch==$(TORCH_VERSION) >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(PIP_LOCKED) -e '.[dev,bench,gcp]' >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

setup: $(VENV)/.installed ## create .venv and install the project from the lock (idempotent)

# Drift: the newest releases in a throwaway venv, without the lock. Run it at the start of a
# working session; when it fails, fix the code, then `make lock` in its own commit.
LATEST_VENV ?= .venv-latest
test-latest: ## newest releases, no lock (.venv-latest): what differs from the lock, then the unit tier
	@PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) .ci/fresh_venv.sh $(LATEST_VENV)
	@$(PYTHON) .ci/lock.py diff $(LATEST_VENV) $(LOCK)
	@if NO_ALBUMENTATIONS_UPDATE=1 $(LATEST_VENV)/bin/pytest -q -m "not integration" $(PYTEST_ARGS); \
	then echo "test-latest: PASS with the newest releases (the differences from the lock are listed above)"; \
	else echo "test-latest: FAIL with the newest releases: fix the code, then make lock LOCK_FROM=$(LATEST_VENV)"; exit 1; fi

# LOCK_FROM=.venv-latest locks exactly what `make test-latest` just tested; by default the
# lock is written from a clean venv of today's newest releases.
LOCK_FROM ?=
lock: ## rewrite constraints.txt from a clean venv of the newest releases; prints what changed
	@test -n "$(LOCK_FROM)" || PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) .ci/fresh_venv.sh $(LATEST_VENV)
	@$(PYTHON) .ci/lock.py write $(or $(LOCK_FROM),$(LATEST_VENV)) $(LOCK)

# Workers of a Beam runner install the runtime at the locked versions (docs/scaling.md).
WORKER_EXTRAS ?= gcp
worker-requirements: setup ## requirements-workers.txt: the lock's pins of the runtime (+ WORKER_EXTRAS) for --requirements_file
	@$(PYTHON) .ci/lock.py workers $(VENV) $(WORKER_EXTRAS) > requirements-workers.txt.tmp
	@mv requirements-workers.txt.tmp requirements-workers.txt
	@echo "wrote requirements-workers.txt ($$(grep -c == requirements-workers.txt) pins): pass --requirements_file requirements-workers.txt"

# The oldest Beam setup.py claims, with the newest releases of everything else it allows.
BEAM_OLDEST := $(shell sed -nE 's/.*"apache-beam>=([0-9.]+)[,"].*/\1/p' setup.py | head -1)
OLDEST_VENV ?= .venv-oldest
test-oldest: ## the unit tier on the oldest supported Beam (from setup.py) in a throwaway venv
	@PYTHON=$(PYTHON) TORCH_VERSION=$(TORCH_VERSION) .ci/fresh_venv.sh $(OLDEST_VENV) 'apache-beam[gcp]==$(BEAM_OLDEST)'
	@$(PYTHON) .ci/lock.py diff $(OLDEST_VENV) $(LOCK)
	@if NO_ALBUMENTATIONS_UPDATE=1 $(OLDEST_VENV)/bin/pytest -q -m "not integration" $(PYTEST_ARGS); \
	then echo "test-oldest: PASS on apache-beam $(BEAM_OLDEST)"; \
	else echo "test-oldest: FAIL on apache-beam $(BEAM_OLDEST)"; exit 1; fi

test: setup ## run the whole test suite (what CI runs)
	NO_ALBUMENTATIONS_UPDATE=1 $(VENV)/bin/pytest $(PYTEST_ARGS)

test-fast: setup ## the unit tier only: no servers, runners, subprocesses (-m "not integration")
	NO_ALBUMENTATIONS_UPDATE=1 $(VENV)/bin/pytest -m "not integration" $(PYTEST_ARGS)

lint: setup ## ruff on everything, mypy on the core packages, the import rules (.importlinter)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy queries schemas pipeline training
	$(VENV)/bin/lint-imports .importlinter

queries: setup ## build the query list: make queries WIKI=dump.xml.bz2 [PAGEVIEWS=...]
	@test -n "$(WIKI)" || { echo "make queries: set WIKI=<pages-articles dump(s)>, e.g. WIKI=../shared/data/wikipedia/enwiki-sample-pages-articles.xml.bz2"; exit 2; }
	$(WIT) queries --wiki $(WIKI) $(if $(PAGEVIEWS),--pageviews $(PAGEVIEWS)) --out $(OUT) $(QUERIES_ARGS) $(BEAM)

crawl: setup ## image-text candidates from WARC/WAT/seeds/URL lists, matched and balanced
	@test -n "$(CRAWL_ARGS)$(wildcard ../shared/data/webarchive/*.warc.gz)" || { echo "make crawl: set CRAWL_ARGS='--warc FILE... --wat FILE... --seeds URL... --urls FILE...' (any mix)"; exit 2; }
	$(WIT) crawl --metadata $(OUT)/queries/metadata.json --out $(OUT) $(or $(CRAWL_ARGS),--warc $(wildcard ../shared/data/webarchive/*.warc.gz) ../shared/data/webarchive/malformed/* --wat $(wildcard ../shared/data/webarchive/*.warc.wat.gz)) $(BEAM)

shards: setup ## download, filter, dedup, decontaminate into WebDataset + Parquet shards
	$(WIT) shards --candidates $(OUT)/candidates --out $(OUT) $(SHARDS_ARGS) $(BEAM)

takedown: setup ## remove the samples a list names from OUT/shards: LIST=takedown.txt (TAKEDOWN_ARGS='--dry-run')
	@test -n "$(LIST)" || { echo "make takedown: set LIST=FILE (a takedown list; format: wit takedown --help)"; exit 2; }
	$(WIT) takedown --shards $(OUT)/shards --list $(LIST) $(TAKEDOWN_ARGS)

train: setup ## train a CLIP model on the shards (tiny config on CPU by default)
	$(WIT) train --shards $(OUT)/shards --config tiny --out $(OUT)/train $(TRAIN_ARGS)

eval: setup ## retrieval on EVAL_SHARDS (default OUT/shards); EVAL_ARGS='--zeroshot DIR --linear-probe DIR'
	$(WIT) eval --checkpoint $(OUT)/train/checkpoint.pt --retrieval $(or $(EVAL_SHARDS),$(OUT)/shards) --out $(OUT)/eval $(EVAL_ARGS)

export: setup ## the checkpoint as a transformers CLIPModel folder in OUT/clip-hf (needs the hf extra)
	$(WIT) export --checkpoint $(OUT)/train/checkpoint.pt --format hf --out $(OUT)/clip-hf

index: setup ## embed + faiss-index the shards for search (OUT/index); INDEX_ARGS='--device auto --kind hnsw'
	$(WIT) index --shards $(OUT)/shards --checkpoint $(or $(CHECKPOINT),$(OUT)/train/checkpoint.pt) --out $(OUT)/index $(INDEX_ARGS)

browse: setup ## the local web app on OUT (http://127.0.0.1:8000/); BROWSE_ARGS='--port 8080'
	$(WIT) browse $(OUT) $(BROWSE_ARGS)

# As root, `make demo` installs the Debian inputs the demo needs; otherwise the demo itself
# says what to install.
DEMO_APT := openclipart-png openclipart-svg wordnet-base wordnet-sense-index
demo: setup ## the whole system end to end on the embedded default inputs
	@if [ "$$(id -u)" = 0 ] && ! dpkg -s $(DEMO_APT) >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEMO_APT); fi
	$(WIT) demo --out $(OUT) $(DEMO_ARGS) $(BEAM)

# Only scripts with a __main__ run: bench/timing.py is a module the benchmarks share.
bench: setup ## run the benchmarks in bench/ (ratios against their anchors)
	@for b in bench/*.py; do grep -q __main__ $$b || continue; echo "== $$b"; NO_ALBUMENTATIONS_UPDATE=1 $(PY) $$b || exit 1; done

clean: ## remove outputs and caches (not the venv)
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
