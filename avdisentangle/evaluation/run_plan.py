"""Which runs a report trains: strategies, their strengths, seeds and speaker folds.

A profile says how much evidence to gather; each strategy's own strength comes from its config file,
and the strengths beside it from its sweep file's weight range (`--grid`) or, where the transition
between "removes nothing" and "emotion gone" is narrower than a geometric grid resolves, as given
(`--strengths`). Unseen-speaker folds run at every strength, so the payoff on new people can be read
against strength.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from avdisentangle.evaluation import analysis
from avdisentangle.evaluation.runs import RunSpec
from avdisentangle.lightning_cli import file_callbacks


@dataclass(frozen=True)
class Profile:
    """How much evidence a profile gathers; its fit settings are in experiments/configs/report/<name>.yaml."""

    seeds: int
    folds: int
    grid: int  # strengths per strategy from its sweep file (1: the config file's strength only)


PROFILES = {"quick": Profile(seeds=6, folds=6, grid=1), "full": Profile(seeds=6, folds=6, grid=5)}


def discover_strategies(config_dir: Path) -> list[str]:
    """Every strategy config file, `none` first: a new file shows up in the report by itself."""
    names = sorted(p.stem for p in (config_dir / "strategy").glob("*.yaml"))
    return sorted(names, key=lambda n: n != analysis.BASELINE)


def default_strength(strategy_config: Path) -> float | None:
    """The `weight` the strategy file gives its callback (None for `none`)."""
    callbacks = file_callbacks(strategy_config)
    return next((float(c["init_args"]["weight"]) for c in callbacks if "weight" in c.get("init_args", {})), None)


def strength_grid(sweep_file: Path, points: int) -> list[float]:
    """`points` geometric steps over the weight range the strategy's sweep file searches."""
    if points < 2 or not sweep_file.exists():
        return []
    weight = (yaml.safe_load(sweep_file.read_text()).get("parameters") or {}).get("trainer.callbacks.weight") or {}
    if "values" in weight:
        return sorted(float(v) for v in weight["values"])
    if "min" not in weight:
        return []
    return [float(f"{w:.3g}") for w in np.geomspace(float(weight["min"]), float(weight["max"]), points)]


def plan_runs(
    strategies,
    config_dir: Path,
    sweep_dir: Path,
    profile: Profile,
    seeds: int,
    folds: int,
    strengths: dict[str, list[float]] | None = None,
) -> list[RunSpec]:
    """Closed-set runs per strategy x strength x seed, and unseen-speaker runs per strategy x strength x fold.
    `strengths` gives a strategy's strengths beside its file's own, in place of its sweep file's grid."""
    specs = []
    for strategy in strategies:
        config = config_dir / "strategy" / f"{strategy}.yaml"
        default = default_strength(config)
        given = (strengths or {}).get(strategy)
        grid = given if given is not None else strength_grid(sweep_dir / f"{strategy}.yaml", profile.grid)
        grid = [float(w) for w in grid if w != default] if default is not None else []
        for seed in range(seeds):
            specs += [RunSpec(strategy, str(config), seed, strength=w) for w in [None, *grid]]
        if folds >= 2:  # every strength too: where does removing identity help new speakers most?
            specs += [
                RunSpec(strategy, str(config), fold, "unseen", fold=fold, num_folds=folds, strength=w)
                for w in [None, *grid]
                for fold in range(folds)
            ]
    return specs


def protocol_runs(strategies: list[str], config_dir: Path, num_folds: int) -> list[RunSpec]:
    """Every strategy at its file's strength on every protocol fold; seed = fold, so strategies pair by fold."""
    configs = {strategy: str(config_dir / "strategy" / f"{strategy}.yaml") for strategy in strategies}
    return [
        RunSpec(strategy, configs[strategy], fold, "protocol", fold=fold, num_folds=num_folds)
        for strategy in strategies
        for fold in range(num_folds)
    ]
