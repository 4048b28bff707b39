"""Experiment loggers: W&B that never needs a network unless the user logged in."""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger


def wandb_logged_in() -> bool:
    """True when W&B has credentials (environment or ~/.netrc), i.e. an online run can start."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class AutoWandbLogger(WandbLogger):
    """`WandbLogger` that runs offline unless the user is logged in or `WANDB_MODE=online`.

    Offline runs land in `<save_dir>/wandb/offline-run-*` and can be uploaded later with
    `wandb sync`; a machine without network never crashes a training run.
    """

    def __init__(
        self,
        project: str = "avdisentangle",
        save_dir: str = "logs",
        name: str | None = None,
        offline: bool | None = None,
        log_model: bool = False,
        **kwargs,
    ):
        if offline is None:
            mode = os.environ.get("WANDB_MODE")
            offline = mode in ("offline", "dryrun") if mode else not wandb_logged_in()
        os.makedirs(save_dir, exist_ok=True)
        super().__init__(
            project=project,
            save_dir=save_dir,
            name=name,
            offline=offline,
            log_model=log_model and not offline,
            **kwargs,
        )
