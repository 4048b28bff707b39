"""`export`: a checkpoint becomes an ONNX or TorchScript file that gives the checkpoint's own `predict_step`
outputs for any batch size, for two modalities or one; a mistake is one line and exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from avdisentangle.cli import main
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.export import FORMATS, OUTPUT_NAMES
from avdisentangle.lightning_cli import run_lightning
from avdisentangle.models import MultitaskAVModule
from tests.conftest import TINY_FEATURES
from tests.helpers import TinyAVData, batch_of, fit_args, model, run, trainer

QUICK = ["--trainer.max_epochs=1", "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=1"]
SMALL = ["--model.hidden_dim=32", "--model.emotion_dim=8", "--model.identity_dim=8", "--leakage_probe.enabled=false"]


@pytest.fixture(scope="module")
def fitted(tiny_corpus, tmp_path_factory) -> tuple[Path, Path]:
    """An audio-video model fitted through the command line: its last checkpoint and its work folder."""
    workdir = tmp_path_factory.mktemp("export")
    result = run(fit_args(tiny_corpus, workdir, *QUICK, *SMALL), workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "checkpoints" / "last.ckpt", workdir


@pytest.fixture(scope="module")
def audio_checkpoint(tmp_path_factory) -> Path:
    """An audio-only model fitted in Python on in-memory clips: its checkpoint records no feature shapes."""
    torch.manual_seed(0)
    fit = trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    fit.fit(model(modalities="audio", fusion="attention"), datamodule=TinyAVData())
    path = tmp_path_factory.mktemp("audio") / "audio.ckpt"
    fit.save_checkpoint(path)
    return path


def run_exported(path: Path, fmt: str, features: dict[str, torch.Tensor]) -> list[np.ndarray]:
    """The exported file's outputs, read by onnxruntime or by torch.jit.load alone."""
    if fmt == "torchscript":
        return [output.numpy() for output in torch.jit.load(str(path))(*features.values())]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == list(features)
    assert [node.name for node in session.get_outputs()] == list(OUTPUT_NAMES)
    return session.run(None, {name: value.numpy() for name, value in features.items()})


def assert_same_as_predict_step(checkpoint: Path, exported: Path, fmt: str, batch: dict[str, torch.Tensor]) -> None:
    module = MultitaskAVModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    with torch.no_grad():
        expected = module.predict_step(batch, 0)
    outputs = run_exported(exported, fmt, {name: batch[name] for name in module.modalities})
    for name, output in zip(OUTPUT_NAMES, outputs):
        np.testing.assert_allclose(output, expected[name].numpy(), atol=1e-4, err_msg=name)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_the_export_gives_the_checkpoints_predictions(fitted, tiny_corpus, fmt, capsys, single_thread):
    checkpoint, workdir = fitted
    assert main(["export", f"--ckpt_path={checkpoint}", f"--format={fmt}"]) == 0
    exported = checkpoint.parent / f"last{FORMATS[fmt]}"  # beside the checkpoint
    printed = capsys.readouterr().out
    assert (
        f"wrote {exported}: {fmt}, inputs audio float32 (batch, 1, 32, 101), video uint8 (batch, 4, 1, 32, 32)"
        in printed
    )
    assert "max abs difference from the checkpoint's predict_step on a random batch of 3" in printed

    data = AVDataModule(
        "cremad", str(tiny_corpus), str(workdir / "cache"), TINY_FEATURES, batch_size=5, prepare_workers=0
    )
    batch = next(iter(data.ready().loader("test")))  # the fit's cached features, at a batch size not traced
    assert_same_as_predict_step(checkpoint, exported, fmt, batch)


def test_a_one_modality_model_takes_only_its_input(audio_checkpoint, tmp_path, capsys, single_thread):
    """TorchScript only: ONNX takes the same inputs from the same wrapper, and costs 14 s more."""
    exported = tmp_path / "audio.pt"
    args = ["export", f"--ckpt_path={audio_checkpoint}", "--format=torchscript", f"--output={exported}"]
    assert main(args) == 2  # nothing records the feature shape: the option that gives it is named
    assert (
        capsys.readouterr().err
        == "error: the checkpoint does not record its audio feature shape: pass --audio_shape=N_MELS,N_FRAMES\n"
    )
    assert main([*args, "--audio_shape=12,24"]) == 0
    assert_same_as_predict_step(audio_checkpoint, exported, "torchscript", batch_of(5))


def test_an_emotion_head_reading_identity_predicts_and_exports(
    tiny_corpus, tmp_path, monkeypatch, capsys, single_thread
):
    """`--model.emotion_reads_identity=true` from fit to `predict` (which takes it from the checkpoint) and the
    TorchScript export, both giving the checkpoint's own `predict_step` outputs. In this process: two fresh
    interpreters would double the test's time."""
    import wandb

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["avdisentangle"])
    checkpoint, output_dir = tmp_path / "checkpoints" / "last.ckpt", tmp_path / "predictions"
    predict = [*SMALL, f"--ckpt_path={checkpoint}", f"--prediction_writer.output_dir={output_dir}"]
    try:
        run_lightning(fit_args(tiny_corpus, tmp_path, *QUICK, *SMALL, "--model.emotion_reads_identity=true")[3:])
        wandb.finish()  # else predict's logger joins the fit's run, and a later test's would too
        run_lightning(fit_args(tiny_corpus, tmp_path, *predict, command="predict")[3:])
    finally:
        wandb.finish()
    module = MultitaskAVModule.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    assert module.emotion_head.in_features == 16  # z_emotion (8) and z_identity (8)
    written = np.load(output_dir / "embeddings.npz")
    data = AVDataModule(
        "cremad", str(tiny_corpus), str(tmp_path / "cache"), TINY_FEATURES, batch_size=64, prepare_workers=0
    )
    batch = next(iter(data.ready().loader("test")))  # predict's default split, whole
    with torch.no_grad():
        expected = module.predict_step(batch, 0)
    for name in ("emotion_probs", "z_emotion", "z_identity"):
        np.testing.assert_allclose(written[name], expected[name].numpy(), atol=1e-5, err_msg=name)

    exported = tmp_path / "model.ts.pt"
    assert main(["export", f"--ckpt_path={checkpoint}", "--format=torchscript", f"--output={exported}"]) == 0
    capsys.readouterr()
    assert_same_as_predict_step(checkpoint, exported, "torchscript", batch)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format=tflite", "--ckpt_path=x.ckpt"], "--format must be one of onnx, torchscript, got 'tflite'"),
        (["--format=torchscript", "--ckpt_path=missing.ckpt"], "no checkpoint at missing.ckpt"),
        (
            ["--format=torchscript", "--ckpt_path=x.ckpt"],
            "x.ckpt is empty (0 bytes): a save that stopped before it wrote anything",
        ),
        (
            ["--format=torchscript", "--ckpt_path=x.ckpt", "--audio_shape=64,0"],
            "--audio_shape takes positive integers separated by commas, got '64,0'",
        ),
    ],
)
def test_a_mistake_is_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.ckpt").write_bytes(b"")
    assert main(["export", *args]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_onnx_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if not installed (onnxscript, which needs it, then fails too)
    assert main(["export", "--format=onnx", "--ckpt_path=x.ckpt"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ONNX export needs onnx") and line.endswith("pip install -e '.[export]'")
