"""`wandb_logged_in` finds credentials where W&B itself does ($NETRC, WANDB_API_KEY, the host
of WANDB_BASE_URL) and never calls the server: a logged-out machine trains offline, a logged-in
one online."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from wandb.sdk import wandb_setup

from avdisentangle.errors import UserError
from avdisentangle.loggers import wandb_logged_in, wandb_offline

KEY = "0123456789abcdef0123456789abcdef01234567"  # the shape of a W&B API key: 40 characters


@pytest.fixture
def no_credentials(tmp_path, monkeypatch):
    """No key in the environment, an empty netrc at $NETRC, fresh W&B settings, and no network."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL", "WANDB_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))  # no user settings file
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(wandb_setup, "_singleton", None)  # W&B reads its settings once per process

    def refuse(*args, **kwargs):
        raise AssertionError("wandb_logged_in tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    return tmp_path / "netrc"


def test_no_key_and_no_netrc_is_logged_out(no_credentials):
    assert not wandb_logged_in()


def test_the_api_key_variable_logs_in_and_unsetting_it_logs_out(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    assert wandb_logged_in()
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setattr(wandb_setup, "_singleton", None)
    assert not wandb_logged_in()


def test_the_netrc_file_named_by_NETRC_logs_in(no_credentials):
    no_credentials.write_text(f"machine api.wandb.ai\n  login user\n  password {KEY}\n")
    assert wandb_logged_in()


def test_netrc_credentials_count_only_for_the_configured_host(no_credentials, monkeypatch):
    no_credentials.write_text(f"machine wandb.example.com\n  login user\n  password {KEY}\n")
    assert not wandb_logged_in()  # the default server is not wandb.example.com
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    monkeypatch.setattr(wandb_setup, "_singleton", None)
    assert wandb_logged_in()


def test_a_malformed_key_is_a_user_error_not_a_silent_online_run(no_credentials, monkeypatch):
    monkeypatch.setenv("WANDB_API_KEY", "too-short")
    with pytest.raises(UserError, match="WANDB_API_KEY invalid"):
        wandb_logged_in()


def test_wandb_mode_decides_before_credentials(no_credentials, monkeypatch):
    """Fits and the report share this choice: offline when logged out, unless WANDB_MODE says otherwise."""
    assert wandb_offline()
    monkeypatch.setenv("WANDB_MODE", "online")
    assert not wandb_offline()
    monkeypatch.setenv("WANDB_API_KEY", KEY)
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_offline()


def test_a_logged_out_machine_without_wandb_mode_trains_offline_and_quietly(tmp_path):
    """Asking W&B for credentials fixes its settings for the process; the logger must still start its run offline
    rather than ask wandb.init to log in (which fails without a key), and without W&B warnings that are not the
    user's business: a W&B variable set after that ask, an `anonymous` setting nobody gave."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("WANDB_")}
    env.update(NETRC=str(tmp_path / "netrc"), WANDB_CONFIG_DIR=str(tmp_path / "wandb-config"))
    code = (
        "import wandb; from avdisentangle.loggers import AutoWandbLogger; "
        "logger = AutoWandbLogger(save_dir='logs'); logger.log_metrics({'x': 1.0}); wandb.finish()"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert list((tmp_path / "logs" / "wandb").glob("offline-run-*"))
    assert "WARNING" not in done.stdout + done.stderr, done.stderr
