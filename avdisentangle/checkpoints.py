"""Reading a checkpoint: the one function every command opens one with, and the line it gives when the file is wrong.

A checkpoint can be missing, empty, cut short by a kill or a full disk during a save, something else
entirely, a checkpoint of another package, or weights that do not fit the model configured now. torch
and Lightning answer each with a traceback (a truncated zip is `OSError: [Errno 22] Invalid argument`);
here each is a `UserError` that names the file and what is wrong with it. Which file `--ckpt_path last`
names is found here too. This module imports only torch, so that the data layer
(`data.label_space_from`) reads checkpoints with it too.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from avdisentangle.errors import UserError

ZIP_MAGIC = b"PK\x03\x04"  # torch.save's format since torch 1.6
PICKLE_MAGIC = b"\x80"  # torch's legacy format, a pickle (protocol 2 or later)
SHOWN_KEYS = 3  # weights named in a "does not fit" line; the rest are counted


def read_checkpoint(
    path: str | Path, map_location: Any = "cpu", weights_only: bool | None = True, mmap: bool = False
) -> dict[str, Any]:
    """The checkpoint `fit` wrote at `path`; any other file is a one-line `UserError`.

    `mmap=True` maps the tensors instead of reading them: a cheap look at the settings and shapes.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"no checkpoint at {path}")
    if not path.is_file():
        raise UserError(f"{path} is a folder, not a checkpoint file")
    with path.open("rb") as handle:
        head = handle.read(len(ZIP_MAGIC))
    if not head:
        raise UserError(f"{path} is empty (0 bytes): a save that stopped before it wrote anything")
    try:
        checkpoint = torch.load(
            path, map_location=map_location, weights_only=weights_only, mmap=mmap and head == ZIP_MAGIC
        )
    except Exception as error:  # torch raises many kinds (OSError, EOFError, RuntimeError, UnpicklingError)
        raise UserError(f"{path} {what_is_wrong(path, head, error)}") from error
    if not isinstance(checkpoint, dict) or "hyper_parameters" not in checkpoint or "state_dict" not in checkpoint:
        raise UserError(
            f"{path} is not a checkpoint written by fit: it has no model hyperparameters (a checkpoint of another "
            "package?)"
        )
    return checkpoint


def what_is_wrong(path: Path, head: bytes, error: Exception) -> str:
    """Why torch could not read a non-empty file, told from its first bytes and the error."""
    if head == ZIP_MAGIC and not zipfile.is_zipfile(path):
        return (
            f"is truncated: a zip archive without its end ({path.stat().st_size} bytes), what a kill or a full disk "
            "leaves during a save"
        )
    if head != ZIP_MAGIC and not head.startswith(PICKLE_MAGIC):
        return "is not a checkpoint: neither a zip archive nor a pickle, the formats torch saves"
    if isinstance(error, pickle.UnpicklingError) and str(error).startswith("Weights only load failed"):
        return "holds Python objects that torch's safe loader refuses: not a checkpoint written by fit"
    detail = str(error).splitlines()[0] if str(error) else "raised without a message"
    return f"is not a checkpoint torch can read ({type(error).__name__}: {detail})"


def checkpoint_file(ckpt_path: str | None, dirpath: str | None) -> Path | None:
    """The file `--ckpt_path` names: a path, or for `last` the newest `last*.ckpt` in the checkpoint folder as
    Lightning picks it. None for no path, for `last` with no such file (Lightning then starts anew), and for
    what Lightning resolves itself: its other keywords (`best`, `hpc`, `registry...`) and remote paths."""
    if ckpt_path is None or ckpt_path in ("best", "hpc") or ckpt_path.startswith("registry") or "://" in ckpt_path:
        return None
    if ckpt_path != "last":
        return Path(ckpt_path)
    candidates = list(Path(dirpath).glob("last*.ckpt")) if dirpath else []
    return max(candidates, key=lambda path: path.stat().st_mtime) if candidates else None


def newest_intact_checkpoint(folder: Path, besides: Path) -> tuple[Path, int] | None:
    """The most recently written checkpoint in `folder` other than `besides` that reads whole, and its epoch."""
    candidates = sorted(
        (path for path in folder.glob("*.ckpt") if path.resolve() != besides.resolve()),
        key=lambda path: path.stat().st_mtime,
        reverse=True,
    )
    for path in candidates:
        try:
            return path, int(read_checkpoint(path, mmap=True).get("epoch", 0))
        except UserError:
            continue
    return None


def read_to_resume(path: str | Path, weights_only: bool | None = True) -> dict[str, Any]:
    """`read_checkpoint` for `fit --ckpt_path`: a file that cannot be resumed from also names the newest intact
    checkpoint beside it, to resume from by choice; another file is never picked silently."""
    path = Path(path)
    try:
        return read_checkpoint(path, weights_only=weights_only, mmap=True)
    except UserError as error:
        found = newest_intact_checkpoint(path.parent, besides=path) if path.parent.is_dir() else None
        if found is None:
            hint = f"no intact checkpoint in {path.parent}: start again without --ckpt_path"
        else:
            other, epoch = found
            hint = f"the newest intact checkpoint there is {other.name} (epoch {epoch}): "
            hint += f"resume with --ckpt_path={other}"
        raise UserError(f"cannot resume: {error}; {hint}") from error


def check_weights_fit(model: Mapping[str, torch.Size], checkpoint: Mapping[str, torch.Size], path: str | Path) -> None:
    """Name the first weights whose shapes differ, or that only one side has: Lightning's own message is a
    traceback that lists every key. `model` and `checkpoint` map weight names to shapes."""
    differ = [
        f"{key} is {tuple(checkpoint[key])} in the checkpoint, {tuple(shape)} in the model"
        for key, shape in model.items()
        if key in checkpoint and tuple(checkpoint[key]) != tuple(shape)
    ]
    missing = [key for key in model if key not in checkpoint]
    unexpected = [key for key in checkpoint if key not in model]
    problems = [
        listing(differ, "weights differ in shape"),
        listing(missing, "weights of the model are not in the checkpoint"),
        listing(unexpected, "weights of the checkpoint are not in the model"),
    ]
    problems = [problem for problem in problems if problem]
    if problems:
        raise UserError(
            f"checkpoint {path} does not fit the configured model: {'; '.join(problems)}; the model is sized from "
            "the data and the model settings: use those it was trained with"
        )


def listing(items: list[str], what: str) -> str:
    """'N <what>: the first few, and M more', or '' when there is none."""
    if not items:
        return ""
    shown = ", ".join(items[:SHOWN_KEYS])
    more = f", and {len(items) - SHOWN_KEYS} more" if len(items) > SHOWN_KEYS else ""
    return f"{len(items)} {what}: {shown}{more}"


def weight_shapes(state_dict: Mapping[str, Any], skip_prefix: str | None = None) -> dict[str, torch.Size]:
    """{name: shape} of a state dict's tensors, leaving out the names under `skip_prefix`."""
    return {
        key: value.shape
        for key, value in state_dict.items()
        if isinstance(value, torch.Tensor) and not (skip_prefix and key.startswith(skip_prefix))
    }
