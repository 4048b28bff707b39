"""Multi-process training through Lightning's DDP strategy on CPU (gloo): a 2-process fit learns
like the single-process fit with the same global batch, writes its checkpoints whole from rank 0 only,
and evaluation under 2 processes counts every clip exactly once (metrics equal to the single-process ones)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy

from avdisentangle.checkpoint_io import AtomicCheckpointIO
from avdisentangle.checkpoints import read_checkpoint
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.lightning_cli import PARSER_MODE, AVLightningCLI
from avdisentangle.models import MultitaskAVModule
from tests.helpers import fit_args, metrics_rows, run

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available() or sys.platform != "linux", reason="needs torch.distributed (gloo)"
)

SYNCED = (
    "test/emotion/uar",
    "test/emotion/wa",
    "test/emotion/f1",
    "test/speaker/uar",
    "test/speaker/wa",
    "test/speaker/f1",
)
COMMON = ["--leakage_probe.enabled=false", "--trainer.accelerator=cpu", "--trainer.max_epochs=8"]
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2"]
# The same global batch of 8 clips: one process of 8, or two of 4 whose gradients DDP averages.
RUNS = {"single": ["--data.batch_size=8", "--trainer.devices=1"], "ddp": ["--data.batch_size=4", *DDP]}


@pytest.fixture(scope="module")
def fitted(tiny_corpus, tmp_path_factory) -> dict[str, Path]:
    """Work folders of a single-process and a 2-process fit of the same config and seed."""
    workdirs = {}
    for name, extra in RUNS.items():
        workdir = tmp_path_factory.mktemp(f"fit-{name}")
        result = run(fit_args(tiny_corpus, workdir, *COMMON, *extra, strategy="none"), workdir)
        assert result.returncode == 0, result.stderr[-3000:]
        workdirs[name] = workdir
    return workdirs


def epoch_losses(workdir: Path) -> list[float]:
    """The logged mean training loss of each epoch (under DDP, the mean over processes)."""
    return [float(row["train/loss"]) for row in metrics_rows(workdir) if row.get("train/loss")]


def test_ddp_fit_learns_like_the_single_process_fit(fitted):
    single, ddp = epoch_losses(fitted["single"]), epoch_losses(fitted["ddp"])
    print(f"train loss per epoch: single {[round(x, 3) for x in single]}, ddp {[round(x, 3) for x in ddp]}")
    assert len(single) == len(ddp) == 8
    # Broken gradient averaging, an unsynced or summed loss, or a schedule sized for one process
    # would each pull the curves apart; sample order and per-process batch norm move them a little.
    assert ddp == pytest.approx(single, abs=0.2)  # measured: at most 0.10 apart
    for losses in (single, ddp):
        assert losses[-1] < losses[0] - 0.2, "the run should learn"


def test_ddp_checkpoints_are_whole_and_written_by_rank_0_only(tiny_corpus, fitted, tmp_path, monkeypatch):
    checkpoints = fitted["ddp"] / "checkpoints"
    names = sorted(path.name for path in checkpoints.iterdir())  # a partial file left behind would be listed
    assert len(names) == 2 and names[0].startswith("best-") and names[1] == "last.ckpt"
    assert read_checkpoint(checkpoints / "last.ckpt")["epoch"] == 7
    # The trainer the command line builds for a DDP run writes through the atomic checkpoint IO; rank 1 writes nothing.
    args = fit_args(tiny_corpus, fitted["ddp"], *COMMON, "--trainer.logger=false", *RUNS["ddp"])[4:]
    monkeypatch.setattr(sys, "argv", ["avdisentangle"])  # the arguments are given, not this process's own
    parsing = {"parser_mode": PARSER_MODE}
    trainer = AVLightningCLI(MultitaskAVModule, AVDataModule, args=args, run=False, parser_kwargs=parsing).trainer
    assert isinstance(trainer.strategy, DDPStrategy) and isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    checkpoint = {"hyper_parameters": {}, "state_dict": {}, "epoch": 0}
    for rank in (1, 0):
        trainer.strategy.cluster_environment.set_global_rank(rank)
        trainer.strategy.save_checkpoint(checkpoint, tmp_path / f"rank{rank}.ckpt")
    assert [path.name for path in tmp_path.iterdir()] == ["rank0.ckpt"]


def printed_metrics(stdout: str) -> dict[str, float]:
    """The metric table Lightning prints after `test`: plain, or drawn by rich (installed with transformers)."""
    return {name: float(value) for name, value in re.findall(r"(test/[\w/]+)[\s│|]+([-\d.e]+)", stdout)}


def test_ddp_evaluation_counts_every_clip_once(tiny_corpus, fitted, tmp_path, monkeypatch):
    last = fitted["ddp"] / "checkpoints" / "last.ckpt"
    assert last.exists()
    # The test split has 7 clips: a padding sampler would count one of them twice on 2 processes.
    results = {}
    for name, extra in (("single", ["--trainer.devices=1"]), ("ddp", DDP)):
        args = fit_args(
            tiny_corpus,
            tmp_path,
            *COMMON,
            "--trainer.logger=false",
            *extra,
            f"--ckpt_path={last}",
            strategy="none",
            command="test",
        )
        tested = run(args, tmp_path)
        assert tested.returncode == 0, tested.stderr[-3000:]
        results[name] = printed_metrics(tested.stdout)
    assert set(SYNCED) <= set(results["single"])
    for key in SYNCED:
        assert results["ddp"][key] == pytest.approx(results["single"][key], abs=1e-6), key
