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


def wandb_offline() -> bool:
    """Whether a W&B run should be offline: as `WANDB_MODE` says, else unless the user is logged in."""
    mode = os.environ.get("WANDB_MODE")
    return mode in ("offline", "dryrun") if mode else not wandb_logged_in()


class AutoWandbLogger(WandbLogger):
    """`WandbLogger` that runs offline unless the user is logged in or `WANDB_MODE=online`.

    Offline runs land in `<save_dir>/wandb/offline-run-*` and can be uploaded later with
    `wandb sync <save_dir>/wandb/offline-run-*`; a machine without network never crashes a training
    run. `log_model` is Lightning's upload of every checkpoint, online only; the `wandb_records`
    callback (`avdisentangle/wandb_records.py`) logs the best and last ones, offline too.
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
        os.makedirs(save_dir, exist_ok=True)
        # W&B stages artifacts (the checkpoints) in $WANDB_DATA_DIR, by default a folder in the home directory; keep
        # them beside the offline runs that `wandb sync` uploads them with. Set before asking W&B for credentials,
        # which fixes its settings for the process: a W&B variable changed later is warned about, and ignored.
        os.environ.setdefault("WANDB_DATA_DIR", os.path.join(save_dir, "wandb", "staging"))
        if offline is None:
            offline = wandb_offline()
        if offline:
            # Said to wandb.init, not to Lightning's `offline`: that sets WANDB_MODE after W&B's settings are fixed.
            kwargs["mode"] = "offline"
        super().__init__(project=project, save_dir=save_dir, name=name, log_model=log_model and not offline, **kwargs)
        # Lightning passes `anonymous=None` to wandb.init, which W&B warns has no effect.
        if self._wandb_init.get("anonymous") is None:
            del self._wandb_init["anonymous"]
