"""Classification metrics counted on the device, so a training step never waits for the host.

torchmetrics' multiclass metrics count with `torch.bincount`, which on a GPU reads the largest label
back to the host on every update (outside deterministic mode), and validate their arguments with
`torch.unique`, another read-back: several host syncs per step, which bound the small model's GPU
steps (benchmarks/RESULTS.md). Here every metric keeps one confusion matrix, updated by a single
`index_add_`, and reduces it only in `compute`. They share their state, so a MetricCollection
updates the matrix once for all three (compute groups), and they sum across DDP processes.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric, MetricCollection


class ConfusionCounts(Metric):
    """A (true, predicted) count matrix from logits and integer targets; subclasses reduce it."""

    full_state_update = False
    is_differentiable = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.add_state("counts", torch.zeros(num_classes * num_classes, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        cells = target * self.num_classes + logits.argmax(dim=1)
        self.counts.index_add_(0, cells, torch.ones_like(cells))

    def matrix(self) -> Tensor:
        """Rows are true classes, columns predicted ones."""
        return self.counts.view(self.num_classes, self.num_classes).double()


class MacroRecall(ConfusionCounts):
    """Unweighted average recall (UAR) over the classes present in the targets.

    A class with no target clip has no recall and is left out, even when it was predicted
    (torchmetrics' macro accuracy would count it as 0).
    """

    def compute(self) -> Tensor:
        matrix = self.matrix()
        support = matrix.sum(dim=1)
        present = support > 0
        if not present.any():
            return torch.tensor(float("nan"), device=matrix.device)
        return (matrix.diagonal()[present] / support[present]).mean().float()


class MicroAccuracy(ConfusionCounts):
    """Weighted accuracy (WA): the share of clips classified correctly."""

    def compute(self) -> Tensor:
        matrix = self.matrix()
        return (matrix.diagonal().sum() / matrix.sum().clamp(min=1)).float()


class MacroF1(ConfusionCounts):
    """Macro F1 over the classes that occur as a target or a prediction (as torchmetrics averages it)."""

    def compute(self) -> Tensor:
        matrix = self.matrix()
        true_positive = matrix.diagonal()
        false_positive = matrix.sum(dim=0) - true_positive
        false_negative = matrix.sum(dim=1) - true_positive
        occurring = (true_positive + false_positive + false_negative) > 0
        if not occurring.any():
            return torch.tensor(float("nan"), device=matrix.device)
        f1 = 2 * true_positive / (2 * true_positive + false_positive + false_negative).clamp(min=1)
        return f1[occurring].mean().float()


def task_metrics(num_classes: int, prefix: str) -> MetricCollection:
    """UAR (macro recall), WA (micro accuracy) and macro F1, the usual emotion-recognition trio,
    counted on the device (no host sync in a training step)."""
    return MetricCollection(
        {"uar": MacroRecall(num_classes), "wa": MicroAccuracy(num_classes), "f1": MacroF1(num_classes)},
        prefix=prefix,
    )
