"""Stop a diverging run at its first non-finite loss, and never checkpoint NaN or inf weights.

Without a guard, a NaN loss trains on silently: every later step is NaN, ModelCheckpoint saves NaN
"best" and "last" checkpoints, and the run fails far from the cause (or not at all). The guard checks
the loss terms, not the gradients: under precision='16-mixed' the GradScaler makes inf gradients on
purpose and skips those steps, which is not divergence.
"""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as L
import torch
from torch import Tensor

from avdisentangle.errors import ExpectedFailure

NAMED_PARAMETERS = 5  # how many non-finite parameters a refused checkpoint names


class TrainingDiverged(ExpectedFailure):
    """The loss (or the weights) went NaN or inf; the message names where and what to change."""


def _value(value: Tensor) -> str:
    number = value.item()
    return "nan" if math.isnan(number) else ("inf" if number > 0 else "-inf")


class DivergenceGuard(L.Callback):
    """Stops fit at the first non-finite loss term and refuses checkpoints holding NaN or inf.

    Why a callback: `on_before_optimizer_step` runs after backward and before the optimizer applies
    the update, so raising there stops `Trainer.fit` through Lightning's exception handling with the
    weights of the last finite step, before any checkpoint of the bad step (or the end-of-fit leakage
    probe) runs. The terms come from `pl_module.last_loss_terms` (named, detached; the module sets
    them every training step), or the total loss for a module without them. Terms of every
    micro-batch since the last optimizer step are checked together: one host sync per step.
    """

    def __init__(self) -> None:
        super().__init__()
        self._batch_idx = 0
        self._pending: list[tuple[int, dict[str, Tensor]]] = []

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._pending.clear()

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._batch_idx = batch_idx

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        terms = getattr(pl_module, "last_loss_terms", None) or {"loss": loss.detach()}
        self._pending.append((self._batch_idx, terms))

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        stacked = torch.stack([value.float() for _, terms in pending for value in terms.values()])
        # Summed over processes, so under DDP every process stops at the same step.
        bad = trainer.strategy.reduce((~torch.isfinite(stacked).all()).float(), reduce_op="sum")
        if bad.item() == 0:  # the one host sync per step
            return
        where = f"epoch {trainer.current_epoch}, global step {trainer.global_step}"
        for batch_idx, terms in pending:
            named = [f"{name}={_value(value)}" for name, value in terms.items() if not torch.isfinite(value).all()]
            if named:
                what = f"batch {batch_idx}: non-finite loss terms {', '.join(named)}"
                break
        else:
            what = f"batch {self._batch_idx}: a loss term went non-finite on another process"
        raise TrainingDiverged(f"training diverged at {where}, {what}; {remedy(pl_module)}")

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        tensors = [
            (name, value)
            for name, value in checkpoint.get("state_dict", {}).items()
            if isinstance(value, Tensor) and value.is_floating_point()
        ]
        bad = [name for name, value in tensors if not torch.isfinite(value).all()]
        if bad:
            shown = ", ".join(bad[:NAMED_PARAMETERS])
            if len(bad) > NAMED_PARAMETERS:
                shown += f" and {len(bad) - NAMED_PARAMETERS} more"
            raise TrainingDiverged(
                f"refusing to save a checkpoint with non-finite weights ({len(bad)} of {len(tensors)} tensors: "
                f"{shown}); "
                f"the run diverged; {remedy(pl_module)}"
            )


def remedy(pl_module: L.LightningModule) -> str:
    """What to try: a lower learning rate, or weaker strategies (each named with its weight now)."""
    lr = pl_module.hparams.get("lr") if hasattr(pl_module, "hparams") else None
    advice = (
        f"try a lower --model.lr (currently {lr:g})" if isinstance(lr, (int, float)) else "try a lower learning rate"
    )
    strategies = getattr(pl_module, "attached_strategies", None) or {}
    if strategies:
        weights = ", ".join(f"{name} weight {strategy.weight:g}" for name, strategy in strategies.items())
        advice += f" or a smaller weight of the attached strategies ({weights})"
    return advice
