"""Config files compose: each strategy and callback file appends to `trainer.callbacks` (`callbacks+`),
so any of them, in any order, keeps every callback with its settings; `${...}` resolves over the merged
config, in `fit` and in the `prepare`/`probe` parsers alike; float32 matmul precision is set on CUDA."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
import yaml

from avdisentangle.errors import UserError
from avdisentangle.lightning_cli import AVLightningCLI, data_from_args, file_callbacks, run_lightning
from tests.helpers import fit_args

CONFIGS = Path(__file__).resolve().parents[1] / "experiments/configs"
BASE = str(CONFIGS / "base.yaml")
HSIC, GRL, NONE = (str(CONFIGS / "strategy" / f"{name}.yaml") for name in ("hsic", "grl", "none"))
EARLY_STOPPING, LR_MONITOR = (str(CONFIGS / "callbacks" / f"{name}.yaml") for name in ("early_stopping", "lr_monitor"))
INTERPOLATED = "model:\n  identity_dim: ${model.emotion_dim}\n"


def print_config(*args: str) -> dict[str, Any]:
    """`fit ... --print_config`, parsed in this process: no data, no model, no training."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_:
        with mock.patch.object(sys, "argv", sys.argv[:1]):  # pytest's own arguments are not the CLI's
            run_lightning(["fit", *args, "--print_config"])
    assert exit_.value.code in (0, None), stderr.getvalue()[-3000:]
    return yaml.safe_load(stdout.getvalue())


def written(path: str) -> list[tuple[str, dict[str, Any]]]:
    """Each callback a file adds, with the init args it spells out (interpolations aside)."""
    return [
        (c["class_path"], {k: v for k, v in (c.get("init_args") or {}).items() if "${" not in str(v)})
        for c in file_callbacks(path)
    ]


def trainer_section(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}).get("trainer") or {}


@pytest.mark.parametrize(
    "files",
    [
        [HSIC, GRL, EARLY_STOPPING, LR_MONITOR],
        [EARLY_STOPPING, LR_MONITOR, GRL, HSIC],
        [LR_MONITOR, HSIC, NONE, EARLY_STOPPING, GRL],
    ],
    ids=lambda files: "+".join(Path(f).stem for f in files),
)
def test_strategies_and_callbacks_compose_in_any_order(files):
    config = print_config("--config", BASE, *[arg for f in files for arg in ("--config", f)])
    callbacks = config["trainer"]["callbacks"]
    expected = [callback for f in files for callback in written(f)]
    assert [c["class_path"] for c in callbacks] == [class_path for class_path, _ in expected]
    for callback, (_, init_args) in zip(callbacks, expected):
        assert callback["init_args"].items() >= init_args.items()
    (stopping,) = [c["init_args"] for c in callbacks if c["class_path"].endswith("EarlyStopping")]
    assert (stopping["monitor"], stopping["mode"]) == ("val/emotion/uar", "max")  # the checkpoint's, interpolated


def test_every_shipped_file_appends_its_callbacks_and_a_plain_list_would_drop_the_earlier(tmp_path):
    """A plain `callbacks:` list replaces what earlier files configured (jsonargparse's list semantics)."""
    replacing = [p.relative_to(CONFIGS) for p in CONFIGS.rglob("*.yaml") if "callbacks" in trainer_section(p)]
    assert replacing == []
    plain = tmp_path / "hsic_plain.yaml"
    plain.write_text(Path(HSIC).read_text().replace("callbacks+:", "callbacks:"))
    config = print_config("--config", BASE, "--config", EARLY_STOPPING, "--config", str(plain))
    assert [c["class_path"] for c in config["trainer"]["callbacks"]] == ["avdisentangle.strategies.HSICStrategy"]


def test_a_strength_override_lands_on_the_strategy_file_given_last():
    """The report and the sweeps set `--trainer.callbacks.weight` (the last callback's) after the strategy file."""
    files = ["--config", BASE, "--config", EARLY_STOPPING, "--config", HSIC]
    config = print_config(*files, "--trainer.callbacks.weight=0.7")
    stopping, hsic = config["trainer"]["callbacks"]
    assert hsic["init_args"]["weight"] == 0.7 and "weight" not in stopping["init_args"]


def test_adversary_steps_reach_the_adversarial_strategy_from_the_command_line():
    """Set as the sweeps set the strength: the dotted option lands on the last callback, the strategy's."""
    files = ["--config", BASE, "--config", EARLY_STOPPING, "--config", GRL]
    config = print_config(*files, "--trainer.callbacks.adversary_steps=5")
    stopping, grl = config["trainer"]["callbacks"]
    assert grl["init_args"]["adversary_steps"] == 5 and "adversary_steps" not in stopping["init_args"]


def test_an_interpolation_follows_later_files_and_the_command_line_into_the_model(tiny_corpus, tmp_path, monkeypatch):
    interpolated = tmp_path / "interpolated.yaml"
    interpolated.write_text(INTERPOLATED)
    monkeypatch.setattr(AVLightningCLI, "_run_subcommand", lambda self, subcommand: None)  # built, not trained
    args = fit_args(tiny_corpus, tmp_path, "--config", str(interpolated), "--model.emotion_dim=12")[3:]
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        cli = run_lightning(args)
    assert cli.model.hparams.emotion_dim == cli.model.hparams.identity_dim == 12


def test_a_name_that_interpolates_to_nothing_is_a_one_line_user_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  identity_dim: ${model.no_such_key}\n")
    with pytest.raises(UserError, match="model.no_such_key") as fit_error:
        run_lightning(["fit", "--config", BASE, "--config", str(bad)])
    with pytest.raises(UserError, match="model.no_such_key") as prepare_error:
        data_from_args(["--config", BASE, "--config", str(bad)])
    assert "\n" not in str(fit_error.value) + str(prepare_error.value)


def test_prepare_and_probe_read_interpolated_and_appending_fit_configs(tmp_path):
    """Their parser ignores fit-only sections, yet merges them as `fit` does, so a `${...}` may name a key that
    only an earlier file sets (here base.yaml's model.emotion_dim, 64)."""
    extra = tmp_path / "extra.yaml"
    extra.write_text(INTERPOLATED + "data:\n  batch_size: ${model.emotion_dim}\nfloat32_matmul_precision: medium\n")
    files = [BASE, EARLY_STOPPING, HSIC, LR_MONITOR, str(extra)]
    datamodule = data_from_args([arg for f in files for arg in ("--config", f)])
    assert datamodule.batch_size == 64


def test_prepare_and_probe_accept_the_whole_config_that_fit_prints(tmp_path):
    """`fit --print_config > run.yaml` names every fit-only key (the precision, weights_only, ...)."""
    printed = tmp_path / "run.yaml"
    printed.write_text(yaml.safe_dump(print_config("--config", BASE, "--config", HSIC, "--data.batch_size=24")))
    assert data_from_args(["--config", str(printed)]).batch_size == 24


class Built(Exception):
    """Raised where the classes would be instantiated: the precision is set by then."""


@pytest.fixture
def matmul_precision(monkeypatch):
    """Stops the CLI before it builds anything; restores PyTorch's precision afterwards."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    monkeypatch.setattr(AVLightningCLI, "instantiate_classes", mock.Mock(side_effect=Built))
    yield
    torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize(
    "cuda, option, expected", [(True, [], "high"), (True, ["medium"], "medium"), (False, ["medium"], "highest")]
)
def test_float32_matmul_precision_is_set_on_cuda_only(matmul_precision, monkeypatch, cuda, option, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    with pytest.raises(Built):
        run_lightning(["fit", "--config", BASE, *[f"--float32_matmul_precision={value}" for value in option]])
    assert torch.get_float32_matmul_precision() == expected
