"""Multi-process training through Lightning's DDP strategy on CPU (gloo): fit runs, and evaluation
under 2 processes counts every clip exactly once (metrics equal to the single-process ones)."""

from __future__ import annotations

import re
import sys

import pytest
import torch

from tests.test_cli import fit_args, run

SYNCED = ("test/emotion/uar", "test/emotion/wa", "test/emotion/f1", "test/speaker/uar", "test/speaker/wa", "test/speaker/f1")


def printed_metrics(stdout: str) -> dict[str, float]:
    """The metric table Lightning prints after `test`."""
    return {name: float(value) for name, value in re.findall(r"(test/[\w/]+)\s+([-\d.e]+)", stdout)}


@pytest.mark.skipif(not torch.distributed.is_available() or sys.platform != "linux", reason="needs torch.distributed (gloo)")
def test_ddp_fit_and_unrepeated_evaluation(tiny_corpus, tmp_path):
    common = ["--data.batch_size=4", "--trainer.logger=false", "--leakage_probe.enabled=false", "--trainer.accelerator=cpu"]
    ddp = ["--trainer.strategy=ddp", "--trainer.devices=2"]
    fitted = run(fit_args(tiny_corpus, tmp_path, *common, *ddp, "--trainer.max_epochs=1", strategy="grl"), tmp_path)
    assert fitted.returncode == 0, fitted.stderr[-3000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.exists()
    # The test split has 7 clips: a padding sampler would count one of them twice on 2 processes.
    results = {}
    for name, extra in (("single", ["--trainer.devices=1"]), ("ddp", ddp)):
        tested = run(fit_args(tiny_corpus, tmp_path, *common, *extra, f"--ckpt_path={last}", strategy="grl", command="test"), tmp_path)
        assert tested.returncode == 0, tested.stderr[-3000:]
        results[name] = printed_metrics(tested.stdout)
    assert set(SYNCED) <= set(results["single"])
    for key in SYNCED:
        assert results["ddp"][key] == pytest.approx(results["single"][key], abs=1e-6), key
