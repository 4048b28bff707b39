"""The on-device classification metrics agree with torchmetrics where both are defined."""

from __future__ import annotations

import math

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from avdisentangle.models.metrics import MacroF1, MacroRecall, MicroAccuracy, task_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_they_match_torchmetrics_over_several_updates(seed) -> None:
    g = torch.Generator().manual_seed(seed)
    ours = task_metrics(5, "")
    reference = {
        "uar": MulticlassAccuracy(5, average="macro"),
        "wa": MulticlassAccuracy(5, average="micro"),
        "f1": MulticlassF1Score(5, average="macro"),
    }
    for _ in range(4):
        logits, target = torch.randn(37, 5, generator=g), torch.randint(0, 5, (37,), generator=g)
        ours.update(logits, target)
        for metric in reference.values():
            metric.update(logits, target)
    computed = ours.compute()
    for name, metric in reference.items():
        assert computed[name].item() == pytest.approx(metric.compute().item(), abs=1e-6)


def test_a_class_without_targets_has_no_recall_even_when_predicted() -> None:
    """UAR averages over the classes that occur as targets: class 2 is predicted once but never true."""
    logits = torch.eye(3)[[0, 0, 1, 2]] * 5
    target = torch.tensor([0, 0, 1, 1])
    uar = MacroRecall(3)
    uar.update(logits, target)
    assert uar.compute().item() == pytest.approx((1.0 + 0.5) / 2)
    wa, f1 = MicroAccuracy(3), MacroF1(3)
    wa.update(logits, target)
    f1.update(logits, target)
    assert wa.compute().item() == pytest.approx(0.75)
    assert f1.compute().item() == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)


def test_no_update_gives_nan_recall() -> None:
    assert math.isnan(MacroRecall(3).compute().item())
