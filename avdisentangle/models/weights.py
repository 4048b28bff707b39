"""Pretrained weights from a local file into a module: read on the CPU, checked key by key, never downloaded.

A file that does not fit is refused in one line naming a few of the keys at fault, since a partial
load would silently train from a half-random start.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from avdisentangle.errors import UserError

# Keys of a classification head that the encoders replace with their own (torchvision's ImageNet `fc`).
IGNORED_PREFIXES = ("fc.",)
# Batch-norm step counters: older files lack them and batch norm fills them in itself.
OPTIONAL_SUFFIX = "num_batches_tracked"
SHOWN = 3


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors in `path`: a state_dict, or a dict holding one under "state_dict" or "model"."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"weights file {path} not found")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"cannot read weights file {path}: {str(error).splitlines()[0]}") from error
    for key in ("state_dict", "model"):
        if isinstance(content, dict) and isinstance(content.get(key), dict):
            content = content[key]
    if not isinstance(content, dict) or not all(isinstance(value, Tensor) for value in content.values()):
        raise UserError(f"weights file {path} holds no state_dict (a dict of tensors)")
    return content


def fit_input_channels(given: Tensor, wanted: torch.Size) -> Tensor:
    """RGB conv weights for a one-channel input are summed over their input channels (as timm does):
    on a grey image repeated three times, the summed filter gives exactly the RGB filter's response."""
    rgb_into_grey = given.ndim == 4 and len(wanted) == 4 and given.shape[1] == 3 and wanted[1] == 1
    if rgb_into_grey and given.shape[:1] + given.shape[2:] == wanted[:1] + wanted[2:]:
        return given.sum(dim=1, keepdim=True)
    return given


def few(keys: list[str]) -> str:
    more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
    return ", ".join(keys[:SHOWN]) + more


def load_weights(module: nn.Module, path: str | Path) -> None:
    """Load the file's tensors into `module`, all or nothing."""
    own = module.state_dict()
    given = {key: value for key, value in read_state_dict(path).items() if not key.startswith(IGNORED_PREFIXES)}
    given = {key: fit_input_channels(value, own[key].shape) if key in own else value for key, value in given.items()}
    missing = sorted(key for key in own.keys() - given.keys() if not key.endswith(OPTIONAL_SUFFIX))
    unexpected = sorted(given.keys() - own.keys())
    misshapen = sorted(
        f"{key} {tuple(given[key].shape)} for {tuple(own[key].shape)}"
        for key in own.keys() & given.keys()
        if given[key].shape != own[key].shape
    )
    faults = [
        f"{label} {few(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape:", misshapen))
        if keys
    ]
    if faults:
        raise UserError(f"weights file {path} does not fit {type(module).__name__}: {'; '.join(faults)}")
    module.load_state_dict(given, strict=False)
