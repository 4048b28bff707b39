"""The Lightning command line of one run, and a parser for its `--data.*` options alone.

`AVLightningCLI` is `fit`/`validate`/`test`/`predict`: its model receives label counts, class
weights, the video channel count and the cached audio features' shape from the DataModule
(`link_arguments`), so a config never types them. Every logger receives the whole resolved config
(`LoggedConfig`), so a run's records say what it was: trainer, seed, strategy callbacks and their
settings, not only the model's hyperparameters.
`--ckpt_path` is opened with the package's one reader (`checkpoints.py`), and every trainer writes its
checkpoints atomically (`checkpoint_io.py`). `run_lightning` runs one such command from a list of
arguments; the command line (`cli.py`) and the report's runs (`evaluation/runs.py`) both call it, so
neither imports the other.
"""

from __future__ import annotations

import contextlib
import inspect
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import lightning.pytorch as L
import torch
import yaml
from jsonargparse import ActionConfigFile, ArgumentParser, Namespace, set_parsing_settings
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
from omegaconf.errors import OmegaConfBaseException

from avdisentangle.checkpoint_io import with_atomic_checkpoints
from avdisentangle.checkpoints import check_weights_fit, checkpoint_file, read_checkpoint, read_to_resume, weight_shapes
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.divergence import DivergenceGuard
from avdisentangle.errors import UserError
from avdisentangle.evaluation.leakage import LeakageProbe
from avdisentangle.models.multitask import STRATEGY_PREFIX, MultitaskAVModule
from avdisentangle.prediction import PredictionWriter
from avdisentangle.strategies import DisentanglementStrategy
from avdisentangle.wandb_records import WandbRecords


class AVLightningCLI(LightningCLI):
    """LightningCLI with the data-to-model links, best and last checkpoints, the prediction writer
    and the end-of-fit leakage probe always configured."""

    def add_arguments_to_parser(self, parser) -> None:
        # Two checkpoint callbacks: ModelCheckpoint's own save_last only refreshes last.ckpt when a
        # new best is saved, so a resumed run could restart from a stale epoch.
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.link_arguments("checkpoint.dirpath", "last_checkpoint.dirpath")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/emotion/uar",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-{epoch:02d}",
                "last_checkpoint.filename": "last",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(LeakageProbe, "leakage_probe")
        parser.add_lightning_class_args(DivergenceGuard, "divergence_guard")
        parser.add_lightning_class_args(WandbRecords, "wandb_records")
        # The model reads the modalities the data extracts: one setting, never two that disagree.
        parser.link_arguments("data.features.modalities", "model.modalities")
        # The model is sized from the data: the DataModule prepares its cache and splits once
        # (`ready`), before the model exists, and every link reads from that.
        for attribute, target in (
            ("num_emotions", "model.num_emotions"),
            ("num_speakers", "model.num_speakers"),
            ("emotion_class_weights", "model.emotion_class_weights"),
            ("video_channels", "model.video_channels"),
            ("emotion_names", "model.emotion_label_names"),
            ("audio_shape", "model.audio_shape"),
        ):
            parser.link_arguments("data", target, compute_fn=data_attribute(attribute), apply_on="instantiate")

    def add_default_arguments_to_parser(self, parser) -> None:
        super().add_default_arguments_to_parser(parser)
        parser.add_argument(
            "--float32_matmul_precision",
            type=Literal["highest", "high", "medium"],
            default="high",
            help="torch.set_float32_matmul_precision on CUDA (TF32 tensor cores from 'high'); ignored on CPU",
        )

    def before_instantiate_classes(self) -> None:
        set_matmul_precision(self._get(self.config, "float32_matmul_precision"))

    def parse_arguments(self, parser, args) -> None:
        with interpolation_errors():
            super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Open `--ckpt_path` with the package's reader, where Lightning would `torch.load` it (a damaged file was
        a traceback), then take the model's settings from it as Lightning does. `last` becomes the file it names,
        so that the file checked here is the one the trainer loads; a damaged one, resumed by `fit`, names the
        newest intact checkpoint beside it instead."""
        self.checkpoint_file, self.checkpoint_weights = None, {}
        subcommand = self.config.get("subcommand")
        settings = self.config[subcommand] if subcommand else None
        path = checkpoint_file(settings.ckpt_path, settings.checkpoint.dirpath) if settings else None
        if path is None:
            return
        settings.ckpt_path = str(path)
        weights_only = settings.get("weights_only") is not False
        if subcommand == "fit":
            checkpoint = read_to_resume(path, weights_only)
        else:
            checkpoint = read_checkpoint(path, weights_only=weights_only, mmap=True)
        self.checkpoint_file, self.checkpoint_weights = path, weight_shapes(checkpoint["state_dict"], STRATEGY_PREFIX)
        known = inspect.signature(MultitaskAVModule).parameters
        model = {key: value for key, value in checkpoint["hyper_parameters"].items() if key in known}
        if model:
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)

    def after_instantiate_classes(self) -> None:
        """A checkpoint whose weights do not fit the model built from the config and the data is one line, before
        the run (strategies attach their modules later; Lightning checks those when it loads them)."""
        if self.checkpoint_file is not None:
            model = weight_shapes(self.model.state_dict(), STRATEGY_PREFIX)
            check_weights_fit(model, self.checkpoint_weights, self.checkpoint_file)

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        """The trainer, once no strategy is configured twice (Lightning would refuse with a traceback), with atomic
        checkpoint writes unless the config names a checkpoint IO of its own."""
        config = self._get(self.config_init, "trainer", default={})
        refuse_repeated_strategies(config.get("callbacks"))
        return super().instantiate_trainer(plugins=with_atomic_checkpoints(config.get("plugins")), **kwargs)


def set_matmul_precision(precision: str) -> None:
    """Float32 matmuls on CUDA at `precision` before any model exists: PyTorch's default ('highest')
    leaves tensor cores unused. On CPU the setting changes nothing, so it is left alone."""
    if torch.cuda.is_available():
        torch.set_float32_matmul_precision(precision)


def refuse_repeated_strategies(callbacks: L.Callback | list[L.Callback] | None) -> None:
    """One line for a strategy configured twice: their settings would share one checkpoint entry."""
    callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
    names = [callback.name for callback in callbacks if isinstance(callback, DisentanglementStrategy)]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserError(f"strategy {repeated[0]!r} is configured more than once; each strategy may be used once")


class LoggedConfig(SaveConfigCallback):
    """Writes config.yaml to the log dir as Lightning does, and also logs the full resolved config as
    hyperparameters to every logger (W&B's run config, the CSV logger's hparams.yaml): Lightning logs
    only the model's and data's hyperparameters (Lightning issue #19728)."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams(config)


def data_attribute(name: str) -> Callable[[AVDataModule], Any]:
    """A link's value: an attribute of the DataModule once it is ready."""
    return lambda datamodule: getattr(datamodule.ready(), name)


# `omegaconf+`: `${...}` is resolved once every config file and command-line value is merged, so
# `${model.emotion_dim}` follows a later file or `--model.emotion_dim` (`omegaconf` resolves each file
# alone, when it is read). Under a subcommand the merged config is rooted at `fit.`, so absolute paths
# written in a file are made relative to where they stand as the file is read.
PARSER_MODE = "omegaconf+"


@contextlib.contextmanager
def interpolation_errors() -> Iterator[None]:
    """Parse with config interpolation on; a `${key}` that names nothing is a one-line user error."""
    set_parsing_settings(omegaconf_absolute_to_relative_paths=True)
    try:
        yield
    except OmegaConfBaseException as error:
        raise UserError(f"config value {error.full_key}: {str(error).splitlines()[0]}") from None


def file_callbacks(path: str | Path) -> list[dict[str, Any]]:
    """The callbacks a config file appends (`trainer.callbacks+`) or sets (`trainer.callbacks`), as written."""
    trainer = (yaml.safe_load(Path(path).read_text()) or {}).get("trainer") or {}
    callbacks = trainer.get("callbacks+", trainer.get("callbacks")) or []
    return callbacks if isinstance(callbacks, list) else [callbacks]


def run_lightning(args: list[str]) -> AVLightningCLI:
    """Run one Lightning command (`fit ...`, `test ...`) from a list of arguments, in this process."""
    with warnings.catch_warnings():
        # The arguments are always given explicitly; LightningCLI would warn that this process's own
        # sys.argv (a report's, a test runner's) differs from them.
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
        return AVLightningCLI(
            MultitaskAVModule,
            AVDataModule,
            args=args,
            save_config_callback=LoggedConfig,
            save_config_kwargs={"overwrite": True},
            auto_configure_optimizers=False,
            parser_kwargs={"parser_mode": PARSER_MODE},  # the subcommands' parsers inherit it
        )


FIT_CONFIG_KEYS = (
    "model",
    "trainer",
    "checkpoint",
    "last_checkpoint",
    "prediction_writer",
    "leakage_probe",
    "wandb_records",
    "ckpt_path",
    "weights_only",
    "seed_everything",
    "float32_matmul_precision",
)


def data_from_args(args: list[str], prog: str = "avdisentangle prepare") -> AVDataModule:
    """The DataModule that `--data.*` arguments (and `--config` files) describe, not yet prepared."""
    parser = data_parser(prog, "Extract features of a corpus into the feature cache (once).")
    return parser.instantiate_classes(parser.parse_args(args)).data


class DataParser(ArgumentParser):
    """Reads fit configs as `fit` does: interpolation on, a missing `${key}` a one-line error."""

    def parse_args(self, *args: Any, **kwargs: Any) -> Namespace:
        with interpolation_errors():
            return super().parse_args(*args, **kwargs)


def fit_section(value: Any) -> Any:
    """A fit-only section, kept as a Namespace so that files merge into it key by key, as in `fit`:
    a `${model.emotion_dim}` in one file may name a key that only an earlier file sets."""
    return Namespace(value) if isinstance(value, dict) else value


def data_parser(prog: str, description: str, own: tuple[str, ...] = ()) -> ArgumentParser:
    """A parser for the `--data.*` arguments that also accepts a full `fit` config file
    (its other sections are ignored, except the keys in `own`, which the caller adds)."""
    parser = DataParser(prog=prog, description=description, parser_mode=PARSER_MODE)
    parser.add_argument("--config", action=ActionConfigFile, help="a fit config (YAML); only its data section is used")
    parser.add_class_arguments(AVDataModule, "data")
    for ignored in FIT_CONFIG_KEYS:
        if ignored not in own:
            parser.add_argument(f"--{ignored}", type=fit_section, default=None, help="ignored here (a fit setting)")
    return parser
