"""The one contract every disentanglement strategy follows, and the registry that finds them.

A strategy is a Lightning callback. In `setup` it puts the modules it owns (an adversary, say)
into `pl_module.strategy_modules[name]`, so the module's device moves, optimiser and checkpoints
cover them, and attaches itself to the module. The module then calls `loss_terms(outputs, batch)`
every step and adds the returned named, already-weighted scalars to its loss, logging each one as
`<split>/<name>/<term>`. A strategy with a `schedule` owns a `ScheduleState`, which is advanced
before every training step and checkpointed with the other owned modules. The arguments a strategy
was made with are its `settings`: Lightning saves them in `checkpoint["callbacks"]`, and loading
that checkpoint with other settings says which differ.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import lightning.pytorch as L
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor, nn

from avdisentangle.strategies.schedules import Schedule, ScheduleState

STRATEGIES: dict[str, type[DisentanglementStrategy] | None] = {"none": None}
"""Every strategy class by its `name`, registered as the class is defined. "none" is the plain
multitask baseline: configure no strategy callback at all (it maps to None)."""


class DisentanglementStrategy(L.Callback):
    """Base class: subclasses set `name`, may build modules and a schedule, and return named loss terms."""

    name: ClassVar[str]
    schedule: Schedule | None = None
    settings: dict[str, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Register every subclass that sets its own `name` (one without is a shared base, not a strategy)."""
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            return
        if cls.name in STRATEGIES:
            taken = STRATEGIES[cls.name]
            owner = "the baseline" if taken is None else f"{taken.__module__}.{taken.__qualname__}"
            raise TypeError(f"{cls.__module__}.{cls.__qualname__}: strategy name {cls.name!r} is taken by {owner}")
        STRATEGIES[cls.name] = cls

    def __new__(cls, *args: Any, **kwargs: Any) -> DisentanglementStrategy:
        """Record the arguments of every construction, whatever the subclass's `__init__` keeps of them."""
        strategy = super().__new__(cls)
        try:
            bound = inspect.signature(cls.__init__).bind(strategy, *args, **kwargs)
        except TypeError:  # not a construction (a copy, unpickling: the copied state brings the settings),
            return strategy  # or a wrong call, which `__init__` itself reports
        bound.apply_defaults()
        settings: dict[str, Any] = {}
        for name, value in list(bound.arguments.items())[1:]:
            kind = bound.signature.parameters[name].kind
            settings.update(value if kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        strategy.settings = {name: plain(value) for name, value in settings.items()}
        return strategy

    def __init__(self, weight: float = 1.0, lr_scale: float = 1.0) -> None:
        super().__init__()
        self.weight = weight
        # Learning-rate multiplier for the modules this strategy owns: an adversary must keep up
        # with an encoder that is learning to fool it, or it never learns to read the speaker.
        self.lr_scale = lr_scale
        self.module: nn.Module | None = None

    def state_dict(self) -> dict[str, Any]:
        """The settings, which Lightning saves in the checkpoint: what a run was is kept with its weights."""
        return {"settings": dict(self.settings)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Say in one line which settings differ from the checkpoint's (a resume or a validate with another
        config): the run goes on with the configured ones, but its results are no longer the checkpoint's."""
        stored, now = state_dict.get("settings", {}), self.settings
        changed = [
            f"{key}={stored.get(key, UNSET)!r}, now {now.get(key, UNSET)!r}"
            for key in [*stored, *(key for key in now if key not in stored)]
            if stored.get(key, UNSET) != now.get(key, UNSET)
        ]
        if changed:
            rank_zero_warn(f"checkpoint trained with {self.name} " + "; ".join(changed))

    def build_modules(self, pl_module: L.LightningModule) -> nn.Module | None:
        """The trainable state this strategy owns, sized from the module's hyperparameters."""
        return None

    def setup(self, trainer: L.Trainer | None, pl_module: L.LightningModule, stage: str) -> None:
        """Attach to the module and build owned modules once (setup runs for fit, validate, test...)."""
        pl_module.attach_strategy(self)
        if self.name not in pl_module.strategy_modules:
            module = self.build_modules(pl_module)
            if module is not None:
                pl_module.strategy_modules[self.name] = module
        self.module = pl_module.strategy_modules[self.name] if self.name in pl_module.strategy_modules else None

    def teardown(self, trainer: L.Trainer | None, pl_module: L.LightningModule, stage: str) -> None:
        """Stop contributing once the run ends, so a model reused elsewhere carries no stale strategy."""
        pl_module.detach_strategy(self)

    def schedule_state(self) -> ScheduleState:
        """The `ScheduleState` among the owned modules, where the schedule's current value lives."""
        return next(module for module in self.module.modules() if isinstance(module, ScheduleState))

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Advance the schedule, if any, to the current progress before this step's loss is computed."""
        if self.schedule is not None:
            self.schedule_state().advance(self.schedule, trainer)

    def loss_terms(self, outputs: dict[str, Tensor], batch: dict[str, Any]) -> dict[str, Tensor]:
        """Named, already-weighted scalar terms to add to the module's loss."""
        raise NotImplementedError


class Unset:
    """A setting that one side (the checkpoint or this run) does not have."""

    def __repr__(self) -> str:
        return "unset"


UNSET = Unset()


def plain(value: Any) -> Any:
    """`value` as checkpoint-safe builtins (a weights-only load refuses other objects), else its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    return repr(value)
