"""Disentanglement strategies: Lightning callbacks that add named loss terms to the multitask model.

Strategies are found, never listed. Importing this package imports each of its modules, and every
`DisentanglementStrategy` subclass that sets a `name` registers itself in `STRATEGIES` (name ->
class; "none", the plain multitask baseline, maps to None: configure no strategy callback) and is
exported here under its class name, so a config's class_path can be `avdisentangle.strategies.<Class>`.
A new strategy is a module in this package plus experiments/configs/strategy/<name>.yaml, which
`make train`, `report` and experiments/sweeps/strategies.yaml discover by themselves.
"""

from __future__ import annotations

import importlib
import pkgutil

from avdisentangle.strategies.base import STRATEGIES, DisentanglementStrategy

__all__ = ["STRATEGIES", "DisentanglementStrategy", "import_strategy_modules"]  # and every strategy class


def import_strategy_modules() -> None:
    """Import every module on this package's `__path__` (defining a strategy registers it) and export the classes."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    classes = {cls.__name__: cls for cls in STRATEGIES.values() if cls is not None}
    globals().update(classes)
    __all__.extend(name for name in classes if name not in __all__)


import_strategy_modules()
