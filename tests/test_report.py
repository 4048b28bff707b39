"""`probe` and `report` on the tiny corpus: the table has its columns, the plots exist, the
disentanglement arithmetic is right."""

from __future__ import annotations

import csv
import math

import pytest

from avdisentangle.cli import main
from avdisentangle.evaluation.metrics import disentanglement_pct, normalised_disentanglement_pct
from avdisentangle.evaluation.report import COLUMNS, add_disentanglement, best_strategy
from tests.conftest import TINY_FEATURES

REQUIRED = (
    "strategy,seed,emotion_uar,emotion_f1,emotion_wa,speaker_acc,probe_speaker_from_emotion_linear,"
    "probe_speaker_from_emotion_mlp,probe_emotion_from_emotion_linear,disentanglement_pct,"
    "disentanglement_norm_pct,chance_speaker"
).split(",")


def tiny_fit_args(corpus, tmp_path) -> list[str]:
    return [
        "--data.corpus=cremad", f"--data.root={corpus}", f"--data.cache_dir={tmp_path / 'cache'}",
        "--data.num_workers=0", "--data.batch_size=8", "--data.progress=false", "--trainer.max_epochs=2",
        *[f"--data.features.{name}={getattr(TINY_FEATURES, name)}" for name in ("window_s", "n_mels", "num_frames", "face_size")],
    ]


def test_disentanglement_arithmetic():
    assert disentanglement_pct(0.8, 0.6) == pytest.approx(25.0)
    assert normalised_disentanglement_pct(0.8, 0.6, chance=0.4) == pytest.approx(50.0)
    assert normalised_disentanglement_pct(0.8, 0.4, chance=0.4) == pytest.approx(100.0)
    rows = [
        {"strategy": "none", "seed": 0, "probe_speaker_from_emotion_linear": 0.9, "probe_speaker_from_emotion_mlp": 0.9, "chance_speaker": 0.1},
        {"strategy": "hsic", "seed": 0, "probe_speaker_from_emotion_linear": 0.5, "probe_speaker_from_emotion_mlp": 0.6, "chance_speaker": 0.1},
        {"strategy": "hsic", "seed": 1, "probe_speaker_from_emotion_linear": 0.5, "probe_speaker_from_emotion_mlp": 0.6, "chance_speaker": 0.1},
    ]
    add_disentanglement(rows)
    assert rows[1]["disentanglement_norm_pct"] == pytest.approx(50.0)
    assert rows[1]["disentanglement_mlp_pct"] == pytest.approx(100 / 3)
    assert math.isnan(rows[2]["disentanglement_pct"])  # no baseline with seed 1


def test_best_strategy_must_hold_emotion_accuracy():
    summary = {
        "none": {"emotion_uar": (0.80, 0), "disentanglement_norm_pct": (0, 0), "probe_speaker_from_emotion_linear": (0.9, 0)},
        "grl": {"emotion_uar": (0.60, 0), "disentanglement_norm_pct": (90, 0), "probe_speaker_from_emotion_linear": (0.2, 0)},
        "hsic": {"emotion_uar": (0.795, 0), "disentanglement_norm_pct": (40, 0), "probe_speaker_from_emotion_linear": (0.6, 0)},
    }
    assert best_strategy(summary) == "hsic"
    assert best_strategy(summary, uar_tolerance=0.0) == "grl"  # nothing holds: best trade-off (0.6-0.2 > 0.795-0.6)


def test_report_writes_the_table_and_the_plots(tiny_corpus, tmp_path, capsys):
    args = [
        "report", "--profile=quick", "--strategies=[none,hsic]", "--seeds=1", f"--output={tmp_path}", "--name=tiny",
        f"--fit_args=[{','.join(tiny_fit_args(tiny_corpus, tmp_path))}]",
    ]
    assert main(args) == 0
    out = tmp_path / "tiny"
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(COLUMNS) and set(REQUIRED) <= set(rows[0])
    assert [row["strategy"] for row in rows] == ["none", "hsic"]
    assert float(rows[0]["disentanglement_pct"]) == 0.0
    assert float(rows[0]["chance_speaker"]) == pytest.approx(0.25)
    summary = (out / "summary.md").read_text()
    for png in ("embeddings.png", "tradeoff.png", "confusion.png", "training.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({png})" in summary
    assert "| none |" in summary and "| hsic |" in summary


def test_probe_command_prints_every_probe_with_chance(tiny_corpus, tmp_path, capsys):
    assert main(["report", "--profile=quick", "--strategies=[none]", "--seeds=1", f"--output={tmp_path}", "--name=p",
                 f"--fit_args=[{','.join(tiny_fit_args(tiny_corpus, tmp_path))}]"]) == 0
    checkpoint = next((tmp_path / "p" / "runs" / "none-seed0" / "checkpoints").glob("best*.ckpt"))
    capsys.readouterr()
    assert main(["probe", f"--ckpt_path={checkpoint}", f"--output={tmp_path / 'probe.json'}", *tiny_fit_args(tiny_corpus, tmp_path)]) == 0
    printed = capsys.readouterr().out
    for line in ("speaker from z_emotion", "speaker from z_identity", "emotion from z_emotion", "emotion from z_identity"):
        assert line in printed
    assert "0.250" in printed  # chance level for 4 speakers is shown
