"""`sweep`: run a W&B sweep YAML on this machine, without a W&B server.

The files in experiments/sweeps/ are ordinary W&B sweep configs (`wandb sweep FILE`, then
`wandb agent ID` on any number of machines). Here the open-source engine that W&B's server runs
(`sweeps`) proposes each run from the history so far, the run is the file's `command` expanded as
the W&B agent expands it, and the run's final metrics (the LeakageProbe's summary file) go back
to the engine, so that bayes search learns from them exactly as it would on the server.

One addition to W&B's format: a parameter `{glob: PATTERN}` is a grid over the files that match
PATTERN (sorted, relative to the working directory, like the command's configs), e.g. every
strategy config, so a new file joins the sweep by itself. `--print_config` prints the file with
each glob expanded to `values`, which is what `wandb sweep` accepts.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import yaml
from sklearn.exceptions import ConvergenceWarning

from avdisentangle.loggers import wandb_logged_in
from avdisentangle.sweep_results import FAILED, FINISHED, Trial, ran_params, sweeps, write_sweep_results

MACROS = ("${env}", "${interpreter}", "${program}", "${args}")
DEFAULT_COMMAND = list(MACROS)  # what the W&B agent runs for a file without `command`
STDERR_TAIL_CHARS = 2000


class SweepConfigError(Exception):
    """A sweep file that cannot run: `sweep` prints the reason and exits with status 2."""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_arguments(args: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """The `sweep` options, and the CLI arguments after `--` that every run gets."""
    own, extra = (args[: args.index("--")], args[args.index("--") + 1 :]) if "--" in args else (args, [])
    parser = argparse.ArgumentParser(
        prog="avdisentangle sweep",
        description="Run a W&B sweep YAML locally: W&B's search engine, no W&B server, W&B offline unless logged in.",
        epilog="Arguments after `--` are appended to every run, e.g. -- --trainer.max_epochs=3",
    )
    parser.add_argument("file", type=Path, help="a W&B sweep config, e.g. experiments/sweeps/grl.yaml")
    parser.add_argument("--count", type=positive_int, help="number of runs (a grid may end sooner); required to run")
    parser.add_argument(
        "--output", type=Path, help="folder for run-<k>/ and sweep_results.csv (default results/sweeps/<file stem>)"
    )
    parser.add_argument("--print_config", action="store_true", help="print the config for `wandb sweep` and exit")
    options = parser.parse_args(own)
    if options.count is None and not options.print_config:
        parser.error("the following arguments are required: --count")
    options.output = options.output or Path("results/sweeps") / options.file.stem
    return options, extra


def load_sweep_config(path: Path) -> dict[str, Any]:
    """The sweep config, checked by the engine's own schema before any run starts."""
    if not path.is_file():
        raise SweepConfigError(f"{path}: no such file")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SweepConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        raise SweepConfigError(f"{path}: a sweep config is a mapping (method, metric, parameters, command)")
    config = expand_globs(config, path)
    try:
        violations = sweeps.schema_violations_from_proposed_config(config)
    except ValueError as error:
        violations = [str(error)]
    if violations:
        raise SweepConfigError(f"{path} is not a valid sweep config:\n  " + "\n  ".join(dict.fromkeys(violations)))
    check_command(config, path)
    return config


def expand_globs(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """Each parameter `{glob: PATTERN}` as `{values: [the matching files, sorted]}`: a grid over files."""
    parameters = dict(config.get("parameters") or {})
    for name, spec in parameters.items():
        if isinstance(spec, dict) and "glob" in spec:
            files = sorted(glob.glob(str(spec["glob"])))
            if not files:
                raise SweepConfigError(f"{path}: no file matches {spec['glob']!r} (parameter {name}) from {Path.cwd()}")
            parameters[name] = {**{key: value for key, value in spec.items() if key != "glob"}, "values": files}
    return {**config, "parameters": parameters} if parameters else config


def check_command(config: dict[str, Any], path: Path) -> None:
    """Refuse, before running anything, a file that W&B's agent cannot run or that this runner would
    expand differently from W&B."""
    command = [str(token) for token in config.get("command", DEFAULT_COMMAND)]
    unknown = [token for token in command if "${" in token and token not in MACROS]
    if unknown:
        expands, found = ", ".join(MACROS), ", ".join(unknown)
        raise SweepConfigError(f"{path}: `sweep` expands only {expands} in command, not {found}")
    if "program" not in config:  # the agent reads it for every run, even where the command has no ${program}
        example = "program: avdisentangle/__main__.py"
        raise SweepConfigError(f"{path}: no `program`, which `wandb agent` needs (e.g. {example})")


def args_macro(proposal: dict[str, dict[str, Any]]) -> list[str]:
    """W&B's ${args}: `--name=value` with Python's str(value), so names must be the CLI's dotted keys."""
    return [f"--{name}={spec['value']}" for name, spec in proposal.items()]


def expand_command(config: dict[str, Any], proposal: dict[str, dict[str, Any]]) -> list[str]:
    """The run's command line as the W&B agent builds it (but ${interpreter} is this Python)."""
    macros = {
        "${env}": [] if os.name == "nt" else ["/usr/bin/env"],
        "${interpreter}": [sys.executable],
        "${program}": [str(config.get("program"))],
        "${args}": args_macro(proposal),
    }
    return [part for token in config.get("command", DEFAULT_COMMAND) for part in macros.get(str(token), [str(token)])]


def run_dir_args(command: list[str], run_dir: Path) -> list[str]:
    """Appended after the W&B form: each run writes its logs, saved config, checkpoints and final metrics
    in its own folder, not in logs/csv/version_N beside every other run."""
    return [
        f"--trainer.default_root_dir={run_dir}",
        *logger_args(command, run_dir),
        f"--checkpoint.dirpath={run_dir / 'checkpoints'}",
        f"--leakage_probe.summary_file={run_dir / 'summary.json'}",
    ]


def config_files(command: list[str]) -> list[str]:
    """The command's `--config FILE` and `--config=FILE` files, in order."""
    files = []
    for token, following in zip(command, [*command[1:], None]):
        if token == "--config" and following is not None:
            files.append(following)
        elif token.startswith("--config="):
            files.append(token.split("=", 1)[1])
    return files


def logger_args(command: list[str], run_dir: Path) -> list[str]:
    """The loggers the command's configs set, each with its save_dir in the run's folder. The CLI's
    --trainer.logger.init_args.save_dir sets only the last logger of a list, so this passes the whole list.
    Without a logger list in the configs, Lightning's default logger already writes in default_root_dir."""
    loggers = None
    for name in config_files(command):  # the last file that sets trainer.logger wins, as in the CLI
        try:
            trainer = yaml.safe_load(Path(name).read_text()).get("trainer") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            continue  # the run reports a config it cannot read
        loggers = trainer.get("logger", loggers) if isinstance(trainer, dict) else loggers
    if not isinstance(loggers, (list, dict)):
        return []
    moved = [
        {**item, "init_args": {**item["init_args"], "save_dir": str(run_dir)}}
        if isinstance(item, dict) and "save_dir" in (item.get("init_args") or {})
        else item
        for item in (loggers if isinstance(loggers, list) else [loggers])
    ]
    return [f"--trainer.logger={json.dumps(moved)}"]


def run_environment() -> dict[str, str]:
    """The agent's environment: W&B offline unless the user is logged in or chose a WANDB_MODE."""
    env = dict(os.environ)
    if "WANDB_MODE" not in env and not wandb_logged_in():
        env["WANDB_MODE"] = "offline"
    return env


def run_trial(
    name: str, proposal: dict[str, dict[str, Any]], command: list[str], run_dir: Path, env: dict[str, str]
) -> Trial:
    """Run one proposal; a crash or a missing summary is a failed trial with its stderr tail, never an exception."""
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a previous sweep's run-<k>: its summary must not pass for this run's
    run_dir.mkdir(parents=True)
    started = time.monotonic()
    with (run_dir / "stdout.log").open("w") as stdout, (run_dir / "stderr.log").open("w") as stderr:
        try:
            code = subprocess.run(command, stdout=stdout, stderr=stderr, env=env).returncode
        except OSError as error:
            message = f"could not start {command[0]}: {error}"
            return Trial(name, proposal, FAILED, time.monotonic() - started, error=message)
    seconds, ran = time.monotonic() - started, ran_params(run_dir, proposal)
    summary_file = run_dir / "summary.json"
    if code != 0:
        tail = (run_dir / "stderr.log").read_text()[-STDERR_TAIL_CHARS:]
        return Trial(name, proposal, FAILED, seconds, error=f"exit status {code}\n{tail}".strip(), ran=ran)
    if not summary_file.is_file():
        message = f"exited 0 without writing {summary_file} (leakage probe off?)"
        return Trial(name, proposal, FAILED, seconds, error=message, ran=ran)
    return Trial(name, proposal, FINISHED, seconds, summary=json.loads(summary_file.read_text()), ran=ran)


def propose(config: dict[str, Any], trials: list[Trial]) -> dict[str, dict[str, Any]] | None:
    """The engine's next proposal given every trial so far; None when a grid is exhausted."""
    try:
        with warnings.catch_warnings():
            # bayes fits a GP to a few points; the server hides this warning too
            warnings.simplefilter("ignore", ConvergenceWarning)
            run = sweeps.next_run(config, [trial.as_sweep_run() for trial in trials])
    except ValueError as error:
        raise SweepConfigError(f"the sweep engine rejects this config: {error}") from None
    return None if run is None else run.config


def progress(trial: Trial, metric_name: str | None, run_dir: Path) -> str:
    if trial.state == FINISHED:
        value = trial.metric(metric_name) if metric_name else None
        shown = f": {metric_name} = {value:.4f}" if value is not None else ""
        return f"{trial.name} finished in {trial.seconds:.0f}s{shown}"
    return f"{trial.name} FAILED in {trial.seconds:.0f}s: {trial.error.splitlines()[-1]} (see {run_dir / 'stderr.log'})"


def run_sweep(config: dict[str, Any], count: int, output: Path, extra: list[str]) -> list[Trial]:
    """Propose, run and feed back `count` runs one after the other, as one W&B agent would."""
    output.mkdir(parents=True, exist_ok=True)
    env, metric = run_environment(), config.get("metric")
    metric_name = metric["name"] if metric else None
    trials: list[Trial] = []
    for k in range(1, count + 1):
        proposal = propose(config, trials)
        if proposal is None:
            print(f"the grid is exhausted after {len(trials)} runs", flush=True)
            break
        name, run_dir = f"run-{k}", output / f"run-{k}"
        command = expand_command(config, proposal)
        command += run_dir_args(command, run_dir) + extra
        print(f"[{k}/{count}] {name}: {' '.join(args_macro(proposal))}", flush=True)
        trials.append(run_trial(name, proposal, command, run_dir, env))
        print(f"[{k}/{count}] {progress(trials[-1], metric_name, run_dir)}", flush=True)
        write_sweep_results(trials, metric, output)
    return trials


def sweep(args: list[str]) -> int:
    """`avdisentangle sweep FILE --count N [--output DIR] [-- CLI args]`: exit 0 when a run finished,
    1 when none did, 2 for a file that cannot run, 130 when interrupted (results so far are kept)."""
    options, extra = parse_arguments(args)
    try:
        config = load_sweep_config(options.file)
        if options.print_config:
            print(yaml.safe_dump(config, sort_keys=False), end="")
            return 0
        print(f"sweep {options.file} ({config['method']}, {options.count} runs) -> {options.output}/", flush=True)
        if extra:
            print(f"every run also gets: {' '.join(extra)}", flush=True)
        trials = run_sweep(config, options.count, options.output, extra)
    except SweepConfigError as error:
        print(f"avdisentangle sweep: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; the finished runs are in {options.output / 'sweep_results.md'}", file=sys.stderr)
        return 130
    if trials:
        print("\n" + write_sweep_results(trials, config.get("metric"), options.output))
    print(f"\nresults: {options.output / 'sweep_results.csv'} and {options.output / 'sweep_results.md'}")
    return 0 if any(trial.state == FINISHED for trial in trials) else 1
