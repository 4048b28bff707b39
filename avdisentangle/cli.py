"""Command line: Lightning's fit/validate/test/predict plus the package's own commands.

`fit` and friends are a `LightningCLI` whose model receives label counts, class weights and the
video channel count from the DataModule (`link_arguments`), so a config never types them.
`prepare` takes the same `--data.*` arguments (and the same `--config` files) as `fit`.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from jsonargparse import ActionConfigFile, ArgumentParser
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.evaluation.leakage import LeakageProbe
from avdisentangle.models.multitask import MultitaskAVModule
from avdisentangle.prediction import PredictionWriter

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")


class AVLightningCLI(LightningCLI):
    """LightningCLI with the data-to-model links and a best/last checkpoint always configured."""

    def add_arguments_to_parser(self, parser) -> None:
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(LeakageProbe, "leakage_probe")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/emotion/uar",
                "checkpoint.mode": "max",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:02d}",
            }
        )
        for source, target in (
            ("data.num_emotions", "model.num_emotions"),
            ("data.num_speakers", "model.num_speakers"),
            ("data.emotion_class_weights", "model.emotion_class_weights"),
            ("data.video_channels", "model.video_channels"),
            ("data.emotion_names", "model.emotion_label_names"),
        ):
            parser.link_arguments(source, target, apply_on="instantiate")


def run_lightning(args: list[str]) -> AVLightningCLI:
    return AVLightningCLI(
        MultitaskAVModule,
        AVDataModule,
        args=args,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
    )


def data_parser(prog: str, description: str) -> ArgumentParser:
    """A parser for the `--data.*` arguments that also accepts a full `fit` config file."""
    parser = ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", action=ActionConfigFile, help="a fit config (YAML); only its data section is used")
    parser.add_class_arguments(AVDataModule, "data")
    for ignored in ("model", "trainer", "checkpoint", "prediction_writer", "leakage_probe", "ckpt_path", "seed_everything"):
        parser.add_argument(f"--{ignored}", type=Any, default=None, help="ignored here (part of fit configs)")
    return parser


def prepare(args: list[str]) -> int:
    """Build the feature cache for a corpus and print what was kept and refused."""
    parser = data_parser("avdisentangle prepare", "Extract features of a corpus into the feature cache (once).")
    config = parser.parse_args(args)
    datamodule = parser.instantiate_classes(config).data
    summary = datamodule.prepare_data()
    print("\n".join(summary.lines()))
    return 0


EXTRA_COMMANDS: dict[str, Callable[[list[str]], int]] = {"prepare": prepare}

USAGE = """usage: python -m avdisentangle COMMAND [options]

Lightning commands (run one with --help for every option, --print_config for a full YAML):
  fit        train a multitask model (add strategies as trainer callbacks)
  validate   evaluate a checkpoint on the validation split
  test       evaluate a checkpoint on the test split
  predict    emotion probabilities and both embeddings (--data.predict_paths=[files or folders])
Package commands:
  prepare    build the feature cache of a corpus (same --data.* options as fit)
"""


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] in EXTRA_COMMANDS:
        return EXTRA_COMMANDS[args[0]](args[1:])
    if args[0] not in LIGHTNING_COMMANDS:
        print(f"unknown command {args[0]!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    run_lightning(args)
    return 0
