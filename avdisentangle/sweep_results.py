"""The results of a local sweep: each run as a `Trial`, and the runs ranked by the sweep's metric, as a
CSV file and a markdown table."""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

with warnings.catch_warnings():
    # sweeps 0.2 declares pydantic-v1 config; under pydantic 2 that warns at import (see Trial.as_sweep_run)
    warnings.simplefilter("ignore")
    import sweeps

FINISHED, FAILED = sweeps.RunState.finished.value, sweeps.RunState.failed.value


@dataclass
class Trial:
    """One finished or failed run of the sweep, in the form the results table and the engine need."""

    name: str
    config: dict[str, dict[str, Any]]  # the engine's proposal: {parameter: {"value": value}}
    state: str  # a sweeps.RunState value: finished or failed
    seconds: float
    summary: dict[str, float] = field(default_factory=dict)
    error: str = ""
    ran: dict[str, Any] = field(default_factory=dict)  # the parameters' values in the run's saved config

    @property
    def proposed(self) -> dict[str, Any]:
        return {name: spec["value"] for name, spec in self.config.items()}

    @property
    def params(self) -> dict[str, Any]:
        """What the run used: arguments after `--` override the proposal, so its saved config wins."""
        return {**self.proposed, **self.ran}

    def overridden(self, name: str) -> bool:
        proposed, ran = self.proposed.get(name), self.params.get(name)
        if all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (proposed, ran)):
            return not math.isclose(proposed, ran, rel_tol=1e-9)
        return proposed != ran

    def as_sweep_run(self) -> sweeps.SweepRun:
        """The engine's view of the run; `summaryMetrics` by alias because sweeps 0.2 under
        pydantic 2 silently drops `summary_metrics=`, and bayes would then never see a metric."""
        return sweeps.SweepRun(name=self.name, config=self.config, summaryMetrics=self.summary, state=self.state)

    def metric(self, name: str) -> float | None:
        value = self.summary.get(name)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


MISSING = object()


def saved_config_file(run_dir: Path) -> Path | None:
    """The config.yaml LightningCLI saved in the trainer's log dir (the first logger's folder, or the
    run folder): the shallowest one under the run, since W&B keeps config.yaml files of its own under wandb/."""
    found = [path for path in run_dir.rglob("config.yaml") if "wandb" not in path.relative_to(run_dir).parts]
    return min(found, key=lambda path: len(path.parts), default=None)


def saved_value(node: Any, keys: list[str]) -> Any:
    """The value at a dotted CLI key, read as the CLI sets it: through a class's init_args, and in a list
    (trainer.callbacks) from the last item that has the key; MISSING where the config lacks it."""
    if not keys:
        return node
    if isinstance(node, list):
        values = (saved_value(item, keys) for item in reversed(node))
        return next((value for value in values if value is not MISSING), MISSING)
    if not isinstance(node, dict):
        return MISSING
    if keys[0] in node:
        return saved_value(node[keys[0]], keys[1:])
    return saved_value(node["init_args"], keys) if isinstance(node.get("init_args"), dict) else MISSING


def ran_params(run_dir: Path, proposal: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each parameter's value in the run's saved config, which holds what every argument resolved to;
    a parameter the config does not hold (a `config` file) keeps its proposal."""
    path = saved_config_file(run_dir)
    try:
        saved = yaml.safe_load(path.read_text()) if path else None
    except (OSError, yaml.YAMLError):
        return {}
    values = {name: saved_value(saved, name.split(".")) for name in proposal if name != "config"}
    return {name: value for name, value in values.items() if value is not MISSING}


def ranked_trials(trials: list[Trial], metric: dict[str, Any] | None) -> list[Trial]:
    """Best first by the sweep's metric and goal (W&B's default goal: minimize); runs without it last."""
    if not metric:
        return list(trials)
    sign = -1.0 if metric.get("goal") == "maximize" else 1.0

    def key(trial: Trial) -> tuple[bool, float]:
        value = trial.metric(metric["name"])
        return (value is None, 0.0 if value is None else sign * value)

    return sorted(trials, key=key)


def trial_cell(value: Any) -> str:
    """A parameter or metric as a short table cell (4 significant digits for a float)."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def param_cell(trial: Trial, name: str) -> str:
    """The value the run used, and the proposal where extra arguments overrode it."""
    cell = trial_cell(trial.params.get(name, ""))
    return f"{cell} (proposed {trial_cell(trial.proposed.get(name, ''))})" if trial.overridden(name) else cell


def trials_markdown(trials: list[Trial], metric_name: str | None) -> str:
    """The ranking at a glance: metric, parameters, duration, and why a run failed."""
    params = list(trials[0].params) if trials else []
    header = ["run", "state", *([metric_name] if metric_name else []), *params, "seconds", "error"]
    rows = [
        [
            trial.name,
            trial.state,
            *([trial_cell(trial.summary.get(metric_name, ""))] if metric_name else []),
            *(param_cell(trial, name) for name in params),
            f"{trial.seconds:.0f}",
            trial.error.splitlines()[-1][:120] if trial.error else "",
        ]
        for trial in trials
    ]
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(part).replace("|", "\\|") for part in line) + " |" for line in lines)


def write_trials_csv(trials: list[Trial], metric_name: str | None, path: Path) -> None:
    """Every parameter and every final metric of every run, for plots and further analysis."""
    params = list(trials[0].params) if trials else []
    metrics = sorted({name for trial in trials for name in trial.summary} - {metric_name})
    header = ["run", "state", *([metric_name] if metric_name else []), *params, "seconds", *metrics, "error"]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for trial in trials:
            fixed = {"run": trial.name, "state": trial.state, "seconds": round(trial.seconds, 1), "error": trial.error}
            writer.writerow({**fixed, **trial.params, **trial.summary})


def write_sweep_results(trials: list[Trial], metric: dict[str, Any] | None, output: Path) -> str:
    """Rewrite sweep_results.csv and .md (after every run, so an interrupted sweep keeps its results)."""
    metric_name = metric["name"] if metric else None
    ordered = ranked_trials(trials, metric)
    write_trials_csv(ordered, metric_name, output / "sweep_results.csv")
    table = trials_markdown(ordered, metric_name)
    (output / "sweep_results.md").write_text(table + "\n")
    return table
