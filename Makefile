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
TRAIN_ARGS ?=
EVAL_ARGS ?=
DEMO_ARGS ?=
PYTEST_ARGS ?=
BEAM := -- --runner=$(RUNNER) $(BEAM_ARGS)

.DEFAULT_GOAL := help
.PHONY: help setup test test-fast lint queries crawl shards train eval export demo bench clean

help: ## list every target
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 12
	@echo "variables: OUT=$(OUT) RUNNER=$(RUNNER) BEAM_ARGS='$(BEAM_ARGS)' WIKI PAGEVIEWS *_ARGS"

# torch first and pinned: a bare requirement would pull a multi-GB CUDA build. pip's and
# setuptools' own notices go to a log, shown only when an install fails, so that `make demo`
# and `make test` print nothing but the project's output.
$(VENV)/.installed: setup.py
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "setup: installing into $(VENV) (pip's log: $(VENV)/install.log)"
	@$(VENV)/bin/pip install -q --upgrade pip > $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(VENV)/bin/pip install -q torch==$(TORCH_VERSION) >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@$(VENV)/bin/pip install -q -e '.[dev]' >> $(VENV)/install.log 2>&1 || { cat $(VENV)/install.log; exit 1; }
	@touch $@

setup: $(VENV)/.installed ## create .venv and install the project (idempotent)

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

train: setup ## train a CLIP model on the shards (tiny config on CPU by default)
	$(WIT) train --shards $(OUT)/shards --config tiny --out $(OUT)/train $(TRAIN_ARGS)

eval: setup ## retrieval on EVAL_SHARDS (default OUT/shards); EVAL_ARGS='--zeroshot DIR --linear-probe DIR'
	$(WIT) eval --checkpoint $(OUT)/train/checkpoint.pt --retrieval $(or $(EVAL_SHARDS),$(OUT)/shards) --out $(OUT)/eval $(EVAL_ARGS)

export: setup ## the checkpoint as a transformers CLIPModel folder in OUT/clip-hf (needs the hf extra)
	$(WIT) export --checkpoint $(OUT)/train/checkpoint.pt --format hf --out $(OUT)/clip-hf

# As root, `make demo` installs the Debian inputs the demo needs; otherwise the demo itself
# says what to install.
DEMO_APT := openclipart-png openclipart-svg wordnet-base wordnet-sense-index
demo: setup ## the whole system end to end on the embedded default inputs
	@if [ "$$(id -u)" = 0 ] && ! dpkg -s $(DEMO_APT) >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEMO_APT); fi
	$(WIT) demo --out $(OUT) $(DEMO_ARGS) $(BEAM)

# Only scripts with a __main__ run: bench/timing.py is a module the benchmarks share.
bench: setup ## run the benchmarks in bench/ (ratios against their anchors)
	$(VENV)/bin/pip install -q -e '.[bench]'
	@for b in bench/*.py; do grep -q __main__ $$b || continue; echo "== $$b"; NO_ALBUMENTATIONS_UPDATE=1 $(PY) $$b || exit 1; done

clean: ## remove outputs and caches (not the venv)
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
