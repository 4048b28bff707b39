"""The results of a local sweep: each run as a `Trial`, and the runs ranked by the sweep's metric, as a
CSV file and a markdown table."""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    @property
    def params(self) -> dict[str, Any]:
        return {name: spec["value"] for name, spec in self.config.items()}

    def as_sweep_run(self) -> sweeps.SweepRun:
        """The engine's view of the run; `summaryMetrics` by alias because sweeps 0.2 under
        pydantic 2 silently drops `summary_metrics=`, and bayes would then never see a metric."""
        return sweeps.SweepRun(name=self.name, config=self.config, summaryMetrics=self.summary, state=self.state)

    def metric(self, name: str) -> float | None:
        value = self.summary.get(name)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


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


def trials_markdown(trials: list[Trial], metric_name: str | None) -> str:
    """The ranking at a glance: metric, parameters, duration, and why a run failed."""
    params = list(trials[0].params) if trials else []
    header = ["run", "state", *([metric_name] if metric_name else []), *params, "seconds", "error"]
    rows = [
        [
            trial.name,
            trial.state,
            *([trial_cell(trial.summary.get(metric_name, ""))] if metric_name else []),
            *(trial_cell(trial.params.get(name, "")) for name in params),
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
