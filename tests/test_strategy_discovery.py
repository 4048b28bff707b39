"""A new strategy is a module and a config file, nothing else: no list anywhere names the strategies.

A throwaway strategy is written to a scratch tree, never into the repo (the other tests, and anyone
else's run on the same checkout, must not see it, and a killed run must leave nothing behind). Each
consumer discovers strategies relative to a root it is given, so no extra switch is needed: the
registry walks the strategies package's `__path__` (Python's own way to extend a package), `make`
globs experiments/configs/strategy/ in its working directory, the report in its `--config_dir`, and
the `glob` of experiments/sweeps/strategies.yaml in the sweep's working directory.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import avdisentangle.strategies as strategies_package
from avdisentangle.evaluation.run_plan import PROFILES, discover_strategies, plan_runs
from avdisentangle.strategies import base
from avdisentangle.sweep import load_sweep_config
from avdisentangle.sweep_results import sweeps

REPO = Path(__file__).resolve().parents[1]
NAME = "throwaway"
MODULE = f"""
import torch

from avdisentangle.strategies.base import DisentanglementStrategy


class ThrowawayStrategy(DisentanglementStrategy):
    name = "{NAME}"

    def loss_terms(self, outputs, batch):
        return {{"nothing": torch.zeros(())}}
"""
CONFIG = """
trainer:
  callbacks:
    - class_path: avdisentangle.strategies.ThrowawayStrategy
      init_args:
        weight: 0.5
"""


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A tree with the repo's strategy configs plus the throwaway's, and the throwaway's module on the
    strategies package's path; the registry and the package are restored afterwards."""
    configs = tmp_path / "experiments/configs/strategy"
    configs.mkdir(parents=True)
    for path in (REPO / "experiments/configs/strategy").glob("*.yaml"):
        (configs / path.name).symlink_to(path)
    (configs / f"{NAME}.yaml").write_text(CONFIG)
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / f"{NAME}.py").write_text(MODULE)
    registry = dict(base.STRATEGIES)
    monkeypatch.setattr(base, "STRATEGIES", registry)
    monkeypatch.setattr(strategies_package, "STRATEGIES", registry)
    monkeypatch.setattr(strategies_package, "__all__", list(strategies_package.__all__))
    monkeypatch.setattr(strategies_package, "ThrowawayStrategy", None, raising=False)  # removed afterwards
    monkeypatch.setattr(strategies_package, "__path__", [*strategies_package.__path__, str(modules)])
    yield tmp_path
    sys.modules.pop(f"avdisentangle.strategies.{NAME}", None)


def make(tree: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(tree), "-f", str(REPO / "Makefile"), *args],
                          capture_output=True, text=True, timeout=60)


def sweep_grid(config: dict) -> list[dict]:
    """Every run the engine proposes for a grid sweep."""
    runs: list[sweeps.SweepRun] = []
    while (run := sweeps.next_run(config, runs)) is not None:
        runs.append(sweeps.SweepRun(name=f"run-{len(runs)}", config=run.config, state="finished"))
    return [{name: spec["value"] for name, spec in run.config.items()} for run in runs]


def test_a_new_strategy_appears_everywhere_without_editing_a_list(scratch, monkeypatch):
    config_file = f"experiments/configs/strategy/{NAME}.yaml"

    strategies_package.import_strategy_modules()  # what importing the package does
    cls = strategies_package.STRATEGIES[NAME]
    assert cls.__name__ == "ThrowawayStrategy" and issubclass(cls, base.DisentanglementStrategy)
    module, _, attribute = "avdisentangle.strategies.ThrowawayStrategy".rpartition(".")
    assert getattr(importlib.import_module(module), attribute) is cls  # the config's class_path resolves

    assert make(scratch, "strategy-exists", f"STRATEGY={NAME}").returncode == 0
    unknown = make(scratch, "strategy-exists", "STRATEGY=nonesuch")
    assert unknown.returncode != 0 and f" {NAME}" in unknown.stderr.splitlines()[0]
    dry_run = make(scratch, "-n", "-o", "setup", "train", f"STRATEGY={NAME}")
    assert dry_run.returncode == 0 and f"--config {config_file}" in dry_run.stdout

    config_dir, sweep_dir = scratch / "experiments/configs", scratch / "experiments/sweeps"
    assert NAME in discover_strategies(config_dir)
    plan = plan_runs(discover_strategies(config_dir), config_dir, sweep_dir, PROFILES["quick"], seeds=1, folds=0)
    assert [spec.strategy_config for spec in plan if spec.strategy == NAME] == [str(scratch / config_file)]

    monkeypatch.chdir(scratch)
    grid = sweep_grid(load_sweep_config(REPO / "experiments/sweeps/strategies.yaml"))
    expected = sorted(f"experiments/configs/strategy/{path.name}" for path in (config_dir / "strategy").iterdir())
    assert sorted({run["config"] for run in grid}) == expected and config_file in expected
    assert {run["seed_everything"] for run in grid if run["config"] == config_file} == {0, 1, 2}
