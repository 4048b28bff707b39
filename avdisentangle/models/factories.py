"""Encoders as injected factories, and the plain form in which a checkpoint records them.

The model receives each encoder as a factory that it calls with the sizes it owns:
`audio_encoder(out_dim)` and `video_encoder(in_channels, out_dim)`. LightningCLI (jsonargparse) makes
such a factory from `class_path` + `init_args` that leave those sizes out. Checkpoints load with
`weights_only`, which refuses classes and functions, so the model's hyperparameters hold each factory
in plain form (an import path, or class_path + init_args), and a model built from that form
(`load_from_checkpoint`) turns it back into a factory with the same parser the CLI uses.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, Union

from jsonargparse import ArgumentParser
from torch import nn

from avdisentangle.errors import UserError

AudioEncoderFactory = Callable[[int], nn.Module]
VideoEncoderFactory = Callable[[int, int], nn.Module]
# A factory, or its plain form.
EncoderChoice = Union[Callable[..., nn.Module], str, dict]


def import_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def encoder_spec(choice: EncoderChoice) -> str | dict[str, Any]:
    """The plain form of a class, or of a partial of a class with keyword arguments: a user's
    `partial(cls, **init_args)` or jsonargparse's `partial(<instantiator>, ..., cls, **init_args)`."""
    if isinstance(choice, (str, dict)):
        return choice
    if inspect.isclass(choice):
        return import_path(choice)
    parts = (choice.func, *choice.args) if isinstance(choice, functools.partial) else ()
    if parts and inspect.isclass(parts[-1]):
        return {"class_path": import_path(parts[-1]), "init_args": dict(choice.keywords)}
    raise UserError(
        f"an encoder must be a class, a functools.partial of one with keyword arguments only, or a "
        f"class_path/init_args dict, so that checkpoints can rebuild it; got {choice!r}"
    )


def encoder_factory(choice: EncoderChoice, typehint: Any, name: str) -> Callable[..., nn.Module]:
    """A callable choice as it is; a plain form parsed as the CLI parses `--model.<name>`."""
    if callable(choice):
        return choice
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument(f"--{name}", type=typehint)
    try:
        return getattr(parser.instantiate(parser.parse_object({name: choice})), name)
    except Exception as error:  # noqa: BLE001 - jsonargparse raises several kinds for a bad spec
        raise UserError(f"{name}: cannot build {choice!r}: {str(error).splitlines()[0]}") from error


def build_encoders(
    modalities: Sequence[str], audio: EncoderChoice, video: EncoderChoice, video_channels: int, out_dim: int
) -> nn.ModuleDict:
    """One encoder per modality, each producing `Encoded` with `out_dim` features."""
    encoders = {}
    if "audio" in modalities:
        encoders["audio"] = encoder_factory(audio, AudioEncoderFactory, "audio_encoder")(out_dim)
    if "video" in modalities:
        encoders["video"] = encoder_factory(video, VideoEncoderFactory, "video_encoder")(video_channels, out_dim)
    return nn.ModuleDict(encoders)


def forget_weights_files(hparams: dict[str, Any]) -> None:
    """Clear `init_args.weights` of the encoders in a checkpoint's hyperparameters: the checkpoint holds
    the trained weights, so it must load where the files that initialised them are absent."""
    for name in ("audio_encoder", "video_encoder"):
        spec = hparams.get(name)
        if isinstance(spec, dict) and (spec.get("init_args") or {}).get("weights") is not None:
            hparams[name] = {**spec, "init_args": {**spec["init_args"], "weights": None}}

