"""`python -m avdisentangle report`: every strategy over seeds and speaker folds, with intervals.

On the built-in benchmark (`experiments/configs/data/benchmark.yaml`: 24 speakers, speakers and
emotions entangled at 0.8) it runs, through the ordinary Lightning CLI `fit`:
- closed set: every strategy config (at its file's strength, and over a grid of strengths read
  from its sweep file when `--grid` > 1) x seeds. Identity probes need known speakers.
- unseen speakers: every strategy at its file's strength (and over the same grid) x speaker folds;
  emotion UAR on the speakers held out.
Runs are independent, so `--jobs` of them run side by side (worker processes sharing the cores,
or one GPU). Then paired differences against `none`, intervals, the frontier, and the verdict.

`--protocol speaker_folds` runs instead every fold of the corpus's published speaker-independent
protocol (`data/protocols.py`: CREMA-D 5 folds, RAVDESS 6) for each strategy, and writes what papers
report: emotion WA, UA and macro-F1 as mean ± std over folds, and the pooled confusion matrix.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentParser

from avdisentangle.data.cache import CONTACT_SHEET, FeatureCache
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.data.protocols import FoldProtocol, corpus_folds, folds_text, protocol_for
from avdisentangle.evaluation.protocol_outputs import write_protocol_results
from avdisentangle.evaluation.report_outputs import write_results
from avdisentangle.evaluation.run_plan import (
    PROFILES,
    Profile,
    default_strength,
    discover_strategies,
    plan_runs,
    protocol_runs,
)
from avdisentangle.evaluation.runs import RunOutcome, RunSpec, fit_and_evaluate
from avdisentangle.lightning_cli import data_from_args
from avdisentangle.workers import exit_with_parent


def write_protocol_folds(datamodule: AVDataModule, path: Path) -> FoldProtocol:
    """The corpus's protocol, with its folds over the actors this corpus has written to `path` (citable)."""
    protocol = protocol_for(datamodule.corpus)
    fold_of = corpus_folds(datamodule.corpus, FeatureCache.open(datamodule.cache_location()))
    path.write_text(folds_text(protocol, fold_of, f"the {datamodule.corpus} corpus at {datamodule.corpus_root()}"))
    print(f"{protocol.title} protocol: {protocol.num_folds} folds of {len(fold_of)} actors, written to {path}")
    return protocol


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
        elif outcome.spec.split == "protocol":
            what = f"WA {row['emotion_wa']:.3f}, UA {row['emotion_uar']:.3f}, macro-F1 {row['emotion_f1']:.3f}"
        else:
            what = (
                f"UAR {row['emotion_uar']:.3f}, speaker from z_emotion {row['probe_speaker_from_emotion_mlp']:.3f} "
                f"(floor {row['floor_speaker_from_emotion_label']:.3f})"
            )
        print(
            f"[{len(outcomes)}/{len(specs)}] {outcome.spec.name}: {what}, {row['seconds']:.0f} s; about "
            f"{left / 60:.1f} min left",
            flush=True,
        )

    if jobs == 1:
        for spec in specs:
            done(fit_and_evaluate(spec, configs, out / "runs" / spec.name, extra))
    else:
        with ProcessPoolExecutor(
            jobs, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent
        ) as pool:
            futures = [
                pool.submit(fit_and_evaluate, spec, configs, out / "runs" / spec.name, extra, threads) for spec in specs
            ]
            for future in as_completed(futures):
                done(future.result())
    order = {spec: i for i, spec in enumerate(specs)}
    return sorted(outcomes, key=lambda o: order[o.spec])


def prepare_benchmark(configs: list[str], extra: list[str]) -> AVDataModule:
    """Build the corpus and its feature cache once, before any worker starts."""
    data_args = [*[f"--config={c}" for c in configs], *[a for a in extra if a.startswith("--data.")]]
    datamodule = data_from_args(data_args, prog="avdisentangle report")
    summary = datamodule.prepare_data()
    if summary.from_existing_cache:
        print("\n".join(summary.lines()))
    return datamodule


def copy_contact_sheet(datamodule: AVDataModule, out: Path) -> dict[str, str]:
    """The cache's contact sheet of face crops beside the results, as {caption: file name} ({} without video)."""
    sheet = datamodule.cache_location() / CONTACT_SHEET
    if not sheet.exists():
        return {}
    shutil.copyfile(sheet, out / CONTACT_SHEET)
    return {"Face crops as cached: a few clips per speaker (red: no face found, centre crop)": CONTACT_SHEET}


def report_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="avdisentangle report",
        description="Train every strategy over seeds and speaker folds, probe, tabulate and plot.",
    )
    parser.add_argument(
        "--config",
        type=list[str],
        default=["experiments/configs/base.yaml", "experiments/configs/data/benchmark.yaml"],
        help="fit configs, in order (the profile's file is added after them)",
    )
    parser.add_argument(
        "--profile",
        type=str,
        default="full",
        help=f"one of {', '.join(PROFILES)}: adds experiments/configs/report/<profile>.yaml",
    )
    parser.add_argument(
        "--protocol",
        type=Literal["default", "speaker_folds"],
        default="default",
        help="default: closed set over seeds + speaker folds; speaker_folds: every fold of the corpus's "
        "published speaker-independent protocol (CREMA-D 5, RAVDESS 6), mean ± std of WA, UA, macro-F1",
    )
    parser.add_argument(
        "--strategies",
        type=list[str] | str | None,
        default=None,
        help="strategy config names: none, none,grl or [none,grl] (default: every file in <config_dir>/strategy)",
    )
    parser.add_argument(
        "--seeds", type=int | None, default=None, help="seeds of the closed-set runs (default: the profile's)"
    )
    parser.add_argument(
        "--folds",
        type=int | None,
        default=None,
        help="speaker folds for unseen-speaker UAR; 0 skips them (default: the profile's)",
    )
    parser.add_argument(
        "--grid",
        type=int | None,
        default=None,
        help="strengths per strategy from its sweep file; 1: the file's strength only",
    )
    parser.add_argument(
        "--strengths",
        type=dict[str, list[float]] | None,
        default=None,
        help="strengths per strategy beside its file's own, in place of its sweep file's grid: "
        "'{grl: [0.3, 1, 3], hsic: [1, 3]}' (resolves a narrow transition a geometric grid skips)",
    )
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="runs side by side (worker processes)"
    )
    parser.add_argument(
        "--name",
        type=str | None,
        default=None,
        help="results/<name>/ (default: the profile; <profile>-<protocol> for a protocol)",
    )
    parser.add_argument("--output", type=str, default="results")
    parser.add_argument("--config_dir", type=str, default="experiments/configs")
    parser.add_argument("--sweep_dir", type=str, default="experiments/sweeps")
    parser.add_argument("--fit_args", type=list[str], default=[], help="extra fit arguments for every run")
    return parser


def checked_choices(parser: ArgumentParser, config) -> tuple[Profile, list[str]]:
    """The profile with the options that override it, and the strategies to run (each must have a config)."""
    if config.profile not in PROFILES:
        parser.error(f"--profile must be one of {', '.join(PROFILES)}, got {config.profile!r}")
    if config.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {config.jobs}")
    profile = PROFILES[config.profile]
    profile = Profile(
        config.seeds or profile.seeds,
        profile.folds if config.folds is None else config.folds,
        config.grid or profile.grid,
    )
    if config.protocol == "speaker_folds":
        given = [f"--{name}" for name in ("seeds", "folds", "grid", "strengths") if config[name] is not None]
        if given:
            parser.error(f"{', '.join(given)}: not for --protocol speaker_folds, whose corpus protocol fixes the runs")
    available = discover_strategies(Path(config.config_dir))
    strategies = config.strategies or available
    if isinstance(strategies, str):
        strategies = [name.strip() for name in strategies.split(",") if name.strip()]
    unknown = sorted(set(strategies) - set(available))
    if unknown:
        parser.error(f"no strategy config for {', '.join(unknown)}; have {', '.join(available)}")
    not_run = sorted(set(config.strengths or {}) - set(strategies))
    if not_run:
        parser.error(f"--strengths names {', '.join(not_run)}, which this report does not run")
    return profile, strategies


def report(args: list[str]) -> int:
    parser = report_parser()
    config = parser.parse_args(args)
    profile, strategies = checked_choices(parser, config)
    config_dir = Path(config.config_dir)
    configs = [*config.config, str(config_dir / "report" / f"{config.profile}.yaml")]
    default_name = config.profile if config.protocol == "default" else f"{config.profile}-{config.protocol}"
    out = Path(config.output) / (config.name or default_name)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    datamodule = prepare_benchmark(configs, config.fit_args)
    figures = copy_contact_sheet(datamodule, out)
    if config.protocol == "speaker_folds":
        protocol = write_protocol_folds(datamodule, out / "folds.csv")
        specs = protocol_runs(strategies, config_dir, protocol.num_folds)
    else:
        specs = plan_runs(
            strategies, config_dir, Path(config.sweep_dir), profile, profile.seeds, profile.folds, config.strengths
        )
    print(f"{len(specs)} runs, {config.jobs} at a time", flush=True)
    outcomes = execute(specs, configs, out, config.fit_args, config.jobs)
    command = "python -m avdisentangle report " + " ".join(args)
    if config.protocol == "speaker_folds":
        heading = {"title": protocol.title, "folds_file": out / "folds.csv", "command": command}
        write_protocol_results(outcomes, out, {**heading, "seconds": time.perf_counter() - started}, figures)
        return 0
    defaults = {s: default_strength(config_dir / "strategy" / f"{s}.yaml") for s in strategies}
    heading = {
        "profile": profile,
        "command": command,
        "seconds": time.perf_counter() - started,
    }
    write_results(outcomes, defaults, out, heading, figures)
    return 0
