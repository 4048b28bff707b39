"""The command line as users run it: configs compose, errors name the choices, a killed run
resumes from `last`, `predict` writes probabilities and embeddings."""

from __future__ import annotations

import csv
import signal
import subprocess
import time

import numpy as np
import pytest
import yaml

from tests.helpers import ENV, REPO, fit_args, metrics_rows, run


def test_print_config_is_complete_and_links_labels_from_the_data(tiny_corpus, tmp_path):
    result = run([*fit_args(tiny_corpus, tmp_path, strategy="grl"), "--print_config"], tmp_path, check=True)
    config = yaml.safe_load(result.stdout)
    assert config["data"]["corpus"] == "cremad"
    assert config["trainer"]["callbacks"][0]["class_path"] == "avdisentangle.strategies.GradientReversalStrategy"
    assert config["checkpoint"]["monitor"] == "val/emotion/uar"
    assert "num_speakers" not in config["model"]  # linked from the data at run time, never typed


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model.fusion=sum"], "concat, attention"),
        (["--data.corpus=iemocap"], "synthetic, cremad, ravdess, manifest"),
        (["--trainer.callbacks+=avdisentangle.strategies.NoSuchStrategy"], "NoSuchStrategy"),
        (
            [
                "--trainer.callbacks+=avdisentangle.strategies.GradientReversalStrategy",
                "--trainer.callbacks.schedule=cosine",
            ],
            "constant, dann",
        ),
    ],
)
def test_bad_values_give_errors_that_name_the_choices(tiny_corpus, tmp_path, extra, message):
    result = run([*fit_args(tiny_corpus, tmp_path), "--trainer.max_epochs=1", *extra], tmp_path)
    assert result.returncode != 0
    assert message in result.stdout + result.stderr


def test_make_train_rejects_an_unknown_strategy():
    result = subprocess.run(["make", "-s", "train", "STRATEGY=magic"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    names = " ".join(sorted(path.stem for path in (REPO / "experiments/configs/strategy").glob("*.yaml")))
    assert f"unknown STRATEGY=magic; choose one of: {names}" in result.stderr


def test_killed_fit_resumes_from_last_and_finishes(tiny_corpus, tmp_path):
    args = fit_args(tiny_corpus, tmp_path, "--trainer.max_epochs=6", strategy="grl")
    process = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    import torch

    killed_at = torch.load(last, weights_only=False)["epoch"]
    assert killed_at < 5, "the kill should land before the last epoch"  # index of the epoch last saved
    resumed = run([*args, "--ckpt_path=last"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert torch.load(last, weights_only=False)["epoch"] == 5  # saved at the end of the final epoch (index 5)
    epochs = {int(row["epoch"]) for row in metrics_rows(tmp_path) if row.get("val/emotion/uar")}
    assert 5 in epochs


def test_predict_writes_probabilities_and_embeddings_for_loose_files(tiny_corpus, tmp_path):
    trained = run(fit_args(tiny_corpus, tmp_path, "--trainer.max_epochs=1"), tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    clips = tmp_path / "clips"
    clips.mkdir()
    for wav in sorted((tiny_corpus / "AudioWAV").glob("*.wav"))[:3]:
        (clips / wav.name).write_bytes(wav.read_bytes())
        (clips / f"{wav.stem}.flv").write_bytes((tiny_corpus / "VideoFlash" / f"{wav.stem}.flv").read_bytes())
    (clips / "broken.flv").write_bytes(b"not a video")
    predicted = run(
        fit_args(
            tiny_corpus,
            tmp_path,
            f"--data.predict_paths=[{clips}]",
            f"--prediction_writer.output_dir={tmp_path / 'predictions'}",
            f"--ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}",
            command="predict",
        ),
        tmp_path,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert "refused" in predicted.stderr and "broken" in predicted.stderr
    with (tmp_path / "predictions" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 3
    probabilities = np.array([[float(row[key]) for key in row if key.startswith("p_")] for row in rows])
    assert probabilities.shape == (3, 6) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    embeddings = np.load(tmp_path / "predictions" / "embeddings.npz")
    assert embeddings["z_emotion"].shape == (3, 64) and embeddings["z_identity"].shape == (3, 64)

    # Every input refused: no exit 0, and the predictions above must not pass for this run's.
    only_broken = tmp_path / "only_broken"
    only_broken.mkdir()
    (only_broken / "broken.flv").write_bytes(b"not a video")
    empty = tmp_path / "empty"
    empty.mkdir()
    for inputs, message in (
        (only_broken, "nothing to predict: all 1 inputs were refused"),
        (empty, "nothing to predict in"),
    ):
        failed = run(
            fit_args(
                tiny_corpus,
                tmp_path,
                f"--data.predict_paths=[{inputs}]",
                f"--prediction_writer.output_dir={tmp_path / 'predictions'}",
                f"--ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}",
                command="predict",
            ),
            tmp_path,
        )
        assert failed.returncode == 2
        assert failed.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
        assert "Traceback" not in failed.stderr
        assert not list((tmp_path / "predictions").iterdir()), "an earlier run's outputs were left in place"
