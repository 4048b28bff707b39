"""`python -m avdisentangle report`: every strategy over several seeds, probed, tabulated, plotted.

Each run is an ordinary `fit` of the Lightning CLI (base config + one strategy config + the
profile's config), run in this process so the feature cache and imports are shared. After
training, the best checkpoint (validation emotion UAR) is tested and its frozen embeddings are
probed. Disentanglement is measured against the `none` run of the same seed.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import numpy as np
from jsonargparse import ArgumentParser

from avdisentangle.evaluation.metrics import disentanglement_pct, mean_std, normalised_disentanglement_pct
from avdisentangle.evaluation.probe import extract_embeddings, probe_all

STRATEGY_ORDER = ("none", "grl", "confusion", "orthogonal", "hsic")
PROFILES = {"quick": 2, "full": 3}  # profile -> default number of seeds
COLUMNS = (
    "strategy", "seed", "emotion_uar", "emotion_f1", "emotion_wa", "speaker_acc",
    "probe_speaker_from_emotion_linear", "probe_speaker_from_emotion_mlp", "probe_emotion_from_emotion_linear",
    "probe_emotion_from_emotion_mlp", "probe_speaker_from_identity_linear", "probe_emotion_from_identity_linear",
    "disentanglement_pct", "disentanglement_norm_pct", "disentanglement_mlp_pct", "chance_speaker",
    "chance_emotion", "seconds",
)
SUMMARY_COLUMNS = (
    "emotion_uar", "emotion_f1", "speaker_acc", "probe_speaker_from_emotion_linear", "probe_speaker_from_emotion_mlp",
    "probe_emotion_from_emotion_linear", "disentanglement_pct", "disentanglement_norm_pct",
)


@dataclass
class RunOutcome:
    """One trained and probed run: its table row and what the plots need."""

    row: dict
    z_emotion: np.ndarray
    emotion: np.ndarray
    speaker: np.ndarray
    confusion: np.ndarray
    emotion_names: list[str]
    speaker_names: list[str]
    history: list[dict]  # the run's metrics.csv rows, for the training curves


def train_and_probe(configs: list[str], strategy_config: Path, seed: int, run_dir: Path, extra: list[str]) -> RunOutcome:
    """Fit one run through the Lightning CLI, test its best checkpoint and probe its embeddings."""
    from avdisentangle.cli import run_lightning

    started = time.perf_counter()
    args = [
        "fit",
        *[f"--config={config}" for config in configs],
        f"--config={strategy_config}",
        f"--seed_everything={seed}",
        f"--checkpoint.dirpath={run_dir / 'checkpoints'}",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.save_dir={run_dir}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--leakage_probe.enabled=false",
        *extra,
    ]
    with patch.object(sys, "argv", sys.argv[:1]):  # LightningCLI warns when it sees this command's own argv
        cli = run_lightning(args)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    metrics = trainer.test(model, datamodule, ckpt_path="best", verbose=False)[0]
    train = extract_embeddings(model, datamodule.loader("train"))
    test = extract_embeddings(model, datamodule.loader("test"))
    row = {
        "strategy": strategy_config.stem,
        "seed": seed,
        "emotion_uar": metrics["test/emotion/uar"],
        "emotion_f1": metrics["test/emotion/f1"],
        "emotion_wa": metrics["test/emotion/wa"],
        "speaker_acc": metrics["test/speaker/wa"],
        **probe_all(train, test, seed),
        "seconds": round(time.perf_counter() - started, 1),
    }
    with (Path(trainer.logger.log_dir) / "metrics.csv").open(newline="") as handle:
        history = list(csv.DictReader(handle))
    return RunOutcome(
        row, test.z_emotion, test.emotion, test.speaker, model.test_confusion_matrix,
        list(datamodule.emotion_names), list(datamodule.speaker_names), history,
    )


def add_disentanglement(rows: list[dict]) -> None:
    """Fill the disentanglement columns of each row from the `none` row of the same seed."""
    baselines = {row["seed"]: row for row in rows if row["strategy"] == "none"}
    for row in rows:
        baseline = baselines.get(row["seed"])
        if baseline is None:
            row["disentanglement_pct"] = row["disentanglement_norm_pct"] = row["disentanglement_mlp_pct"] = float("nan")
            continue
        linear, mlp = "probe_speaker_from_emotion_linear", "probe_speaker_from_emotion_mlp"
        row["disentanglement_pct"] = disentanglement_pct(baseline[linear], row[linear])
        row["disentanglement_norm_pct"] = normalised_disentanglement_pct(baseline[linear], row[linear], row["chance_speaker"])
        row["disentanglement_mlp_pct"] = disentanglement_pct(baseline[mlp], row[mlp])


def summarise(rows: list[dict]) -> dict[str, dict[str, tuple[float, float]]]:
    """Mean and std per strategy of the summary columns, strategies in the usual order."""
    strategies = sorted({row["strategy"] for row in rows}, key=lambda s: (STRATEGY_ORDER + (s,)).index(s))
    return {
        strategy: {column: mean_std(row[column] for row in rows if row["strategy"] == strategy) for column in SUMMARY_COLUMNS}
        for strategy in strategies
    }


def best_strategy(summary: dict[str, dict[str, tuple[float, float]]], uar_tolerance: float = 0.01) -> str | None:
    """The most disentangled strategy whose mean emotion UAR is within `uar_tolerance` of `none`;
    if none qualifies, the one with the best UAR-minus-leakage trade-off."""
    candidates = [s for s in summary if s != "none"]
    if not candidates:
        return None
    if "none" in summary:
        floor = summary["none"]["emotion_uar"][0] - uar_tolerance
        holding = [s for s in candidates if summary[s]["emotion_uar"][0] >= floor]
        if holding:
            return max(holding, key=lambda s: summary[s]["disentanglement_norm_pct"][0])
    return max(candidates, key=lambda s: summary[s]["emotion_uar"][0] - summary[s]["probe_speaker_from_emotion_linear"][0])


def markdown_table(summary: dict[str, dict[str, tuple[float, float]]]) -> str:
    header = "| strategy | " + " | ".join(SUMMARY_COLUMNS) + " |"
    lines = [header, "|" + " --- |" * (len(SUMMARY_COLUMNS) + 1)]
    for strategy, columns in summary.items():
        cells = [f"{mean:.1f} ± {std:.1f}" if column.startswith("disentanglement") else f"{mean:.3f} ± {std:.3f}" for column, (mean, std) in columns.items()]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: list[dict], path: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: f"{value:.4f}" if isinstance(value, float) else value for key, value in row.items()})
    path.write_text(text.getvalue())


def write_plots(outcomes: list[RunOutcome], best: str | None, out: Path) -> dict[str, str]:
    """The report's PNGs; returns {caption: file name}."""
    from avdisentangle.evaluation import plots

    first_seed = min(o.row["seed"] for o in outcomes)
    by_strategy = {o.row["strategy"]: o for o in outcomes if o.row["seed"] == first_seed}
    shown = [s for s in ("none", best) if s in by_strategy] or list(by_strategy)[:1]
    reference = by_strategy[shown[0]]
    files = {}
    panels = [(s, by_strategy[s].z_emotion, by_strategy[s].emotion, by_strategy[s].speaker) for s in dict.fromkeys(shown)]
    plots.plot_embeddings(panels, reference.emotion_names, reference.speaker_names, out / "embeddings.png")
    files["t-SNE of test-set z_emotion, by emotion (top) and speaker (bottom)"] = "embeddings.png"
    rows = [o.row for o in outcomes]
    plots.plot_tradeoff(rows, out / "tradeoff.png", chance_x=rows[0]["chance_speaker"])
    files["Trade-off: emotion UAR against speaker leakage, one point per run"] = "tradeoff.png"
    matrices = {s: sum(o.confusion for o in outcomes if o.row["strategy"] == s) for s in by_strategy}
    plots.plot_confusion_matrices(matrices, reference.emotion_names, out / "confusion.png")
    files["Emotion confusion matrices (test, summed over seeds, row-normalised)"] = "confusion.png"
    plots.plot_training_curves({s: o.history for s, o in by_strategy.items()}, out / "training.png")
    files[f"Validation UAR per epoch (seed {first_seed})"] = "training.png"
    return files


def write_summary(rows, summary, best, files, out: Path, command: str) -> str:
    chance_speaker = rows[0]["chance_speaker"]
    chance_emotion = rows[0]["chance_emotion"]
    seeds = sorted({row["seed"] for row in rows})
    lines = [
        f"# Disentanglement report: {out.name}",
        "",
        f"Runs: {len(rows)} ({len(summary)} strategies x seeds {seeds}). Mean ± std over seeds; test split "
        "(held-out clips of the training speakers). Probes are fitted on frozen train-split embeddings.",
        f"Chance: speaker {chance_speaker:.3f} (1/K), emotion {chance_emotion:.3f}.",
        "Disentanglement = relative drop of the linear probe's speaker accuracy from z_emotion versus `none` "
        "at the same seed; _norm_ measures the drop against the room above chance.",
        "",
        markdown_table(summary),
        "",
    ]
    if best:
        uar_delta = 100 * (summary[best]["emotion_uar"][0] - summary.get("none", summary[best])["emotion_uar"][0])
        lines += [
            f"**Best strategy: {best}**: {summary[best]['disentanglement_norm_pct'][0]:.1f}% disentanglement normalised to chance "
            f"({summary[best]['disentanglement_pct'][0]:.1f}% relative), emotion UAR {uar_delta:+.1f} points versus none.",
            "",
        ]
    lines += [f"![{caption}]({name})\n\n{caption}\n" for caption, name in files.items()]
    lines += ["", "Reproduce:", "", f"    {command}", ""]
    text = "\n".join(lines)
    (out / "summary.md").write_text(text)
    return text


def log_to_wandb(out: Path, rows: list[dict], files: dict[str, str]) -> None:
    """Upload the table and images as one W&B run when the user is logged in."""
    from avdisentangle.loggers import wandb_logged_in

    if not wandb_logged_in():
        return
    import wandb

    run = wandb.init(project="avdisentangle", job_type="report", name=out.name, dir=str(out))
    table = wandb.Table(columns=list(COLUMNS), data=[[row.get(c) for c in COLUMNS] for row in rows])
    run.log({"results": table, **{name: wandb.Image(str(out / name)) for name in files.values()}})
    run.finish()


def report(args: list[str]) -> int:
    parser = ArgumentParser(prog="avdisentangle report", description="Train every strategy over seeds, probe, tabulate and plot.")
    parser.add_argument("--config", type=list[str], default=["experiments/configs/base.yaml"], help="fit configs, in order")
    parser.add_argument("--profile", type=str, default="full", help=f"one of {', '.join(PROFILES)}: adds experiments/configs/report/<profile>.yaml")
    parser.add_argument("--strategies", type=list[str], default=list(STRATEGY_ORDER), help="strategy config names")
    parser.add_argument("--seeds", type=int | None, default=None, help="number of seeds (default: 2 quick, 3 full)")
    parser.add_argument("--name", type=str | None, default=None, help="results/<name>/ (default: the profile)")
    parser.add_argument("--output", type=str, default="results")
    parser.add_argument("--config_dir", type=str, default="experiments/configs")
    parser.add_argument("--fit_args", type=list[str], default=[], help="extra fit arguments for every run")
    config = parser.parse_args(args)
    if config.profile not in PROFILES:
        parser.error(f"--profile must be one of {', '.join(PROFILES)}, got {config.profile!r}")
    config_dir = Path(config.config_dir)
    strategy_configs = [config_dir / "strategy" / f"{name}.yaml" for name in config.strategies]
    missing = [str(p) for p in strategy_configs if not p.exists()]
    if missing:
        parser.error(f"no strategy config {', '.join(missing)}; have {', '.join(sorted(p.stem for p in (config_dir / 'strategy').glob('*.yaml')))}")
    configs = [*config.config, str(config_dir / "report" / f"{config.profile}.yaml")]
    seeds = list(range(config.seeds or PROFILES[config.profile]))
    out = Path(config.output) / (config.name or config.profile)
    out.mkdir(parents=True, exist_ok=True)
    outcomes = []
    total = len(seeds) * len(strategy_configs)
    for seed in seeds:
        for strategy_config in strategy_configs:
            print(f"[{len(outcomes) + 1}/{total}] {strategy_config.stem}, seed {seed}", flush=True)
            outcome = train_and_probe(configs, strategy_config, seed, out / "runs" / f"{strategy_config.stem}-seed{seed}", config.fit_args)
            print(f"    emotion UAR {outcome.row['emotion_uar']:.3f}, probe speaker from z_emotion {outcome.row['probe_speaker_from_emotion_linear']:.3f} "
                  f"(chance {outcome.row['chance_speaker']:.3f}), {outcome.row['seconds']:.0f} s", flush=True)
            outcomes.append(outcome)
    rows = [o.row for o in outcomes]
    add_disentanglement(rows)
    write_csv(rows, out / "results.csv")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    summary = summarise(rows)
    best = best_strategy(summary)
    files = write_plots(outcomes, best, out)
    command = "python -m avdisentangle report " + " ".join(args)
    print(write_summary(rows, summary, best, files, out, command))
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'} and {len(files)} plots")
    log_to_wandb(out, rows, files)
    return 0
