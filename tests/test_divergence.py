"""A diverging run stops at its first non-finite loss with one line that says where and what to try,
and no checkpoint ever holds NaN or inf weights."""

from __future__ import annotations

import re
import sys
from types import SimpleNamespace

import pytest
import torch

from avdisentangle.divergence import DivergenceGuard, TrainingDiverged
from avdisentangle.lightning_cli import run_lightning
from avdisentangle.models.multitask import MultitaskAVModule
from avdisentangle.strategies import GradientReversalStrategy
from tests.helpers import fit_args


def finite_checkpoint(path) -> bool:
    state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    return all(torch.isfinite(value).all() for value in state.values() if value.is_floating_point())


def test_a_diverging_fit_stops_at_the_first_non_finite_loss(tiny_corpus, tmp_path, monkeypatch, single_thread):
    monkeypatch.chdir(tmp_path)  # anything a run writes to its cwd stays in the test's folder
    monkeypatch.setattr(sys, "argv", ["avdisentangle"])  # LightningCLI warns when pytest's own arguments are there
    summary = tmp_path / "summary.json"
    args = fit_args(
        tiny_corpus,
        tmp_path,
        "--model.lr=1e9",
        "--trainer.max_epochs=1",
        "--trainer.logger=false",
        f"--leakage_probe.summary_file={summary}",
        strategy="grl",
    )
    with pytest.raises(TrainingDiverged) as raised:
        run_lightning(args[3:])  # without "python -m avdisentangle"
    message = str(raised.value)
    print(message)
    assert "\n" not in message
    assert "epoch 0, global step 1, batch 1" in message  # step 0 is finite; its update of 1e9 is not
    assert re.search(r"non-finite loss terms .*emotion/ce=-?(nan|inf)", message)
    assert re.search(r"grl/adversary_ce=-?(nan|inf)", message)
    assert "--model.lr (currently 1e+09)" in message and "grl weight 0.03" in message
    assert not summary.exists(), "the end-of-fit leakage probe must not run on a diverged run"
    assert all(finite_checkpoint(path) for path in (tmp_path / "checkpoints").glob("*.ckpt"))


def guarded_module() -> MultitaskAVModule:
    model = MultitaskAVModule(num_emotions=6, num_speakers=4, lr=0.5)
    model.attach_strategy(GradientReversalStrategy(weight=0.25))
    return model


def test_the_guard_names_the_first_bad_micro_batch_and_passes_finite_steps():
    model, guard = guarded_module(), DivergenceGuard()
    trainer = SimpleNamespace(
        current_epoch=2, global_step=17, strategy=SimpleNamespace(reduce=lambda tensor, reduce_op: tensor)
    )
    finite = {"emotion/ce": torch.tensor(1.0), "speaker/ce": torch.tensor(0.5), "grl/adversary_ce": torch.tensor(0.1)}

    def micro_batch(batch_idx: int, terms: dict) -> None:
        guard.on_train_batch_start(trainer, model, None, batch_idx)
        model.last_loss_terms = terms
        guard.on_before_backward(trainer, model, sum(terms.values()))

    micro_batch(4, finite)
    guard.on_before_optimizer_step(trainer, model, None)  # healthy: no exception
    micro_batch(5, finite)
    micro_batch(6, {**finite, "grl/adversary_ce": torch.tensor(float("inf"))})  # accumulated: checked with batch 7
    micro_batch(7, {**finite, "emotion/ce": torch.tensor(float("nan"))})
    with pytest.raises(
        TrainingDiverged,
        match=r"^training diverged at epoch 2, global step 17, batch 6: "
        r"non-finite loss terms grl/adversary_ce=inf; try a lower --model.lr "
        r"\(currently 0.5\) or a smaller weight of the attached strategies "
        r"\(grl weight 0.25\)$",
    ):
        guard.on_before_optimizer_step(trainer, model, None)


def test_the_guard_refuses_to_save_a_checkpoint_with_a_nan_weight():
    model, guard = guarded_module(), DivergenceGuard()
    state = {name: value.clone() for name, value in model.state_dict().items()}
    guard.on_save_checkpoint(None, model, {"state_dict": state})  # finite: saved
    state["emotion_head.weight"][0, 0] = float("nan")
    state["speaker_head.bias"][1] = float("-inf")
    with pytest.raises(TrainingDiverged) as raised:
        guard.on_save_checkpoint(None, model, {"state_dict": state})
    message = str(raised.value)
    assert message.startswith("refusing to save a checkpoint with non-finite weights (2 of ")
    assert (
        "emotion_head.weight" in message and "speaker_head.bias" in message and "--model.lr (currently 0.5)" in message
    )
