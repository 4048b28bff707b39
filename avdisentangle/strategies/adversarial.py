"""What the adversarial strategies (gradient reversal, confusion) share: an adversary that may train closer
to its best response before the encoder's term is computed (`adversary_steps`).

With one optimiser step per batch the adversary is a weak opponent: on real speech both adversaries
ended near chance while a fresh MLP probe still read the speaker from z_emotion as well as without
them. Stronger adversaries leave less for a post-hoc probe (Elazar & Goldberg 2018), so with
`adversary_steps` k > 1 the adversary first takes k - 1 Adam steps of its own on the batch's DETACHED
z_emotion, and the strategy's terms (and the model's step, which trains the adversary once more) then
face that better reader. Measured on the built-in benchmark (`grl` at 0.3, 16 seeds), k = 5 removed no
more identity than k = 1, and `confusion` at 0.3 with k = 5 never learnt emotion (README, "Strategies").

The extra steps run at the learning rate the model's optimiser gives the adversary now (the model's lr
times the strategy's lr scale, on the cosine schedule), in float32 outside autocast (no gradient scaler
is needed, mixed precision or not), and leave every `.grad` as they found it (gradient accumulation is
untouched). Their Adam moments are not checkpointed: a resumed run rebuilds them, so a resume with
k > 1 continues from the checkpoint's weights but not bit for bit as the uninterrupted run would.
Under DDP, DDP keeps parameters equal only by applying the same averaged gradient on every process;
steps on each process's own batch would pull the adversaries apart, so each extra step's gradient is
averaged over the processes first (the adversary trains on the global batch, as in the model's step).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as L
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from avdisentangle.errors import UserError
from avdisentangle.strategies.base import DisentanglementStrategy


def averaged_over_processes(grads: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    """Each gradient's mean over the DDP processes (in place); as given when there is one process."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        for grad in grads:
            dist.all_reduce(grad)
            grad.div_(dist.get_world_size())
    return grads


class AdversarialStrategy(DisentanglementStrategy):
    """A strategy whose module is a speaker adversary on z_emotion that may take `adversary_steps` - 1
    extra steps per batch (see the module docstring). Subclasses call `train_adversary` first in `loss_terms`."""

    def __init__(self, weight: float, hidden_dim: int, adversary_lr_scale: float, adversary_steps: int) -> None:
        super().__init__(weight, lr_scale=adversary_lr_scale)
        if adversary_steps < 1:
            raise UserError(f"adversary_steps must be 1 or more; got {adversary_steps}")
        self.hidden_dim = hidden_dim
        self.adversary_steps = adversary_steps
        self.adversary_optimiser: torch.optim.Optimizer | None = None

    def setup(self, trainer: L.Trainer | None, pl_module: L.LightningModule, stage: str) -> None:
        """Build the extra steps' optimiser over the adversary for a fit (fresh moments on every fit and resume)."""
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and self.adversary_steps > 1:
            lr = pl_module.hparams.lr * self.lr_scale
            self.adversary_optimiser = torch.optim.Adam(self.module.parameters(), lr=lr)

    def teardown(self, trainer: L.Trainer | None, pl_module: L.LightningModule, stage: str) -> None:
        super().teardown(trainer, pl_module, stage)
        self.adversary_optimiser = None

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Advance the schedule (the base class does) and take the learning rate the model's optimiser
        gives the adversary now, so the extra steps follow the same schedule as the model's step."""
        super().on_train_batch_start(trainer, pl_module, batch, batch_idx)
        if self.adversary_optimiser is None:
            return
        first = next(self.module.parameters())
        for group in (group for optimizer in trainer.optimizers for group in optimizer.param_groups):
            if any(param is first for param in group["params"]):
                for own in self.adversary_optimiser.param_groups:
                    own["lr"] = group["lr"]

    def adversary_ce(self, z_emotion: Tensor, speakers: Tensor) -> Tensor:
        """The adversary's speaker cross-entropy on z_emotion, its training term."""
        return F.cross_entropy(self.module(z_emotion).float(), speakers)

    def train_adversary(self, z_emotion: Tensor, speakers: Tensor) -> None:
        """Training batches only: `adversary_steps` - 1 Adam steps of the adversary on detached z_emotion."""
        if self.adversary_optimiser is None or not self.module.training:
            return
        params = [param for group in self.adversary_optimiser.param_groups for param in group["params"]]
        z = z_emotion.detach().to(params[0].dtype)
        kept = [param.grad for param in params]
        with torch.enable_grad(), torch.autocast(z.device.type, enabled=False):
            for _ in range(self.adversary_steps - 1):
                grads = averaged_over_processes(torch.autograd.grad(self.adversary_ce(z, speakers), params))
                for param, grad in zip(params, grads):
                    param.grad = grad
                self.adversary_optimiser.step()
        for param, grad in zip(params, kept):
            param.grad = grad
