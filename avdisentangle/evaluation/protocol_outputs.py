"""What `report --protocol speaker_folds` writes: numbers to set beside published speaker-independent results.

Papers on CREMA-D (5 folds) and RAVDESS (6 folds of 4 actors) report emotion WA, UA and macro-F1 as
mean ± standard deviation over the folds, so that is what this writes: every fold counts once (an
unweighted mean over folds, sample standard deviation, ddof=1), per strategy. The confusion matrix is
pooled: the sum of the folds' test matrices, so every actor's clips appear in it exactly once.
Beside each strategy, its UA change against `none` paired fold by fold, with a Student-t interval over
the folds: the folds are the same people for both, so the pairing removes how hard each fold is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avdisentangle.evaluation import tables
from avdisentangle.evaluation.analysis import BASELINE
from avdisentangle.evaluation.metrics import mean_interval
from avdisentangle.evaluation.runs import RunOutcome


def fold_statistics(rows: list[dict]) -> dict[str, dict]:
    """Per strategy (in run order): {"folds": n, metric: (mean, std over folds)} for each protocol metric."""
    by_strategy: dict[str, list[dict]] = {}
    for row in rows:
        by_strategy.setdefault(row["strategy"], []).append(row)
    stats = {}
    baseline = {row["fold"]: row["emotion_uar"] for row in by_strategy.get(BASELINE, [])}
    for strategy, group in by_strategy.items():
        values = {m: [row[m] for row in group] for m in tables.PROTOCOL_METRICS}
        stats[strategy] = {"folds": len(group)} | {
            m: (float(np.mean(v)), float(np.std(v, ddof=1))) for m, v in values.items()
        }
        paired = [100 * (row["emotion_uar"] - baseline[row["fold"]]) for row in group if row["fold"] in baseline]
        stats[strategy]["delta_uar_points"] = tuple(mean_interval(paired)) if strategy != BASELINE else None
    return stats


def pooled_confusion(outcomes: list[RunOutcome]) -> dict[str, np.ndarray]:
    """Per strategy: the sum of its folds' test confusion matrices (rows = true emotion)."""
    pooled: dict[str, np.ndarray] = {}
    for outcome in outcomes:
        strategy = outcome.spec.strategy
        pooled[strategy] = pooled.get(strategy, 0) + outcome.confusion
    return pooled


def write_protocol_results(
    outcomes: list[RunOutcome], out: Path, heading: dict, figures: dict[str, str] | None = None
) -> None:
    """results.csv (one row per fold), protocol.csv (mean and std over folds), confusion_pooled.csv and
    .png, and summary.md; `heading` holds the protocol's title, its folds file, the command and seconds;
    `figures` pictures already in `out` to show too ({caption: file name})."""
    from avdisentangle.evaluation import plots

    rows = [outcome.row for outcome in outcomes]
    tables.write_runs_csv(rows, out / "results.csv")
    stats = fold_statistics(rows)
    tables.write_protocol_csv(stats, out / "protocol.csv")
    pooled = pooled_confusion(outcomes)
    labels = outcomes[0].emotion_names
    tables.write_confusion_csv(pooled, labels, out / "confusion_pooled.csv")
    plots.plot_confusion_matrices(pooled, labels, out / "confusion_pooled.png")
    caption = "Emotion confusion matrices pooled over the folds (test clips, row-normalised)"
    text = "\n".join(
        [
            f"# Speaker-independent protocol: {heading['title']}",
            "",
            f"    {heading['command']}",
            "",
            f"{len(rows)} runs in {heading['seconds'] / 60:.1f} min. Folds: `{heading['folds_file']}`. Mean ± "
            "standard deviation over folds (each fold counts once); UA = unweighted average recall.",
            "",
            tables.protocol_table(stats),
            "",
            f"![{caption}](confusion_pooled.png)\n\n{caption}; counts in confusion_pooled.csv\n",
            *(f"![{caption}]({name})\n\n{caption}\n" for caption, name in (figures or {}).items()),
        ]
    )
    (out / "summary.md").write_text(text)
    print(text)
    print(f"wrote {out / 'protocol.csv'}, {out / 'confusion_pooled.csv'} and {out / 'summary.md'}")
