"""`python -m avdisentangle report`: every strategy over seeds and speaker folds, with intervals.

On the built-in benchmark (`experiments/configs/data/benchmark.yaml`: 24 speakers, speakers and
emotions entangled at 0.8) it runs, through the ordinary Lightning CLI `fit`:
- closed set: every strategy config (at its file's strength, and over a grid of strengths read
  from its sweep file when `--grid` > 1) x seeds. Identity probes need known speakers.
- unseen speakers: every strategy at its file's strength x speaker folds; emotion UAR on the
  speakers held out.
Runs are independent, so `--jobs` of them run side by side (worker processes sharing the cores,
or one GPU). Then paired differences against `none`, intervals, the frontier, and the verdict.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml
from jsonargparse import ArgumentParser

from avdisentangle.evaluation import analysis, tables
from avdisentangle.evaluation.runs import RunOutcome, RunSpec, fit_and_evaluate
from avdisentangle.workers import exit_with_parent

PAPER_STRATEGIES = ("grl", "confusion", "orthogonal")


@dataclass(frozen=True)
class Profile:
    """How much evidence a profile gathers; its fit settings are in experiments/configs/report/<name>.yaml."""

    seeds: int
    folds: int
    grid: int  # strengths per strategy from its sweep file (1: the config file's strength only)


PROFILES = {"quick": Profile(seeds=3, folds=3, grid=1), "full": Profile(seeds=5, folds=4, grid=5)}


def discover_strategies(config_dir: Path) -> list[str]:
    """Every strategy config file, `none` first: a new file shows up in the report by itself."""
    names = sorted(p.stem for p in (config_dir / "strategy").glob("*.yaml"))
    return sorted(names, key=lambda n: n != analysis.BASELINE)


def default_strength(strategy_config: Path) -> float | None:
    """The `weight` the strategy file gives its callback (None for `none`)."""
    callbacks = (yaml.safe_load(strategy_config.read_text()) or {}).get("trainer", {}).get("callbacks") or []
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


def plan_runs(strategies, config_dir: Path, sweep_dir: Path, profile: Profile, seeds: int, folds: int) -> list[RunSpec]:
    specs = []
    for strategy in strategies:
        config = config_dir / "strategy" / f"{strategy}.yaml"
        default = default_strength(config)
        grid = [w for w in strength_grid(sweep_dir / f"{strategy}.yaml", profile.grid) if w != default] if default is not None else []
        for seed in range(seeds):
            specs += [RunSpec(strategy, str(config), seed, strength=w) for w in [None, *grid]]
        if folds >= 2:
            specs += [RunSpec(strategy, str(config), fold, "unseen", fold=fold, num_folds=folds) for fold in range(folds)]
    return specs


def execute(specs: list[RunSpec], configs: list[str], out: Path, extra: list[str], jobs: int) -> list[RunOutcome]:
    """Run every spec, `jobs` at a time in worker processes (in this process when jobs is 1)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    outcomes, started = [], time.perf_counter()

    def done(outcome: RunOutcome) -> None:
        outcomes.append(outcome)
        row, elapsed = outcome.row, time.perf_counter() - started
        left = elapsed / len(outcomes) * (len(specs) - len(outcomes))
        if outcome.spec.split == "unseen":
            what = f"UAR on unseen speakers {row['unseen_speaker_emotion_uar']:.3f}"
        else:
            what = (f"UAR {row['emotion_uar']:.3f}, speaker from z_emotion {row['probe_speaker_from_emotion_mlp']:.3f} "
                    f"(floor {row['floor_speaker_from_emotion_label']:.3f})")
        print(f"[{len(outcomes)}/{len(specs)}] {outcome.spec.name}: {what}, {row['seconds']:.0f} s; about {left / 60:.1f} min left", flush=True)

    if jobs == 1:
        for spec in specs:
            done(fit_and_evaluate(spec, configs, out / "runs" / spec.name, extra))
    else:
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent) as pool:
            futures = [pool.submit(fit_and_evaluate, spec, configs, out / "runs" / spec.name, extra, threads) for spec in specs]
            for future in as_completed(futures):
                done(future.result())
    order = {spec: i for i, spec in enumerate(specs)}
    return sorted(outcomes, key=lambda o: order[o.spec])


def prepare_benchmark(configs: list[str], extra: list[str]) -> None:
    """Build the corpus and its feature cache once, before any worker starts."""
    from avdisentangle.cli import prepare

    prepare([*[f"--config={c}" for c in configs], *[a for a in extra if a.startswith("--data.")]])


def write_plots(outcomes: list[RunOutcome], closed: dict, best: str | None, defaults: dict, out: Path) -> dict[str, str]:
    """The report's PNGs; returns {caption: file name}."""
    from avdisentangle.evaluation import plots

    main = [o for o in outcomes if o.spec.split == "closed_set" and o.spec.strength is None]
    files = {}
    if not main:
        return files
    first_seed = min(o.spec.seed for o in main)
    by_strategy = {o.spec.strategy: o for o in main if o.spec.seed == first_seed}
    reference = next(iter(by_strategy.values()))
    shown = list(dict.fromkeys(s for s in (analysis.BASELINE, best) if s in by_strategy)) or [reference.spec.strategy]
    panels = [(s, by_strategy[s].test.z_emotion, by_strategy[s].test.emotion, by_strategy[s].test.speaker) for s in shown]
    plots.plot_embeddings(panels, reference.emotion_names, reference.speaker_names, out / "embeddings.png")
    files["t-SNE of test-set z_emotion, by emotion (top) and speaker (bottom)"] = "embeddings.png"
    curves: dict[str, list] = {}
    by_weight = sorted(((k, defaults.get(k[0]) if k[1] is None else k[1], s) for k, s in closed.items()), key=lambda p: (p[0][0], p[1] or 0.0))
    for (strategy, strength), weight, s in by_weight:
        if strategy != analysis.BASELINE:
            label = "file's" if weight is None else f"{weight:g}"
            curves.setdefault(strategy, []).append((label, s["disentanglement_floor_pct"], s["emotion_uar"], strength is None))
    if curves:
        baseline = closed.get((analysis.BASELINE, None))
        plots.plot_frontier(curves, out / "frontier.png", baseline["emotion_uar"] if baseline else None)
        files["Frontier: emotion UAR against floor-normalised disentanglement (95% intervals over seeds)"] = "frontier.png"
    matrices = {s: sum(o.confusion for o in main if o.spec.strategy == s) for s in by_strategy}
    plots.plot_confusion_matrices(matrices, reference.emotion_names, out / "confusion.png")
    files["Emotion confusion matrices (test, summed over seeds, row-normalised)"] = "confusion.png"
    plots.plot_training_curves({s: o.history for s, o in by_strategy.items()}, out / "training.png")
    files[f"Validation UAR per epoch (seed {first_seed})"] = "training.png"
    return files


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}; torch {torch.__version__}"


def report(args: list[str]) -> int:
    parser = ArgumentParser(prog="avdisentangle report", description="Train every strategy over seeds and speaker folds, probe, tabulate and plot.")
    parser.add_argument("--config", type=list[str], default=["experiments/configs/base.yaml", "experiments/configs/data/benchmark.yaml"],
                        help="fit configs, in order (the profile's file is added after them)")
    parser.add_argument("--profile", type=str, default="full", help=f"one of {', '.join(PROFILES)}: adds experiments/configs/report/<profile>.yaml")
    parser.add_argument("--strategies", type=list[str] | None, default=None, help="strategy config names (default: every file in <config_dir>/strategy)")
    parser.add_argument("--seeds", type=int | None, default=None, help="seeds of the closed-set runs (default: the profile's)")
    parser.add_argument("--folds", type=int | None, default=None, help="speaker folds for unseen-speaker UAR; 0 skips them (default: the profile's)")
    parser.add_argument("--grid", type=int | None, default=None, help="strengths per strategy from its sweep file; 1: the file's strength only")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs side by side (worker processes)")
    parser.add_argument("--name", type=str | None, default=None, help="results/<name>/ (default: the profile)")
    parser.add_argument("--output", type=str, default="results")
    parser.add_argument("--config_dir", type=str, default="experiments/configs")
    parser.add_argument("--sweep_dir", type=str, default="experiments/sweeps")
    parser.add_argument("--fit_args", type=list[str], default=[], help="extra fit arguments for every run")
    config = parser.parse_args(args)
    if config.profile not in PROFILES:
        parser.error(f"--profile must be one of {', '.join(PROFILES)}, got {config.profile!r}")
    if config.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {config.jobs}")
    profile = PROFILES[config.profile]
    profile = Profile(config.seeds or profile.seeds, profile.folds if config.folds is None else config.folds, config.grid or profile.grid)
    config_dir = Path(config.config_dir)
    available = discover_strategies(config_dir)
    strategies = config.strategies or available
    unknown = sorted(set(strategies) - set(available))
    if unknown:
        parser.error(f"no strategy config for {', '.join(unknown)}; have {', '.join(available)}")
    configs = [*config.config, str(config_dir / "report" / f"{config.profile}.yaml")]
    out = Path(config.output) / (config.name or config.profile)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    prepare_benchmark(configs, config.fit_args)
    specs = plan_runs(strategies, config_dir, Path(config.sweep_dir), profile, profile.seeds, profile.folds)
    print(f"{len(specs)} runs, {config.jobs} at a time", flush=True)
    outcomes = execute(specs, configs, out, config.fit_args, config.jobs)
    rows = [o.row for o in outcomes]
    analysis.add_paired_columns(rows)
    tables.write_runs_csv(rows, out / "results.csv")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    closed = analysis.summarise(rows, "closed_set", analysis.CLOSED_SET_SUMMARY)
    unseen = analysis.summarise(rows, "unseen", analysis.UNSEEN_SUMMARY)
    defaults = {s: default_strength(config_dir / "strategy" / f"{s}.yaml") for s in strategies}
    knees = {s: analysis.knee(closed, s, defaults[s]) for s in strategies if s != analysis.BASELINE}
    pooled = {s: analysis.pooled_unseen_delta(outcomes, s) for s in strategies if s != analysis.BASELINE}
    if closed:
        tables.write_summary_csv(closed, "closed_set", out / "frontier.csv", defaults, knees)
    if unseen:
        tables.write_summary_csv(unseen, "unseen", out / "unseen.csv", defaults)
    best, sentence = analysis.verdict(closed) if closed else (None, "")
    files = write_plots(outcomes, closed, best, defaults, out)
    text = summary_markdown(out, rows, closed, unseen, pooled, knees, defaults, sentence, files, profile,
                            "python -m avdisentangle report " + " ".join(args), time.perf_counter() - started)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'} and {len(files)} plots")
    log_to_wandb(out, rows, files)
    return 0


def summary_markdown(out, rows, closed, unseen, pooled, knees, defaults, sentence, files, profile, command, seconds) -> str:
    closed_rows = [r for r in rows if r["split"] == "closed_set"]
    lines = [f"# Disentanglement report: {out.name}", "", f"    {command}", "",
             f"{len(rows)} runs in {seconds / 60:.1f} min on {machine()}. Means with 95% intervals (Student t over "
             f"{profile.seeds} seeds, or over {profile.folds} speaker folds); changes are paired with `none` at the same seed or fold.", ""]
    if closed:
        first = closed_rows[0]
        lines += [
            "## Identity left in z_emotion (closed set: test clips of the training speakers)", "",
            f"Speaker chance 1/K = {first['chance_speaker']:.3f}; the emotion label alone names the speaker at "
            f"{first['floor_speaker_from_emotion_label']:.3f} (the floor, also the chance level of the conditional probe, which "
            f"reads the speaker within each emotion class). D_floor % = (leak_none - leak) / (leak_none - floor); see README for every metric.",
            "", tables.closed_set_table(closed), "", sentence, "",
        ]
    if unseen:
        lines += ["## Emotion on unseen speakers (speakers held out in rotation)", "", tables.unseen_table(unseen, pooled), ""]
    if any(strength is not None for _, strength in closed):
        lines += ["## Frontier over strengths (knee chosen on validation, never test)", "",
                  tables.frontier_table(closed, knees, defaults), ""]
    if closed:
        lines += ["## Targets", "", *tables.targets(closed, unseen, pooled, PAPER_STRATEGIES), ""]
    lines += [f"![{caption}]({name})\n\n{caption}\n" for caption, name in files.items()]
    return "\n".join(lines)


def log_to_wandb(out: Path, rows: list[dict], files: dict[str, str]) -> None:
    """Upload the table and images as one W&B run when the user is logged in."""
    from avdisentangle.loggers import wandb_logged_in

    if not wandb_logged_in():
        return
    import wandb

    run = wandb.init(project="avdisentangle", job_type="report", name=out.name, dir=str(out))
    columns = list(tables.RUN_COLUMNS)
    table = wandb.Table(columns=columns, data=[[tables.cell(row.get(c)) for c in columns] for row in rows])
    run.log({"results": table, **{name: wandb.Image(str(out / name)) for name in files.values()}})
    run.finish()
