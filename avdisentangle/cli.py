"""Command line: Lightning's fit/validate/test/predict (`lightning_cli.py`) plus the package's own
commands. `prepare` and `probe` take the same `--data.*` arguments (and `--config` files) as `fit`.

Each command imports its implementation when it runs: `--help`, the usage and a mistyped command
answer without loading torch, Lightning or W&B (~10 s), and `fit` never needs the sweep engine.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Callable, Optional

from avdisentangle.data.records import CorpusError
from avdisentangle.errors import ExpectedFailure

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


def prepare(args: list[str]) -> int:
    """Build the feature cache for a corpus and print what was kept and refused."""
    from avdisentangle.lightning_cli import data_from_args

    datamodule = data_from_args(args)
    summary = datamodule.prepare_data()
    if summary.from_existing_cache:  # a fresh build has printed its summary already
        print("\n".join(summary.lines()))
    if summary.kept == 0:
        raise CorpusError(f"no clip was kept: every clip of the {datamodule.corpus} corpus was refused (reasons above)")
    return 0


def probe(args: list[str]) -> int:
    """Freeze a checkpoint's model and report what linear and MLP probes read from each embedding."""
    from avdisentangle.evaluation.probe import format_probe_table, probe_checkpoint
    from avdisentangle.lightning_cli import data_parser

    parser = data_parser(
        "avdisentangle probe",
        "Probe frozen embeddings of a checkpoint: speaker and emotion from z_emotion and z_identity. "
        "Pass the same data config as for fit; probes are fitted on the train split, scored on test.",
        own=("ckpt_path",),
    )
    parser.add_argument("--ckpt_path", type=str, required=True, help="checkpoint written by fit")
    parser.add_argument("--probe_seed", type=int, default=0, help="seed of the MLP probe")
    parser.add_argument("--output", type=Optional[str], default=None, help="also write the results to this JSON file")
    config = parser.parse_args(args)
    datamodule = parser.instantiate_classes(config).data.ready()
    results = probe_checkpoint(config.ckpt_path, datamodule, config.probe_seed)
    print(format_probe_table(results))
    if config.output:
        Path(config.output).parent.mkdir(parents=True, exist_ok=True)
        Path(config.output).write_text(json.dumps(results, indent=2, sort_keys=True))
    return 0


def export(args: list[str]) -> int:
    """Write a checkpoint's network as ONNX or TorchScript, checked against the checkpoint."""
    from avdisentangle.export import export as run_export

    return run_export(args)


def report(args: list[str]) -> int:
    from avdisentangle.evaluation.report import report as run_report

    return run_report(args)


def sweep(args: list[str]) -> int:
    """Run a sweep YAML; only this command needs the `sweeps` engine and its dependencies."""
    from avdisentangle.sweep import sweep as run_sweep

    return run_sweep(args)


EXTRA_COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "prepare": prepare,
    "probe": probe,
    "export": export,
    "report": report,
    "sweep": sweep,
}

USAGE = """usage: python -m avdisentangle COMMAND [options]

Lightning commands (run one with --help for every option, --print_config for a full YAML):
  fit        train a multitask model (add strategies as trainer callbacks)
  validate   evaluate a checkpoint on the validation split
  test       evaluate a checkpoint on the test split
  predict    emotion probabilities and both embeddings (--data.predict_paths=[files or folders])
Package commands:
  prepare    build the feature cache of a corpus (same --data.* options as fit)
  probe      what linear and MLP probes read from a checkpoint's frozen embeddings (--ckpt_path)
  export     a checkpoint's network for inference: --ckpt_path PATH --format onnx|torchscript
  report     every strategy over seeds: results.csv, summary.md and plots under results/<name>/
  sweep      run a W&B sweep YAML without a W&B server: sweep experiments/sweeps/grl.yaml --count 20

Errors in what you passed (a missing corpus root, a bad option value) print one line and exit 2;
add --debug (or set AVDISENTANGLE_DEBUG=1) to see their traceback too.
"""


DEBUG_FLAG = "--debug"
DEBUG_VARIABLE = "AVDISENTANGLE_DEBUG"


def main(argv: list[str] | None = None) -> int:
    """Run one command; an expected failure (bad input, a diverged run) is one line on stderr and
    its exit code, with the traceback only under --debug or AVDISENTANGLE_DEBUG=1."""
    args = sys.argv[1:] if argv is None else list(argv)
    debug = DEBUG_FLAG in args or os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")
    args = [arg for arg in args if arg != DEBUG_FLAG]
    try:
        return run_command(args)
    except Exception as error:
        failure = expected_cause(error)
        if failure is None:
            raise
        if debug:
            raise failure from None
        print(f"error: {failure}", file=sys.stderr)
        return failure.exit_code


def expected_cause(error: BaseException) -> ExpectedFailure | None:
    """The expected failure behind an error: jsonargparse wraps one raised while it links the data to the
    model (a missing corpus root, say) in a ValueError of its own, which would print as a traceback."""
    while error is not None and not isinstance(error, ExpectedFailure):
        error = error.__cause__
    return error


def run_command(args: list[str]) -> int:
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] in EXTRA_COMMANDS:
        return EXTRA_COMMANDS[args[0]](args[1:])
    if args[0] not in LIGHTNING_COMMANDS:
        print(f"unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    from avdisentangle.lightning_cli import run_lightning

    run_lightning(args)
    return 0
