"""The optimiser of the multitask module: AdamW over the model and its strategies' modules, cosine decay per step.

A mixin of `MultitaskAVModule`, apart because how the model learns is a concern of its own: it reads
`hparams.lr`, `hparams.weight_decay`, `strategy_modules` and `attached_strategies` from the module, and
keeps its own count of optimiser steps the schedule has not yet followed.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class CosineAdamW:
    """`configure_optimizers` and the schedule's stepping for a LightningModule with strategy modules."""

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The model's parameters, then each strategy's modules at the strategy's own lr scale."""
        owned = {id(p) for p in self.strategy_modules.parameters()}
        groups = [{"params": [p for p in self.parameters() if id(p) not in owned]}]
        for name, module in self.strategy_modules.items():
            strategy = self.attached_strategies.get(name)
            scale = strategy.lr_scale if strategy is not None else 1.0
            groups.append({"params": list(module.parameters()), "lr": self.hparams.lr * scale})
        return [group for group in groups if group["params"]]

    def configure_optimizers(self) -> Any:
        """AdamW over everything, strategy modules included, with per-step cosine decay.

        Cosine over the estimated number of optimiser steps covers max_epochs and max_steps alike;
        when the length is unknown (max_epochs=-1 without max_steps: inf; an iterable dataset without
        max_steps: -1) the learning rate stays constant.
        """
        optimizer = torch.optim.AdamW(
            self.parameter_groups(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        total_steps = self.trainer.estimated_stepping_batches
        if not math.isfinite(total_steps) or total_steps < 1:
            return optimizer
        # Optimiser steps taken since the learning-rate schedule last advanced (see lr_scheduler_step).
        self.optimizer_steps_unscheduled = 0
        optimizer.register_step_post_hook(self._count_optimizer_step)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, int(total_steps)))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _count_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.optimizer_steps_unscheduled += 1

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        """Advance the schedule only after an optimiser step that ran.

        Under 16-mixed the GradScaler skips every step whose scaled gradients overflow (the first few, while it
        calibrates its scale); Lightning would advance the schedule anyway, so the cosine would end early and torch
        warns that `lr_scheduler.step()` ran before `optimizer.step()`.
        """
        if self.optimizer_steps_unscheduled > 0:
            self.optimizer_steps_unscheduled = 0
            scheduler.step()
