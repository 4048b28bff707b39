"""What a report writes once its runs are done: results tables, summary.md, plots, and W&B.

Everything here reads the runs' plain outcomes; nothing trains or probes.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import numpy as np
import torch

from avdisentangle.evaluation import analysis, tables, tradeoff
from avdisentangle.evaluation.runs import RunOutcome
from avdisentangle.models.multitask import LAYER_WEIGHT_PREFIX

PAPER_STRATEGIES = ("grl", "confusion", "orthogonal")
#: The frontier's x axes: the identity removed, read from the MLP probe's accuracy and from its bits.
FRONTIER_AXES = {
    "identity removed by accuracy, % of the room above the floor (MLP probe)": "disentanglement_floor_pct",
    "identity removed by information, % of the room above the floor (MLP probe, bits)": "disentanglement_info_pct",
}


def write_results(
    outcomes: list[RunOutcome], defaults: dict, out: Path, heading: dict, figures: dict[str, str] | None = None
) -> None:
    """results.csv/json, frontier.csv, unseen.csv, the plots and summary.md, from every run.
    `defaults` holds each strategy's own strength; `heading` the command, profile and seconds;
    `figures` pictures already in `out` to show too ({caption: file name}: the face crops' contact sheet)."""
    strategies = list(defaults)
    rows = [o.row for o in outcomes]
    analysis.add_paired_columns(rows)
    tables.write_runs_csv(rows, out / "results.csv")
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    closed = analysis.summarise(rows, "closed_set", analysis.CLOSED_SET_SUMMARY)
    unseen = analysis.summarise(rows, "unseen", analysis.UNSEEN_SUMMARY)
    knees = {s: analysis.knee(closed, s, defaults[s]) for s in strategies if s != analysis.BASELINE}
    pooled = {s: analysis.pooled_unseen_delta(outcomes, s) for s in strategies if s != analysis.BASELINE}
    if closed:
        tables.write_summary_csv(closed, "closed_set", out / "frontier.csv", defaults, knees)
    if unseen:
        tables.write_summary_csv(unseen, "unseen", out / "unseen.csv", defaults)
    costs = tradeoff.tradeoffs(rows, defaults)
    if costs:
        tradeoff.write_tradeoff_csv(costs, out / "tradeoff.csv")
    best, sentence = analysis.verdict(closed) if closed else (None, "")
    files = {**write_plots(outcomes, closed, best, defaults, out), **unseen_plot(unseen, defaults, out)}
    files.update(figures or {})
    text = summary_markdown(out, rows, closed, unseen, pooled, knees, defaults, costs, sentence, files, **heading)
    (out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {out / 'results.csv'}, {out / 'summary.md'} and {len(files)} plots")
    log_to_wandb(out, rows, files, {"closed_set": closed, "unseen": unseen})


def write_plots(
    outcomes: list[RunOutcome], closed: dict, best: str | None, defaults: dict, out: Path
) -> dict[str, str]:
    """The report's PNGs; returns {caption: file name}."""
    from avdisentangle.evaluation import plots
    from avdisentangle.evaluation.frontier_plot import plot_frontier

    main = [o for o in outcomes if o.spec.split == "closed_set" and o.spec.strength is None]
    files = {}
    if not main:
        return files
    first_seed = min(o.spec.seed for o in main)
    by_strategy = {o.spec.strategy: o for o in main if o.spec.seed == first_seed}
    reference = next(iter(by_strategy.values()))
    shown = list(dict.fromkeys(s for s in (analysis.BASELINE, best) if s in by_strategy)) or [reference.spec.strategy]
    panels = [
        (s, by_strategy[s].test.z_emotion, by_strategy[s].test.emotion, by_strategy[s].test.speaker) for s in shown
    ]
    plots.plot_embeddings(panels, reference.emotion_names, reference.speaker_names, out / "embeddings.png")
    files["t-SNE of test-set z_emotion, by emotion (top) and speaker (bottom)"] = "embeddings.png"
    panels: dict[str, dict[str, list]] = {axis: {} for axis in FRONTIER_AXES}
    by_weight = sorted(
        ((k, defaults.get(k[0]) if k[1] is None else k[1], s) for k, s in closed.items()),
        key=lambda p: (p[0][0], p[1] or 0.0),
    )
    for (strategy, strength), weight, s in by_weight:
        if strategy != analysis.BASELINE:
            label = "file's" if weight is None else f"{weight:g}"
            for axis, column in FRONTIER_AXES.items():
                panels[axis].setdefault(strategy, []).append((label, s[column], s["emotion_uar"], strength is None))
    if any(panels.values()):
        baseline = closed.get((analysis.BASELINE, None))
        plot_frontier(panels, out / "frontier.png", baseline["emotion_uar"] if baseline else None)
        files[
            "Frontier: emotion UAR against floor-normalised disentanglement, by probe accuracy (left) and by "
            "information (right) (95% intervals over seeds)"
        ] = "frontier.png"
    matrices = {s: sum(o.confusion for o in main if o.spec.strategy == s) for s in by_strategy}
    plots.plot_confusion_matrices(matrices, reference.emotion_names, out / "confusion.png")
    files["Emotion confusion matrices (test, summed over seeds, row-normalised)"] = "confusion.png"
    plots.plot_training_curves({s: o.history for s, o in by_strategy.items()}, out / "training.png")
    files[f"Validation UAR per epoch (seed {first_seed})"] = "training.png"
    layers = layer_weights_by_strategy(main)
    if layers:
        plots.plot_layer_weights(layers, out / "layers.png")
        files["SSL layer weights at the end of training (mean over seeds): the layers the tasks read"] = "layers.png"
    return files


def layer_weights_by_strategy(outcomes: list[RunOutcome]) -> dict[str, np.ndarray]:
    """Each strategy's final SSL layer weights, averaged over its seeds; empty when no run learnt layer weights."""
    found: dict[str, list[np.ndarray]] = {}
    for outcome in outcomes:
        weights = final_layer_weights(outcome.history)
        if weights is not None:
            found.setdefault(outcome.spec.strategy, []).append(weights)
    return {strategy: np.mean(runs, axis=0) for strategy, runs in found.items()}


def final_layer_weights(history: list[dict]) -> np.ndarray | None:
    """The layer weights of a run's last epoch, from its metrics rows (`train/ssl_layer_weight/<i>`), or None."""
    logged = [row for row in history if row.get(f"{LAYER_WEIGHT_PREFIX}0") not in (None, "")]
    if not logged:
        return None
    last = logged[-1]
    layers = sum(1 for key in last if key.startswith(LAYER_WEIGHT_PREFIX))
    return np.array([float(last[f"{LAYER_WEIGHT_PREFIX}{i}"]) for i in range(layers)])


def unseen_plot(unseen: dict, defaults: dict, out: Path) -> dict[str, str]:
    """Unseen-speaker UAR against strength, when some strategy ran its folds at more than one strength."""
    from avdisentangle.evaluation.frontier_plot import plot_unseen_by_strength

    curves: dict[str, list] = {}
    for (strategy, strength), s in unseen.items():
        weight = defaults.get(strategy) if strength is None else strength
        if strategy != analysis.BASELINE and weight is not None:
            curves.setdefault(strategy, []).append((weight, s["unseen_speaker_emotion_uar"]))
    if not any(len(points) > 1 for points in curves.values()):
        return {}
    baseline = unseen.get((analysis.BASELINE, None))
    plot_unseen_by_strength(curves, out / "unseen.png", baseline["unseen_speaker_emotion_uar"] if baseline else None)
    return {"Unseen speakers: emotion UAR against strength (95% intervals over folds)": "unseen.png"}


def machine() -> str:
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}; torch {torch.__version__}"


def summary_markdown(
    out, rows, closed, unseen, pooled, knees, defaults, costs, sentence, files, profile, command, seconds
) -> str:
    closed_rows = [r for r in rows if r["split"] == "closed_set"]
    lines = [
        f"# Disentanglement report: {out.name}",
        "",
        f"    {command}",
        "",
        f"{len(rows)} runs in {seconds / 60:.1f} min on {machine()}. Means with 95% intervals (Student t over "
        f"{profile.seeds} seeds, or over {profile.folds} speaker folds); changes are paired with `none` at the same "
        "seed or fold.",
        "",
    ]
    if closed:
        first = closed_rows[0]
        lines += [
            "## Identity left in z_emotion (closed set: test clips of the training speakers)",
            "",
            f"Speaker chance 1/K = {first['chance_speaker']:.3f}; the emotion label alone names the speaker at "
            f"{first['floor_speaker_from_emotion_label']:.3f} (the floor, also the chance level of the conditional "
            "probe, which reads the speaker within each emotion class). "
            f"In bits: the speaker label holds {first['speaker_entropy_bits']:.2f} (H(S)), and the emotion label "
            f"alone carries {first['floor_info_bits']:.2f} of them (the floor in bits). "
            "D_floor % = (leak_none - leak) / (leak_none - floor); D_info % = (I_none - I) / (I_none - I_floor), "
            "the same with the probe's information in bits; see README for every metric.",
            "",
            tables.closed_set_table(closed),
            "",
            sentence,
            "",
        ]
    if unseen:
        lines += [
            "## Emotion on unseen speakers (speakers held out in rotation)",
            "",
            tables.unseen_table(unseen, pooled, defaults),
            "",
        ]
    if any(strength is not None for _, strength in closed):
        lines += [
            "## Frontier over strengths (knee chosen on validation, never test)",
            "",
            tables.frontier_table(closed, knees, defaults),
            "",
        ]
    if costs:
        lines += [
            "## Identity removed at a fixed emotion cost (read off each strategy's frontier)",
            "",
            "The most identity removed (% of the room above the floor, by information and by accuracy) on the "
            "frontier through `none` at (0, 0) and each strength's seed means, interpolated between strengths, "
            "at a mean test UAR change of -1, -2 and -5 points; `>=` where even the strongest strength costs "
            "less. Slope: % removed per UAR point paid (a line through the origin over the strengths that cost "
            f"emotion). 95% percentile intervals from {tradeoff.RESAMPLES} bootstrap draws of whole seeds.",
            "",
            tradeoff.tradeoff_table(costs),
            "",
        ]
    if closed:
        lines += ["## Targets", "", *tables.targets(closed, unseen, pooled, PAPER_STRATEGIES), ""]
    lines += [f"![{caption}]({name})\n\n{caption}\n" for caption, name in files.items()]
    return "\n".join(lines)


def log_to_wandb(out: Path, rows: list[dict], files: dict[str, str], summaries: dict[str, dict]) -> None:
    """The results table, the summary means and the plots as one W&B run, offline unless the user is logged
    in (as fits are), in $WANDB_DIR else `logs/wandb` beside the fits' runs: one `wandb sync` uploads both."""
    import wandb

    from avdisentangle.loggers import wandb_offline

    folder = os.environ.get("WANDB_DIR") or "logs"
    os.makedirs(folder, exist_ok=True)
    mode = "offline" if wandb_offline() else None  # None: WANDB_MODE (online, disabled) decides
    columns = list(tables.RUN_COLUMNS)
    data = [[wandb_cell(row.get(c)) for c in columns] for row in rows]
    with wandb.init(project="avdisentangle", job_type="report", name=out.name, dir=folder, mode=mode) as run:
        images = {Path(name).stem: wandb.Image(str(out / name), caption=caption) for caption, name in files.items()}
        run.log({"results": wandb.Table(columns=columns, data=data), **images})
        run.summary.update(summary_numbers(summaries))
        if run.offline:
            print(f"offline W&B run; upload it with: wandb sync {Path(run.dir).parent}")


def wandb_cell(value):
    """A table cell as W&B types it, one type per column: a blank (NaN, "": a closed-set run's fold) is None."""
    return None if value is None or value == "" or analysis.is_nan(value) else value


def summary_numbers(summaries: dict[str, dict]) -> dict[str, float]:
    """`{split}/{strategy}[@strength]/{metric}`: the mean of each metric per configuration (its interval
    is in the results table and frontier.csv)."""
    numbers = {}
    for split, summary in summaries.items():
        for (strategy, strength), metrics in summary.items():
            label = strategy if strength is None else f"{strategy}@{strength:g}"
            for metric, value in metrics.items():
                mean = value if metric == "n" else value.mean
                if not analysis.is_nan(mean):
                    numbers[f"{split}/{label}/{metric}"] = mean
    return numbers
