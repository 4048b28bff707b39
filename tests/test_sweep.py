"""`sweep`: the files in experiments/sweeps/ are W&B sweeps whose runs the CLI accepts as W&B would
launch them, and the local runner ranks runs, records failures and feeds metrics back to the engine."""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib
import io
import json
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import yaml

from avdisentangle.cli import main
from avdisentangle.lightning_cli import file_callbacks, run_lightning
from avdisentangle.models.multitask import MultitaskAVModule
from avdisentangle.sweep import args_macro, expand_command, load_sweep_config
from avdisentangle.sweep_results import Trial, ran_params, sweeps, write_sweep_results
from tests.conftest import TINY_FEATURES

REPO = Path(__file__).resolve().parents[1]
SWEEP_FILES = sorted((REPO / "experiments/sweeps").glob("*.yaml"))
STRATEGY_CONFIGS = sorted((REPO / "experiments/configs/strategy").glob("*.yaml"))
BASE, BENCHMARK = "experiments/configs/base.yaml", "experiments/configs/data/benchmark.yaml"
QUICK_EPOCHS = yaml.safe_load((REPO / "experiments/configs/report/quick.yaml").read_text())["trainer"]["max_epochs"]


def print_config(cli_args: list[str]) -> dict[str, Any]:
    """`python -m avdisentangle <cli_args> --print_config`, parsed in this process: no training, no start-up."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), pytest.raises(SystemExit) as exit_:
        with mock.patch.object(sys, "argv", sys.argv[:1]):  # pytest's own arguments are not the CLI's
            run_lightning([*cli_args, "--print_config"])
    assert exit_.value.code in (0, None), stderr.getvalue()[-3000:]
    return yaml.safe_load(stdout.getvalue())


def variants(config: dict[str, Any], proposal: dict[str, dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """The engine's first proposal with its listed values rotated in lockstep, so every listed value is parsed once."""
    choices = {name: spec["values"] for name, spec in config["parameters"].items() if "values" in spec}
    width = max(map(len, choices.values()), default=1)
    rotated = [{name: {"value": values[i % len(values)]} for name, values in choices.items()} for i in range(width)]
    return [{**proposal, **chosen} for chosen in rotated]


def build(parsed: dict[str, Any]) -> None:
    """Instantiate the model and the strategy callbacks as `fit` would: their __init__ checks values
    that parsing cannot (a schedule name is a plain str to the parser). Label counts are stand-ins."""
    MultitaskAVModule(num_emotions=6, num_speakers=4, **parsed["model"])
    for callback in parsed["trainer"].get("callbacks") or []:
        module, _, name = callback["class_path"].rpartition(".")
        getattr(importlib.import_module(module), name)(**callback["init_args"])


def callback_classes(config: dict[str, Any]) -> list[str]:
    return [callback["class_path"] for callback in config["trainer"].get("callbacks") or []]


def landed(parsed: dict[str, Any], name: str, value: Any) -> tuple[Any, Any]:
    """(what the parsed config holds, what the sweep parameter asked for)."""
    if name == "config":  # a strategy file: its callbacks join the base config's (none)
        return callback_classes(parsed), [callback["class_path"] for callback in file_callbacks(REPO / value)]
    if name.startswith("trainer.callbacks."):  # the init args of the (last) strategy callback
        return parsed["trainer"]["callbacks"][-1]["init_args"][name.rsplit(".", 1)[1]], value
    return functools.reduce(lambda node, key: node[key], name.split("."), parsed), value


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.stem)
def test_sweep_file_is_valid_and_the_cli_accepts_its_runs(path, monkeypatch):
    monkeypatch.chdir(REPO)  # the commands name configs relative to the repo, as `wandb agent` runs them
    config = load_sweep_config(path)
    assert config["metric"] == {"name": "leakage/tradeoff", "goal": "maximize"}
    assert config["parameters"]["trainer.max_epochs"] == {"value": QUICK_EPOCHS}
    configs = [config["command"][i + 1] for i, arg in enumerate(config["command"]) if arg == "--config"]
    assert configs[:2] == [BASE, BENCHMARK]  # the report's benchmark over the base, under any strategy file
    if path.stem != "strategies":  # the report reads its grid of strengths from here
        assert {"min", "max"} <= set(config["parameters"]["trainer.callbacks.weight"])
    benchmark = yaml.safe_load((REPO / BENCHMARK).read_text())["data"]
    for proposal in variants(config, sweeps.next_run(config, []).config):
        command = expand_command(config, proposal)
        parsed = print_config(command[command.index("avdisentangle") + 1 :])
        build(parsed)
        assert parsed["data"]["synthetic"] | benchmark["synthetic"] == parsed["data"]["synthetic"]
        assert parsed["data"]["test_fraction"] == benchmark["test_fraction"]
        for name, spec in proposal.items():
            actual, expected = landed(parsed, name, spec["value"])
            assert actual == expected, name
        assert parsed["checkpoint"]["dirpath"] is None  # per-run checkpoint folders under `wandb agent`


def agent_command(config: dict[str, Any], proposal: dict[str, dict[str, Any]], monkeypatch, tmp_path) -> list[str]:
    """The command W&B's own agent (`wandb agent`) starts for a proposal, caught before it starts. The
    server sends the file's program with each run, and the proposal as JSON (plain floats)."""
    from wandb import wandb_agent

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for name in ("WANDB_RUN_ID", "WANDB_SWEEP_PARAM_PATH"):  # the agent sets them for its run: restored after
        monkeypatch.setenv(name, "")
    started: list[list[str]] = []
    monkeypatch.setattr(wandb_agent, "AgentProcess", lambda command, **_: started.append(command) or mock.Mock())
    agent = wandb_agent.Agent(api=None, queue=None)
    agent._sweep_command = list(config.get("command") or [])
    args = json.loads(json.dumps(proposal, default=lambda value: value.item()))
    agent._command_run({"run_id": "run-1", "args": args, "program": config["program"]})  # KeyError without one
    return started[0]


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.stem)
def test_the_wandb_agent_gets_a_program_and_starts_the_runners_command(path, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)  # `wandb agent` runs from the repo root
    config = load_sweep_config(path)
    assert sweeps.schema_violations_from_proposed_config(config) == []
    assert (REPO / config["program"]).is_file()
    proposal = sweeps.next_run(config, []).config
    ours = expand_command(config, proposal)
    assert agent_command(config, proposal, monkeypatch, tmp_path) == [
        "python" if part == sys.executable else part for part in ours  # the agent's ${interpreter}
    ]


def test_the_table_shows_what_the_run_saved_in_its_config_not_the_proposal(tmp_path):
    run_dir = tmp_path / "run-1"
    saved = {"trainer": {"max_epochs": 2, "callbacks": [{"class_path": "A", "init_args": {"weight": 0.5}}]}}
    (run_dir / "csv/version_0").mkdir(parents=True)
    (run_dir / "csv/version_0/config.yaml").write_text(yaml.safe_dump({**saved, "model": {"lr": 0.001}}))
    (run_dir / "wandb/run-x/files").mkdir(parents=True)  # W&B's own config.yaml is not the run's config
    (run_dir / "wandb/run-x/files/config.yaml").write_text(yaml.safe_dump({"trainer": {"max_epochs": 99}}))
    proposal = {
        "trainer.max_epochs": {"value": 20},
        "trainer.callbacks.weight": {"value": 0.5},
        "model.lr": {"value": np.float64(0.001)},
        "config": {"value": "a.yaml"},
    }
    trial = Trial("run-1", proposal, "finished", 1.0, summary={"m": 0.25}, ran=ran_params(run_dir, proposal))
    ran = {"trainer.max_epochs": 2, "trainer.callbacks.weight": 0.5, "model.lr": 0.001, "config": "a.yaml"}
    assert trial.params == ran
    assert "| 0.25 | 2 (proposed 20) | 0.5 | 0.001 | a.yaml |" in write_sweep_results([trial], {"name": "m"}, tmp_path)
    assert trial.as_sweep_run().config == proposal  # the engine learns from what it proposed


def test_args_expand_exactly_as_the_wandb_agent_expands_them():
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    proposal = {
        "config": {"value": "a.yaml"},
        "model.lr": {"value": np.float64(1e-3)},
        "trainer.callbacks.conditional": {"value": False},
    }
    assert args_macro(proposal) == create_sweep_command_args({"args": proposal})["args"]


def test_a_glob_is_a_grid_over_files_and_print_config_gives_wandb_that_grid(monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # globs, like the command's configs, are relative to the working directory
    strategy_files = sorted(f"experiments/configs/strategy/{path.name}" for path in STRATEGY_CONFIGS)
    sweep_file = "experiments/sweeps/strategies.yaml"
    assert load_sweep_config(Path(sweep_file))["parameters"]["config"] == {"values": strategy_files}
    assert main(["sweep", sweep_file, "--print_config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["parameters"]["config"] == {"values": strategy_files}
    assert sweeps.schema_violations_from_proposed_config(printed) == []


def test_a_finished_trial_reaches_the_engine_with_its_metric():
    trial = Trial("run-1", {"x": {"value": 1}}, "finished", 1.0, summary={"leakage/tradeoff": 0.25})
    assert trial.as_sweep_run().metric_extremum("leakage/tradeoff", "maximum") == 0.25


FAKE_FIT = """
import json, pathlib, sys
args = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
x = float(args["x"])
if x > 0.8:
    sys.exit("diverged: loss is nan")
pathlib.Path(args["leakage_probe.summary_file"]).write_text(json.dumps({"leakage/tradeoff": -abs(x - 0.3)}))
"""


def test_runs_are_ranked_by_the_goal_and_a_failure_is_recorded_not_raised(tmp_path, capsys):
    (tmp_path / "fake_fit.py").write_text(FAKE_FIT)
    sweep_file = tmp_path / "fake.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {  # no `command`: W&B's default, ${env} ${interpreter} ${program} ${args}
                "program": str(tmp_path / "fake_fit.py"),
                "method": "grid",
                "metric": {"name": "leakage/tradeoff", "goal": "maximize"},
                "parameters": {"x": {"values": [0.9, 0.1, 0.35]}},
            }
        )
    )
    output = tmp_path / "out"
    assert main(["sweep", str(sweep_file), "--count", "5", "--output", str(output)]) == 0
    with (output / "sweep_results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["x"], row["state"]) for row in rows] == [("0.35", "finished"), ("0.1", "finished"), ("0.9", "failed")]
    assert "diverged: loss is nan" in rows[-1]["error"]
    printed = capsys.readouterr().out
    assert "[1/5] run-1: --x=0.9" in printed and "run-1 FAILED" in printed
    assert "the grid is exhausted after 3 runs" in printed
    assert (output / "sweep_results.md").read_text().count("\n") == 5


@pytest.mark.parametrize(
    "text, message",
    [
        (None, "no such file"),
        ("method: [grid", "is not valid YAML"),
        ("method: grid\nmetrics: {name: m}\nparameters: {x: {values: [1]}}", "'metrics' was unexpected"),
        ("program: t.py\nmethod: grid\ncommand: [python, '${args}']\nparameters: {x: {min: 0.0, max: 1.0}}", "rejects"),
        ("method: grid\nparameters: {x: {values: [1]}}", "no `program`, which `wandb agent` needs"),
        ("method: grid\ncommand: [python, '${args_json}']\nparameters: {x: {values: [1]}}", "not ${args_json}"),
        ("method: grid\nparameters: {x: {glob: no/such/folder/*.yaml}}", "no file matches 'no/such/folder/*.yaml'"),
    ],
)
def test_a_sweep_file_that_cannot_run_is_refused_before_any_run(tmp_path, capsys, text, message):
    sweep_file = tmp_path / "bad.yaml"
    if text is not None:
        sweep_file.write_text(text)
    assert main(["sweep", str(sweep_file), "--count", "1", "--output", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out" / "run-1").exists()


@pytest.mark.parametrize(
    "count, message", [(["--count", "0"], "--count: must be at least 1"), ([], "required: --count")]
)
def test_a_missing_or_nonpositive_count_is_a_usage_error(capsys, count, message):
    with pytest.raises(SystemExit) as exit_:
        main(["sweep", "experiments/sweeps/grl.yaml", *count])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_two_real_runs_offline_on_the_tiny_corpus_are_ranked(tiny_corpus, tmp_path, monkeypatch, capsys):
    strategies = [str(REPO / f"experiments/configs/strategy/{name}.yaml") for name in ("none", "orthogonal")]
    sweep_file = tmp_path / "tiny.yaml"
    sweep_file.write_text(
        yaml.safe_dump(
            {
                "program": "avdisentangle/__main__.py",
                "method": "grid",
                "metric": {"name": "leakage/tradeoff", "goal": "maximize"},
                "command": [
                    "${env}", "${interpreter}", "-m", "avdisentangle", "fit",
                    "--config", str(REPO / "experiments/configs/base.yaml"), "${args}",
                ],
                "parameters": {"config": {"values": strategies}, "trainer.max_epochs": {"value": 20}},
            }
        )
    )
    monkeypatch.chdir(tmp_path)  # where the base config's loggers would write logs/
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("WANDB_MODE", "offline")
    data = [
        "--data.corpus=cremad", f"--data.root={tiny_corpus}", f"--data.cache_dir={tmp_path / 'cache'}",
        "--data.prepare_workers=0", "--data.batch_size=8",
        *[f"--data.features.{name}={getattr(TINY_FEATURES, name)}"
          for name in ("window_s", "n_mels", "num_frames", "face_size")],
        "--trainer.max_epochs=2", "--trainer.enable_progress_bar=false",
    ]
    output = tmp_path / "out"
    code = main(["sweep", str(sweep_file), "--count", "2", "--output", str(output), "--", *data])
    assert code == 0, capsys.readouterr()
    with (output / "sweep_results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["state"] for row in rows] == ["finished", "finished"], rows
    assert sorted(row["config"] for row in rows) == sorted(strategies)
    tradeoffs = [float(row["leakage/tradeoff"]) for row in rows]
    assert tradeoffs == sorted(tradeoffs, reverse=True)
    for row in rows:
        summary = json.loads((output / row["run"] / "summary.json").read_text())
        assert summary["leakage/tradeoff"] == pytest.approx(float(row["leakage/tradeoff"]))
        assert (output / row["run"] / "checkpoints" / "last.ckpt").is_file()
        assert "`max_epochs=2` reached" in (output / row["run"] / "stderr.log").read_text()  # `--` beat the file's 20
        assert row["trainer.max_epochs"] == "2"  # what ran, from the config the run saved
        logs = output / row["run"] / "csv/version_0"  # each run's logs and saved config beside it
        assert (logs / "metrics.csv").is_file() and (logs / "config.yaml").is_file()
        assert len(list((output / row["run"] / "wandb").glob("offline-run-*"))) == 1
    assert not (tmp_path / "logs").exists()
    assert (output / "sweep_results.md").read_text().count(" 2 (proposed 20) |") == 2
    assert "[2/2] run-2 finished" in capsys.readouterr().out
