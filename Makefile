# avdisentangle: `make help` lists the targets.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STRATEGY ?= none
CALLBACKS ?=
PROFILE ?= full
ARGS ?=
BASE_CONFIG := experiments/configs/base.yaml
STRATEGIES := $(sort $(basename $(notdir $(wildcard experiments/configs/strategy/*.yaml))))
CALLBACK_CONFIGS := $(sort $(basename $(notdir $(wildcard experiments/configs/callbacks/*.yaml))))

.DEFAULT_GOAL := help
.PHONY: help setup lint test data train report bench strategy-exists clean

help: ## list the targets
	@grep -hE '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## create .venv and install the package with its dev extras

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@# Compile librosa's numba kernels into their on-disk cache now, not in every worker of the first prepare.
	$(PY) -c 'from avdisentangle.data.features import warm_up_audio_features; warm_up_audio_features()'
	touch $@

lint: setup ## pyflakes, import order and line length (ruff)
	$(PY) -m ruff check avdisentangle tests benchmarks

test: setup ## run the test suite (CPU, about 6 min on 2 cores)
	$(PY) -m pytest -q

data: setup ## write the built-in synthetic corpus and its feature cache
	$(PY) -m avdisentangle prepare --config $(BASE_CONFIG) $(ARGS)

# Callbacks before strategies: a dotted `--trainer.callbacks.weight=...` in ARGS sets the last callback's.
train: strategy-exists setup ## train with STRATEGY=none|grl|confusion|orthogonal|hsic (or several, "hsic grl"), CALLBACKS="early_stopping lr_monitor"; ARGS="--trainer.max_epochs=3"
	$(PY) -m avdisentangle fit --config $(BASE_CONFIG) \
		$(foreach name,$(CALLBACKS),--config experiments/configs/callbacks/$(name).yaml) \
		$(foreach name,$(STRATEGY),--config experiments/configs/strategy/$(name).yaml) $(ARGS)

BENCHMARK := $(BASE_CONFIG),experiments/configs/data/benchmark.yaml

# The full profile also runs the balanced benchmark (correlation 0), where the speaker prior is worth nothing.
report: setup ## every strategy over seeds and speaker folds, with intervals: PROFILE=quick (~12 min on 2 CPUs) or full (GPU, entangled and balanced benchmarks; ARGS="--jobs 4")
	$(PY) -m avdisentangle report --profile $(PROFILE) $(ARGS)
ifeq ($(PROFILE),full)
	$(PY) -m avdisentangle report --profile full --name full-balanced \
		--config '[$(BENCHMARK),experiments/configs/data/benchmark_balanced.yaml]' $(ARGS)
endif

bench: setup ## preprocessing, training input, memory, report, GPU throughput and the first run, each beside its baseline (see benchmarks/RESULTS.md)
	$(PY) benchmarks/prepare_throughput.py --workers 2 --speakers 10 --clips 24 --width 480 --height 360 --fps 30
	$(PY) benchmarks/training_input.py --epochs 3
	$(PY) benchmarks/report_throughput.py --clips 384 --runs 4 --epochs 3
	$(PY) benchmarks/gpu_throughput.py
	$(PY) benchmarks/first_run.py --workers 1 2

strategy-exists:
	@for name in $(STRATEGY); do test -f experiments/configs/strategy/$$name.yaml || { echo "unknown STRATEGY=$$name; choose one of: $(STRATEGIES)" >&2; exit 2; }; done
	@for name in $(CALLBACKS); do test -f experiments/configs/callbacks/$$name.yaml || { echo "unknown CALLBACKS=$$name; choose from: $(CALLBACK_CONFIGS)" >&2; exit 2; }; done

clean: ## remove generated data, logs and checkpoints (keeps .venv)
	rm -rf data logs checkpoints results
