"""The model a checkpoint holds, built from what `read_checkpoint` returned rather than by reading the file again.

`load_from_checkpoint` opens the file itself, with a traceback for every way it can be wrong; the
commands that need only the model (`probe`, `export`) read the file once with the package's reader
and build the model here, from the checkpoint's own settings, with the same checks as a trainer's load.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from avdisentangle.checkpoints import check_weights_fit, weight_shapes
from avdisentangle.errors import UserError
from avdisentangle.models.multitask import MultitaskAVModule


def module_from_checkpoint(checkpoint: dict[str, Any], path: str | Path) -> MultitaskAVModule:
    """The checkpoint's model, on the CPU; the modules of its strategies are left out, saying so."""
    known = inspect.signature(MultitaskAVModule).parameters
    settings = {key: value for key, value in checkpoint["hyper_parameters"].items() if key in known}
    try:
        module = MultitaskAVModule(**settings)
    except TypeError as error:  # settings of another LightningModule: a required argument is missing
        message = f"{path} is not a checkpoint written by fit: its model settings build no model ({error})"
        raise UserError(message) from error
    module.on_load_checkpoint(checkpoint)
    check_weights_fit(weight_shapes(module.state_dict()), weight_shapes(checkpoint["state_dict"]), path)
    module.load_state_dict(checkpoint["state_dict"])
    return module
