"""Encoders as injected factories, and the plain form in which a checkpoint records them.

The model receives each encoder as a factory that it calls with the sizes it owns:
`audio_encoder(out_dim)` and `video_encoder(in_channels, out_dim)`; an audio encoder whose class takes
`input_shape` also gets the per-clip shape of the cached audio features (eGeMAPS, SSL layers).
LightningCLI (jsonargparse) makes such a factory from `class_path` + `init_args` that leave those sizes
out. Checkpoints load with `weights_only`, which refuses classes and functions, so the model's
hyperparameters hold each factory in plain form (an import path, or class_path + init_args), and a model
built from that form (`load_from_checkpoint`) turns it back into a factory with the same parser the CLI uses.
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


def encoder_class(choice: Callable[..., nn.Module]) -> type | None:
    """The class a factory builds: the class itself, or the last positional of a partial of one: a user's
    `partial(cls, **init_args)` or jsonargparse's `partial(<instantiator>, ..., cls, **init_args)`."""
    if inspect.isclass(choice):
        return choice
    parts = (choice.func, *choice.args) if isinstance(choice, functools.partial) else ()
    return parts[-1] if parts and inspect.isclass(parts[-1]) else None


def encoder_spec(choice: EncoderChoice) -> str | dict[str, Any]:
    """The plain form of a class, or of a partial of a class with keyword arguments."""
    if isinstance(choice, (str, dict)):
        return choice
    cls = encoder_class(choice)
    if cls is choice:
        return import_path(cls)
    if cls is not None:
        return {"class_path": import_path(cls), "init_args": dict(choice.keywords)}
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
    modalities: Sequence[str],
    audio: EncoderChoice,
    video: EncoderChoice,
    video_channels: int,
    out_dim: int,
    audio_shape: Sequence[int] | None = None,
) -> nn.ModuleDict:
    """One encoder per modality, each producing `Encoded` with `out_dim` features; audio encoders that take
    `input_shape` are given `audio_shape` (the log-mel encoders pool any shape and are called as before)."""
    encoders = {}
    if "audio" in modalities:
        factory = encoder_factory(audio, AudioEncoderFactory, "audio_encoder")
        shape = {"input_shape": audio_shape} if takes_input_shape(factory) else {}
        encoders["audio"] = factory(out_dim, **shape)
    if "video" in modalities:
        encoders["video"] = encoder_factory(video, VideoEncoderFactory, "video_encoder")(video_channels, out_dim)
    return nn.ModuleDict(encoders)


def takes_input_shape(factory: Callable[..., nn.Module]) -> bool:
    cls = encoder_class(factory)
    return cls is not None and "input_shape" in inspect.signature(cls).parameters


def forget_weights_files(hparams: dict[str, Any]) -> None:
    """Clear `init_args.weights` of the encoders in a checkpoint's hyperparameters: the checkpoint holds
    the trained weights, so it must load where the files that initialised them are absent."""
    for name in ("audio_encoder", "video_encoder"):
        spec = hparams.get(name)
        if isinstance(spec, dict) and (spec.get("init_args") or {}).get("weights") is not None:
            hparams[name] = {**spec, "init_args": {**spec["init_args"], "weights": None}}

