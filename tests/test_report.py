"""The report's metrics on constructed cases with known answers, its statistics, and `report` /
`probe` end to end on the tiny corpus."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from avdisentangle.cli import main
from avdisentangle.evaluation import analysis
from avdisentangle.evaluation.metrics import (
    bootstrap_interval,
    disentanglement_pct,
    emotion_label_floor,
    mean_interval,
    room_disentanglement_pct,
    unweighted_average_recall,
)
from avdisentangle.evaluation.probe import Embeddings, conditional_probe_correct, probe_accuracy
from avdisentangle.evaluation.run_plan import Profile, default_strength, discover_strategies, plan_runs, strength_grid
from avdisentangle.evaluation.tables import RUN_COLUMNS
from tests.conftest import TINY_FEATURES

NUM_SPEAKERS, NUM_EMOTIONS = 12, 6


def entangled_labels(clips: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Speakers who each lean to two emotions (as the built-in corpus at correlation 0.8)."""
    rng = np.random.default_rng(seed)
    speaker = rng.integers(0, NUM_SPEAKERS, clips)
    dominant = np.stack([speaker % NUM_EMOTIONS, (speaker + 1) % NUM_EMOTIONS], 1)[
        np.arange(clips), rng.integers(0, 2, clips)
    ]
    emotion = np.where(rng.random(clips) < 0.8, dominant, rng.integers(0, NUM_EMOTIONS, clips))
    return speaker, emotion


def embeddings(z: np.ndarray, emotion: np.ndarray, speaker: np.ndarray) -> Embeddings:
    return Embeddings(z, z, emotion, speaker, np.arange(len(z)), emotion)


def test_disentanglement_arithmetic():
    assert disentanglement_pct(0.8, 0.6) == pytest.approx(25.0)
    assert room_disentanglement_pct(0.8, 0.6, reachable=0.4) == pytest.approx(50.0)
    assert room_disentanglement_pct(0.8, 0.4, reachable=0.4) == pytest.approx(100.0)
    assert math.isnan(room_disentanglement_pct(0.3, 0.3, reachable=0.4))  # no room above the floor: undefined


def test_floor_is_the_best_guess_from_the_emotion_label():
    train_emotion, train_speaker = np.array([0, 0, 0, 1, 1]), np.array([2, 2, 1, 0, 1])
    # emotion 0 -> speaker 2, emotion 1 -> speaker 0 (tie broken to the lower id)
    assert emotion_label_floor(
        train_emotion, train_speaker, np.array([0, 0, 1, 1]), np.array([2, 1, 0, 0])
    ) == pytest.approx(0.75)


def test_emotion_one_hot_z_gives_floor_leakage_and_full_disentanglement():
    """A z that is exactly the emotion one-hot carries no identity beyond the emotion: every probe
    reads the speaker at the floor (within each emotion class too), and against a
    baseline whose z names the speaker the strategy removed 100% of the removable identity."""
    train_speaker, train_emotion = entangled_labels(1200, seed=0)
    test_speaker, test_emotion = entangled_labels(600, seed=1)
    floor = emotion_label_floor(train_emotion, train_speaker, test_emotion, test_speaker)
    chance = 1 / NUM_SPEAKERS
    assert floor > 2 * chance  # the entangled case the floor exists for
    train, test = (
        embeddings(np.eye(NUM_EMOTIONS)[e], e, s)
        for e, s in ((train_emotion, train_speaker), (test_emotion, test_speaker))
    )
    for kind in ("linear", "mlp"):
        leak = probe_accuracy(train.z_emotion, train.speaker, test.z_emotion, test.speaker, kind)
        assert leak == pytest.approx(floor, abs=0.03), kind  # the probe may pick another near-tied speaker
        assert room_disentanglement_pct(1.0, leak, floor) == pytest.approx(100.0, abs=5.0)
        assert room_disentanglement_pct(1.0, leak, chance) < 90  # chance-normalised understates it
    conditional = conditional_probe_correct(train, test, "mlp").mean()
    assert conditional == pytest.approx(floor, abs=0.03)


def test_speaker_one_hot_z_leaks_everything_conditionally_too():
    train_speaker, train_emotion = entangled_labels(600, seed=0)
    test_speaker, test_emotion = entangled_labels(300, seed=1)
    train = embeddings(np.eye(NUM_SPEAKERS)[train_speaker], train_emotion, train_speaker)
    test = embeddings(np.eye(NUM_SPEAKERS)[test_speaker], test_emotion, test_speaker)
    assert probe_accuracy(train.z_emotion, train.speaker, test.z_emotion, test.speaker, "mlp") == 1.0
    assert (
        conditional_probe_correct(train, test, "mlp").mean() > 0.95
    )  # misses only speakers a class never saw in train


def test_uar_and_intervals():
    truth, predicted = np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1])
    assert unweighted_average_recall(truth, predicted) == pytest.approx((2 / 3 + 1) / 2)
    interval = mean_interval([1.0, 2.0, 3.0])
    assert interval.mean == 2.0 and interval.low == pytest.approx(2 - 4.303 / math.sqrt(3), abs=1e-3)
    assert math.isnan(mean_interval([5.0]).low) and not mean_interval([5.0]).excludes(0)
    correct = np.random.default_rng(0).random(400) < 0.7
    boot = bootstrap_interval(lambda c: c.mean(), correct)
    assert boot.low < boot.mean < boot.high and boot.high - boot.low == pytest.approx(
        2 * 1.96 * math.sqrt(0.21 / 400), rel=0.25
    )


def run_row(strategy, seed, uar, leak, split="closed_set", fold=""):
    return {
        "strategy": strategy,
        "strength": float("nan"),
        "split": split,
        "seed": seed,
        "fold": fold,
        "emotion_uar": uar,
        "val_emotion_uar": uar,
        "unseen_speaker_emotion_uar": uar,
        "probe_speaker_from_emotion_mlp": leak,
        "val_probe_speaker_from_emotion_mlp": leak,
        "probe_speaker_from_emotion_linear": leak,
        "floor_speaker_from_emotion_label": 0.2,
        "val_floor_speaker_from_emotion_label": 0.2,
        "chance_speaker": 0.1,
        "conditional_speaker_from_emotion_mlp": leak,
        "speaker_info_bits": 4 * leak,  # bits grow with what the probe reads
        "floor_info_bits": 0.8,
    }


def test_paired_columns_and_the_verdict():
    rows = [run_row("none", s, 0.80, 0.9) for s in range(3)]
    rows += [run_row("hsic", s, u, l) for s, u, l in [(0, 0.80, 0.55), (1, 0.81, 0.5), (2, 0.79, 0.6)]]
    rows += [run_row("grl", s, 0.80, l) for s, l in [(0, 0.7), (1, 1.0), (2, 1.0)]]  # noisy: its interval spans 0
    analysis.add_paired_columns(rows)
    assert rows[3]["disentanglement_floor_pct"] == pytest.approx(50.0)  # (0.9 - 0.55) / (0.9 - 0.2)
    assert rows[3]["disentanglement_info_pct"] == pytest.approx(50.0)  # (3.6 - 2.2) / (3.6 - 0.8) bits
    assert rows[0]["disentanglement_info_pct"] == 0.0
    assert rows[3]["disentanglement_chance_pct"] == pytest.approx(0.35 / 0.8 * 100)
    assert rows[4]["delta_uar_points"] == pytest.approx(1.0)
    summary = analysis.summarise(rows, "closed_set", analysis.CLOSED_SET_SUMMARY)
    best, sentence = analysis.verdict(summary)
    assert best == "hsic" and "Best strategy: hsic" in sentence
    info = summary[("hsic", None)]["disentanglement_info_pct"]
    assert f"{info.mean:.1f} [{info.low:.1f}, {info.high:.1f}]% by information" in sentence
    without_hsic = {k: v for k, v in summary.items() if k[0] != "hsic"}
    assert analysis.verdict(without_hsic)[0] is None  # grl's interval includes 0: nothing is named


def test_knee_is_chosen_on_validation_only():
    nan = float("nan")
    interval = lambda m: analysis.Interval(m, nan, nan)  # noqa: E731
    frontier = {
        ("grl", 0.1): {
            "val_delta_uar_points": interval(0.0),
            "val_disentanglement_floor_pct": interval(10),
            "disentanglement_floor_pct": interval(90),
        },
        ("grl", 1.0): {
            "val_delta_uar_points": interval(-0.5),
            "val_disentanglement_floor_pct": interval(40),
            "disentanglement_floor_pct": interval(0),
        },
        ("grl", 3.0): {
            "val_delta_uar_points": interval(-9.0),
            "val_disentanglement_floor_pct": interval(80),
            "disentanglement_floor_pct": interval(99),
        },
    }
    assert analysis.knee(frontier, "grl", default_weight=None) == 1.0
    frontier[("grl", None)] = frontier.pop(("grl", 0.1))  # the file's own strength (0.1) is a candidate too
    assert analysis.knee(frontier, "grl", default_weight=0.1) == 1.0
    frontier[("grl", None)]["val_disentanglement_floor_pct"] = interval(50)
    assert analysis.knee(frontier, "grl", default_weight=0.1) == 0.1


def test_strengths_come_from_the_strategy_and_sweep_files(tmp_path):
    assert discover_strategies(analysis_config_dir())[0] == "none"
    assert default_strength(analysis_config_dir() / "strategy" / "none.yaml") is None
    assert default_strength(analysis_config_dir() / "strategy" / "grl.yaml") > 0
    sweep = tmp_path / "x.yaml"
    sweep.write_text("parameters:\n  trainer.callbacks.weight:\n    min: 0.01\n    max: 1.0\n")
    assert strength_grid(sweep, 3) == [0.01, 0.1, 1.0]
    assert strength_grid(sweep, 1) == []
    specs = plan_runs(["none", "grl"], analysis_config_dir(), tmp_path, Profile(seeds=2, folds=3, grid=1), 2, 3)
    assert sum(s.split == "closed_set" for s in specs) == 4 and sum(s.split == "unseen" for s in specs) == 6


def analysis_config_dir():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "experiments" / "configs"


def tiny_fit_args(corpus, tmp_path) -> list[str]:
    return [
        "--data.corpus=cremad",
        f"--data.root={corpus}",
        f"--data.cache_dir={tmp_path / 'cache'}",
        "--data.prepare_workers=0",
        "--data.batch_size=8",
        "--trainer.max_epochs=2",
        *[
            f"--data.features.{name}={getattr(TINY_FEATURES, name)}"
            for name in ("window_s", "n_mels", "num_frames", "face_size")
        ],
    ]


def test_report_writes_tables_intervals_and_plots(tiny_corpus, tmp_path):
    args = [
        "report",
        "--profile=quick",
        "--strategies=[none,hsic]",
        "--seeds=2",
        "--folds=2",
        "--jobs=1",
        f"--output={tmp_path}",
        "--name=tiny",
        f"--fit_args=[{','.join(tiny_fit_args(tiny_corpus, tmp_path))}]",
    ]
    assert main(args) == 0
    out = tmp_path / "tiny"
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(RUN_COLUMNS)
    closed = [r for r in rows if r["split"] == "closed_set"]
    unseen = [r for r in rows if r["split"] == "unseen"]
    assert [(r["strategy"], r["seed"]) for r in closed] == [("none", "0"), ("none", "1"), ("hsic", "0"), ("hsic", "1")]
    assert sorted((r["strategy"], r["fold"]) for r in unseen) == [
        ("hsic", "0"),
        ("hsic", "1"),
        ("none", "0"),
        ("none", "1"),
    ]
    for row in closed:
        assert float(row["emotion_uar_low"]) <= float(row["emotion_uar"]) <= float(row["emotion_uar_high"])
        assert float(row["floor_speaker_from_emotion_label"]) >= float(row["chance_speaker"]) == pytest.approx(0.25)
    assert float(closed[0]["disentanglement_floor_pct"]) == 0.0 and closed[2]["disentanglement_floor_pct"] != ""
    for row in closed:
        low, bits, high = (float(row[f"speaker_info_bits{end}"]) for end in ("_low", "", "_high"))
        assert low <= bits <= high <= float(row["speaker_entropy_bits"]) + 0.1  # no more than H(S), up to noise
        assert row["floor_info_bits"] != "" and row["emotion_info_from_identity_bits"] != ""
    assert float(closed[0]["disentanglement_info_pct"]) == 0.0 and closed[2]["disentanglement_info_pct"] != ""
    assert all(r["unseen_speaker_emotion_uar"] and r["emotion_uar"] == "" for r in unseen)
    summary = (out / "summary.md").read_text()
    for png in ("embeddings.png", "frontier.png", "confusion.png", "training.png", "faces.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png})" in summary
    assert not (out / "layers.png").exists()  # log-mel runs learn no SSL layer weights
    assert "| hsic |" in summary and "unseen speakers" in summary and "## Targets" in summary
    assert "**D_info %**" in summary and "the floor in bits" in summary
    assert (out / "frontier.csv").exists() and (out / "unseen.csv").exists()
    with (out / "frontier.csv").open() as handle:
        assert {"disentanglement_info_pct", "disentanglement_info_pct_low"} <= set(next(csv.reader(handle)))


def test_probe_command_prints_every_probe_with_chance(tiny_corpus, tmp_path, capsys):
    assert (
        main(
            [
                "report",
                "--profile=quick",
                "--strategies=[none]",
                "--seeds=1",
                "--folds=0",
                "--jobs=1",
                f"--output={tmp_path}",
                "--name=p",
                f"--fit_args=[{','.join(tiny_fit_args(tiny_corpus, tmp_path))}]",
            ]
        )
        == 0
    )
    checkpoint = next((tmp_path / "p" / "runs" / "closed_set" / "none-seed0" / "checkpoints").glob("best*.ckpt"))
    capsys.readouterr()
    assert (
        main(
            [
                "probe",
                f"--ckpt_path={checkpoint}",
                f"--output={tmp_path / 'probe.json'}",
                *tiny_fit_args(tiny_corpus, tmp_path),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    for line in (
        "speaker from z_emotion",
        "speaker from z_identity",
        "emotion from z_emotion",
        "emotion from z_identity",
    ):
        assert line in printed
    assert "0.250" in printed and "floor" in printed  # chance level for 4 speakers and the emotion-label floor
