"""Experiment loggers: W&B that never needs a network unless the user logged in."""

from __future__ import annotations

import os

from lightning.pytorch.loggers import WandbLogger

from avdisentangle.errors import UserError


def wandb_logged_in() -> bool:
    """True when W&B has credentials for its server, i.e. an online run can start.

    Asks W&B's own resolver, so it finds what `wandb.init` would: WANDB_API_KEY, an identity token
    file, the netrc file at $NETRC (else ~/.netrc) for the host of WANDB_BASE_URL, or the settings
    files. It never prompts and never calls the server.
    """
    from wandb.errors import AuthenticationError
    from wandb.sdk import wandb_setup
    from wandb.sdk.lib import wbauth

    settings = wandb_setup.singleton().settings
    host = wbauth.HostUrl(settings.base_url, app_url=settings.app_url)
    try:
        auth = wbauth.authenticate_session(host=host, source="avdisentangle", prompt=False, update_session=False)
    except AuthenticationError as error:  # a malformed key: an online run would fail on it too
        raise UserError(f"W&B credentials: {error} Fix them, or set WANDB_MODE=offline.") from None
    return auth is not None


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
