# refforge: every target a data engineer uses. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch must come before anything that depends on it, or pip pulls a multi-GB CUDA build (see README).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
EXTRAS ?= sam,dino,dev
CONFIG ?= sources.yaml
SOURCE ?=
CORPUS ?= out/demo
N ?= 20
PYTEST_ARGS ?=
BENCH_ARGS ?=

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0

SRC_FLAG = $(if $(SOURCE),--source $(SOURCE),)

.PHONY: help venv demo test test-fast bench bench-quick corpus proposals negatives ingest verify inspect \
        golden lint-templates converters clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  variables: CONFIG=$(CONFIG) SOURCE=<name> CORPUS=$(CORPUS) N=$(N) TORCH_SPEC='$(TORCH_SPEC)'"

venv: $(VENV)/.installed ## create .venv and install refforge with its extras (torch first)

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade --quiet pip
	$(BIN)/pip install --quiet $(TORCH_SPEC)
	$(BIN)/pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

demo: venv ## generate the demo input and build the demo corpus into out/demo
	$(BIN)/refforge demo

test: venv ## run the whole test suite (slow model-wiring and cluster tests included)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv ## the test suite without the slow tests
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: venv ## run every benchmark and print the figures (see docs/benchmarks.md)
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

bench-quick: venv ## the benchmarks on small inputs (a minute or two)
	$(BIN)/python bench/run_all.py --quick $(BENCH_ARGS)

corpus: venv ## regenerate the corpus of CONFIG (all enabled sources, or SOURCE=<name>)
	$(BIN)/refforge build $(CONFIG) $(SRC_FLAG)

ingest: venv ## run only the ingest stage (check inputs and accounting; SOURCE=<name> optional)
	$(BIN)/refforge build $(CONFIG) --stage ingest $(SRC_FLAG)

proposals: venv ## run ingest + grid proposals only, filling the proposal cache (SOURCE=<name> optional)
	$(BIN)/refforge build $(CONFIG) --stage proposals $(SRC_FLAG)

negatives: venv ## run ingest + hard-negative mining only, filling the LLM cache (SOURCE=<name> optional)
	$(BIN)/refforge build $(CONFIG) --stage negatives $(SRC_FLAG)

verify: venv ## re-check a corpus: shard hashes, schema, round-trips, unique ids (CORPUS=out/<name>)
	$(BIN)/refforge verify $(CORPUS)

inspect: venv ## write an HTML page of N samples with overlays (CORPUS=out/<name> N=20)
	$(BIN)/refforge inspect $(CORPUS) --n $(N)

golden: venv ## regenerate the golden dialogue files (deliberate: review the diff before committing)
	REFFORGE_UPDATE_GOLDEN=1 $(BIN)/python -m pytest tests/test_golden.py -q

lint-templates: venv ## lint every prompt template
	$(BIN)/refforge lint-templates

converters: venv ## list the registered source converters
	$(BIN)/refforge converters

clean: ## remove outputs and caches (keeps .venv)
	rm -rf out .refforge-cache tests/artifacts
