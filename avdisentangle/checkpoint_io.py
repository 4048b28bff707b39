"""Checkpoint files written whole or not at all, and read through the package's one reader.

Lightning's `TorchCheckpointIO` writes through a temporary file that fsspec puts in the system's temp
folder, then moves into place: across file systems that move is a copy into the target, so a kill or a
full disk during a save leaves `last.ckpt` cut short and the previous good one gone. Here every write
goes to a temporary file in the target's own folder, is flushed and fsynced, and replaces the old file
with `os.replace`: a kill at any moment leaves the old file or the new one, whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch
from lightning.fabric.plugins import CheckpointIO, TorchCheckpointIO

from avdisentangle.checkpoints import read_checkpoint


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file through `write(handle)`: to a temporary file beside it, flushed and fsynced, then renamed over it.

    A failure removes the temporary file; a kill leaves at most a hidden `.NAME.partial-PID` beside the
    target, which is never read. The folder is synced too, so the rename itself survives a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with partial.open("wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that a rename in it is on disk (POSIX; elsewhere a folder cannot be opened)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic local writes and the package's reader.

    The CLI gives it to every Trainer it builds (`lightning_cli.py`); the Trainer's strategy calls it, so
    under DDP only rank 0 writes, as before. Remote paths (`s3://...`) keep Lightning's own writer.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if storage_options is not None or "://" in str(path):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        write_atomically(path, lambda handle: torch.save(checkpoint, handle))

    def load_checkpoint(self, path: str | Path, map_location: Any = None, weights_only: bool | None = None) -> dict:
        if "://" in str(path):
            return super().load_checkpoint(path, map_location, weights_only)
        return read_checkpoint(path, map_location=map_location or "cpu", weights_only=weights_only)


def with_atomic_checkpoints(plugins: Any) -> list[Any]:
    """The configured trainer plugins, plus `AtomicCheckpointIO` when none of them is a checkpoint IO."""
    plugins = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if not any(isinstance(plugin, CheckpointIO) for plugin in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins
