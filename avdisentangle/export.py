"""`export`: a checkpoint's network as a standalone inference model, ONNX or TorchScript.

The exported model takes features in the batch contract of `data/dataset.py`, one input per modality
the model was trained on, with a free batch axis: `audio` float32 as the features were cached (log-mel
(B, 1, n_mels, n_frames) in dB, eGeMAPS (B, 88), ssl summaries (B, L, K, D)), and `video`, face crops
(B, T, C, H, W) uint8. It returns what `predict` writes: `emotion_probs`, `z_emotion`, `z_identity`.
Decoding, face detection and the speech model stay in Python (`prepare`, `predict`); only the network
is exported, and checked against the checkpoint before this returns.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from lightning.pytorch.core.module import _jit_is_scripting
from torch import Tensor, nn

import avdisentangle.data.datamodule  # noqa: F401  (lets torch.load's safe unpickler read the data settings)
from avdisentangle.checkpoints import read_checkpoint
from avdisentangle.data.dataset import audio_input_shape
from avdisentangle.data.features import FeatureConfig
from avdisentangle.errors import ExpectedFailure, UserError
from avdisentangle.models.from_checkpoint import module_from_checkpoint
from avdisentangle.models.multitask import MultitaskAVModule

FORMATS = {"onnx": ".onnx", "torchscript": ".ts.pt"}
OUTPUT_NAMES = ("emotion_probs", "z_emotion", "z_identity")
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")
INSTALL_EXTRA = "pip install -e '.[export]'"
TRACE_BATCH, CHECK_BATCH = 2, 3  # checked at another batch size than traced: the batch axis must stay free
TOLERANCE = 1e-4
SHAPE_OPTIONS = {"audio": ("--audio_shape", "N_MELS,N_FRAMES"), "video": ("--video_shape", "FRAMES,CHANNELS,H,W")}
SHAPE_SIZES = {"audio_shape": None, "video_shape": 4}  # audio: as cached (2 sizes for a log-mel, 1 or 3 otherwise)

Runner = Callable[..., Sequence[Tensor]]


class InferenceModel(nn.Module):
    """The module's own forward with tensors in (one per modality, in `modalities` order) and a tuple out,
    as tracing and ONNX need: the LightningModule's forward takes and returns dicts."""

    def __init__(self, module: MultitaskAVModule) -> None:
        super().__init__()
        self.module = module
        self.modalities = module.modalities

    def forward(self, *features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        outputs = self.module(dict(zip(self.modalities, features)))
        probs = outputs["emotion_logits"].float().softmax(dim=1)
        return probs, outputs["z_emotion"].float(), outputs["z_identity"].float()


def parse_shape(text: str, option: str, size: int | None) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or (size is not None and len(shape) != size) or min(shape) < 1:
        count = "" if size is None else f"{size} "
        raise UserError(f"{option} takes {count}positive integers separated by commas, got {text!r}")
    return shape


def feature_shapes(checkpoint: dict, modalities: Sequence[str], options: argparse.Namespace) -> dict[str, tuple]:
    """Per-clip input shapes: the shape options, else what the checkpoint records: the cached audio shape the
    model was built for (`audio_shape`), the features of the data it was fitted on."""
    features = checkpoint.get("datamodule_hyper_parameters", {}).get("features")
    if isinstance(features, dict):  # as the command line saves them
        features = FeatureConfig(**features)
    shapes = {"video": features.video_shape} if features else {}
    audio_shape = options.audio_shape or checkpoint.get("hyper_parameters", {}).get("audio_shape")
    if audio_shape is None and features is not None and features.audio == "logmel":
        audio_shape = features.audio_shape  # a checkpoint from before the model recorded it
    if audio_shape:
        shapes["audio"] = audio_input_shape(audio_shape)
    if options.video_shape:
        shapes["video"] = options.video_shape
    for modality in modalities:
        if modality not in shapes:
            option, value = SHAPE_OPTIONS[modality]
            raise UserError(f"the checkpoint does not record its {modality} feature shape: pass {option}={value}")
    return {modality: shapes[modality] for modality in modalities}


def random_features(shapes: dict[str, tuple], batch: int, seed: int) -> tuple[Tensor, ...]:
    """A batch in the contract's types and ranges: log-mel dB around -40, pixels 0-255."""
    generator = torch.Generator().manual_seed(seed)
    make = {
        "audio": lambda shape: torch.randn(batch, *shape, generator=generator) * 20 - 40,
        "video": lambda shape: torch.randint(0, 256, (batch, *shape), generator=generator, dtype=torch.uint8),
    }
    return tuple(make[modality](shape) for modality, shape in shapes.items())


@contextmanager
def quiet_logger(name: str):
    """Raise a library logger to errors for a while (the ONNX exporter logs every torchvision op it skips)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def export_torchscript(model: InferenceModel, example: tuple[Tensor, ...], path: Path) -> Runner:
    """Trace, save and load back. torch.jit is deprecated in favour of torch.export, but TorchScript is
    still what libtorch (C++) loads; its deprecation and tracer warnings are silenced: the tracer freezes
    the encoders' shape checks as constants, which is right, and the batch axis is checked after."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        with _jit_is_scripting():  # as Lightning's to_torchscript: tracing reads `trainer`, which needs one
            traced = torch.jit.trace(model, example, check_trace=False)
    traced.save(str(path))
    return torch.jit.load(str(path))


def export_onnx(model: InferenceModel, example: tuple[Tensor, ...], path: Path) -> Runner:
    """The torch.export-based exporter (the default since torch 2.9; the TorchScript-based one is
    deprecated), one self-contained file, one batch axis shared by every input; run back by onnxruntime."""
    import onnxruntime

    batch = torch.export.Dim("batch")
    with warnings.catch_warnings(), quiet_logger("torch.onnx"):
        warnings.filterwarnings("ignore", message=".*(LeafSpec|axis name)")  # pytree deprecation, the shared Dim
        torch.onnx.export(
            model,
            example,
            str(path),
            input_names=list(model.modalities),
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"features": tuple({0: batch} for _ in example)},
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(*features: Tensor) -> list[Tensor]:
        outputs = session.run(None, {name: value.numpy() for name, value in zip(model.modalities, features)})
        return [torch.from_numpy(output) for output in outputs]

    return run


EXPORTERS = {"onnx": export_onnx, "torchscript": export_torchscript}


def difference_from_checkpoint(module: MultitaskAVModule, run: Runner, shapes: dict[str, tuple]) -> float:
    """Largest absolute difference between the exported model and the module's `predict_step` on a random batch."""
    features = random_features(shapes, CHECK_BATCH, seed=1)
    with torch.no_grad():
        batch = {**dict(zip(shapes, features)), "index": torch.arange(CHECK_BATCH)}
        expected = module.predict_step(batch, 0)
        exported = run(*features)
    return max(float((got - expected[name]).abs().max()) for name, got in zip(OUTPUT_NAMES, exported))


def require_onnx() -> None:
    missing = []
    for name in ONNX_PACKAGES:
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise UserError(f"ONNX export needs {', '.join(missing)}: install the export extra, {INSTALL_EXTRA}")


def parse_args(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="avdisentangle export",
        description="Export a checkpoint's network for inference (features in; emotion_probs, z_emotion, "
        "z_identity out) and check it against the checkpoint on a random batch.",
    )
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by fit")
    parser.add_argument("--format", required=True, help=f"{' or '.join(FORMATS)}")
    parser.add_argument("--output", default=None, help="the file to write (default: beside the checkpoint)")
    for modality, (option, value) in SHAPE_OPTIONS.items():
        parser.add_argument(option, default=None, metavar=value, help=f"per-clip {modality} shape, if not recorded")
    options = parser.parse_args(args)
    if options.format not in FORMATS:
        raise UserError(f"--format must be one of {', '.join(FORMATS)}, got {options.format!r}")
    for name, size in SHAPE_SIZES.items():
        if getattr(options, name):
            setattr(options, name, parse_shape(getattr(options, name), f"--{name}", size))
    return options


def export(args: list[str]) -> int:
    """Export, load back and compare; shapes are tried on the model first, so a wrong one is a line, not a trace."""
    options = parse_args(args)
    if options.format == "onnx":
        require_onnx()
    ckpt_path = Path(options.ckpt_path)
    checkpoint = read_checkpoint(ckpt_path)
    module = module_from_checkpoint(checkpoint, ckpt_path).eval().requires_grad_(False)
    shapes = feature_shapes(checkpoint, module.modalities, options)
    model = InferenceModel(module).eval()
    example = random_features(shapes, TRACE_BATCH, seed=0)
    try:
        with torch.no_grad():
            model(*example)
    except (RuntimeError, ValueError) as error:
        raise UserError(f"the model does not take features of shapes {shapes}: {error}") from error
    path = Path(options.output) if options.output else ckpt_path.parent / f"{ckpt_path.stem}{FORMATS[options.format]}"
    path.parent.mkdir(parents=True, exist_ok=True)
    run = EXPORTERS[options.format](model, example, path)
    inputs = ", ".join(
        f"{name} {str(value.dtype).removeprefix('torch.')} (batch, {', '.join(map(str, value.shape[1:]))})"
        for name, value in zip(shapes, example)
    )
    print(f"wrote {path}: {options.format}, inputs {inputs}; outputs {', '.join(OUTPUT_NAMES)}")
    difference = difference_from_checkpoint(module, run, shapes)
    print(f"max abs difference from the checkpoint's predict_step on a random batch of {CHECK_BATCH}: {difference:.1e}")
    if difference > TOLERANCE:
        raise ExpectedFailure(f"the exported model differs from the checkpoint by {difference:.2e} (over {TOLERANCE})")
    return 0
