"""eGeMAPS and frozen speech-model features through every command a user runs on them: prepare, fit with a
strategy on top, probe, predict and export, from the model configs (`experiments/configs/model/egemaps.yaml`,
`ssl.yaml`), with the hub forced offline. The ssl model is a tiny random Wav2Vec2 (conftest `speech_model`)."""

from __future__ import annotations

import csv

import pytest

from avdisentangle.cli import main
from tests.conftest import SPEECH_MODEL_HIDDEN, SPEECH_MODEL_LAYERS
from tests.generated_layouts import run_args
from tests.helpers import REPO

pytestmark = pytest.mark.usefixtures("offline_hub", "single_thread")


def config(kind: str, name: str) -> str:
    return f"--config={REPO / 'experiments/configs' / kind / name}.yaml"


def fit_probe_predict_export(root, tmp_path, capsys, features: list[str], strategy: str, predict: list[str]):
    """Run the four commands on the tiny corpus (CREMA-D layout); the exported model's printed input line."""
    fit = run_args("fit", "cremad", root, tmp_path / "cache", tmp_path, *features, "--trainer.max_epochs=2")
    fit[2:2] = [config("strategy", strategy)]  # after the base config, before the checkpoint folder it also sets
    assert main(fit) == 0
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    data = [a for a in run_args("fit", "cremad", root, tmp_path / "cache", tmp_path) if a.startswith("--data.")]
    capsys.readouterr()
    assert main(["probe", *features, *data, f"--ckpt_path={checkpoint}"]) == 0
    assert "speaker from z_emotion" in capsys.readouterr().out
    out = tmp_path / "predictions"
    command = run_args("predict", "cremad", root, tmp_path / "cache", tmp_path, *features, f"--ckpt_path={checkpoint}")
    assert main([*command, *predict, f"--prediction_writer.output_dir={out}"]) == 0
    with (out / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(0.99 < sum(float(v) for k, v in row.items() if k.startswith("p_")) < 1.01 for row in rows)
    capsys.readouterr()
    assert main(["export", f"--ckpt_path={checkpoint}", "--format=torchscript"]) == 0
    return rows, capsys.readouterr().out


def test_egemaps_with_faces_and_hsic_runs_end_to_end(tiny_corpus, tmp_path, capsys):
    rows, exported = fit_probe_predict_export(
        tiny_corpus, tmp_path, capsys, [config("model", "egemaps")], "hsic", ["--data.predict_split=test"]
    )
    assert "inputs audio float32 (batch, 88), video uint8 (batch, " in exported
    (cache,) = (tmp_path / "cache").glob("cremad-*")
    assert sorted(p.name for p in cache.glob("*.npy")) == ["audio.npy", "video.npy"]


def test_ssl_audio_only_with_grl_runs_end_to_end_on_loose_files(tiny_corpus, tmp_path, capsys, speech_model):
    features = [config("model", "ssl"), f"--data.features.ssl.path={speech_model}", "--data.features.modalities=audio"]
    loose = [f"--data.predict_paths=[{tiny_corpus / 'AudioWAV'}]"]
    rows, exported = fit_probe_predict_export(tiny_corpus, tmp_path, capsys, features, "grl", loose)
    assert len(rows) == len(list((tiny_corpus / "AudioWAV").glob("*.wav")))
    assert f"inputs audio float32 (batch, {SPEECH_MODEL_LAYERS + 1}, 2, {SPEECH_MODEL_HIDDEN});" in exported
    with next((tmp_path).rglob("metrics.csv")).open() as handle:
        logged = next(csv.DictReader(handle)).keys()
    assert {f"train/ssl_layer_weight/{i}" for i in range(SPEECH_MODEL_LAYERS + 1)} <= set(logged)
