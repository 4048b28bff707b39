# avdisentangle: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STRATEGY ?= none
PROFILE ?= full
ARGS ?=
BASE_CONFIG := experiments/configs/base.yaml
STRATEGIES := $(sort $(basename $(notdir $(wildcard experiments/configs/strategy/*.yaml))))

.DEFAULT_GOAL := help
.PHONY: help setup lint test data train report bench strategy-exists clean

help: ## list the targets
	@grep -hE '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv and install the package with its dev extras

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

lint: setup ## pyflakes, import order and line length (ruff)
	$(PY) -m ruff check avdisentangle tests benchmarks

test: setup ## run the test suite (CPU, a few minutes)
	$(PY) -m pytest -q

data: setup ## write the built-in synthetic corpus and its feature cache
	$(PY) -m avdisentangle prepare --config $(BASE_CONFIG) $(ARGS)

train: strategy-exists setup ## train with STRATEGY=none|grl|confusion|orthogonal|hsic (data prepared if needed); ARGS="--trainer.max_epochs=3"
	$(PY) -m avdisentangle fit --config $(BASE_CONFIG) --config experiments/configs/strategy/$(STRATEGY).yaml $(ARGS)

report: setup ## every strategy over seeds and speaker folds, with intervals: PROFILE=quick (~12 min on 2 CPUs) or full (GPU; ARGS="--jobs 4")
	$(PY) -m avdisentangle report --profile $(PROFILE) $(ARGS)

bench: setup ## preprocessing, training input, memory, report and GPU throughput, each beside its baseline (see benchmarks/RESULTS.md)
	$(PY) benchmarks/prepare_throughput.py --workers 2 --speakers 10 --clips 24 --width 480 --height 360 --fps 30
	$(PY) benchmarks/training_input.py --epochs 3
	$(PY) benchmarks/report_throughput.py --clips 384 --runs 4 --epochs 3
	$(PY) benchmarks/gpu_throughput.py

strategy-exists:
	@test -f experiments/configs/strategy/$(STRATEGY).yaml || { echo "unknown STRATEGY=$(STRATEGY); choose one of: $(STRATEGIES)" >&2; exit 2; }

clean: ## remove generated data, logs and checkpoints (keeps .venv)
	rm -rf data logs checkpoints results
