"""Frozen self-supervised speech features (wav2vec 2.0, HuBERT, WavLM) from a local `transformers` folder.

SUPERB-style models read a learnt weighted sum of every layer, so the cache keeps every hidden state
the model returns (the CNN/projection output and each transformer layer: L = 13 for a base model),
each summarised over time into K rows: pooled statistics (K=2: mean, std over the clip's frames) or
K equal segments of the clip's frames (each their mean), float16.

Workers decode and window the audio as for the log-mel; the parent embeds each finished chunk in
batches (`SpeechEmbedder`, on the GPU when there is one), so `prepare` resumes, counts and refuses as
before. Every clip is the same zero-padded window, so batches need no per-clip shapes; the frames
the padding produced are left out of the statistics (with a layer-normed feature encoder and an
attention mask the padding cannot reach the clip's frames; a base model's group norm spans the whole
window, so there it shifts them slightly, as in transformers' own batches). The model is read only from its folder
(`local_files_only`, the hub forced offline): a cache must never depend on a download.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from avdisentangle.errors import UserError

POOLINGS = ("stats", "segments")
DEVICES = ("auto", "cpu", "cuda")
WEIGHT_FILES = (
    "model.safetensors",
    "pytorch_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)


@dataclass(frozen=True)
class SSLConfig:
    """The speech model and how its frames are summarised (`--data.features.ssl.*`).

    Args:
        path: the local model folder (config.json and weights, as `save_pretrained` writes them).
        pooling: stats (K=2: mean and std of every layer over the clip's frames) or segments
            (K=`segments` equal slices of the frames, each their mean: a coarse time axis).
        segments: K for pooling=segments.
        batch_size: clips per forward pass in `prepare` (memory, not the result).
        device: auto (cuda when there is one), cpu or cuda (speed, not the result).
    """

    path: str | None = None
    pooling: str = "stats"
    segments: int = 4
    batch_size: int = 16
    device: str = "auto"

    def __post_init__(self):
        if self.pooling not in POOLINGS:
            raise UserError(f"ssl.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.device not in DEVICES:
            raise UserError(f"ssl.device must be one of {DEVICES}, got {self.device!r}")
        if self.segments < 1 or self.batch_size < 1:
            raise UserError(f"ssl.segments and ssl.batch_size must be positive, got {self.segments}, {self.batch_size}")

    @property
    def rows(self) -> int:
        """K: the time axis of the cached array."""
        return 2 if self.pooling == "stats" else self.segments

    def folder(self) -> Path:
        """The model folder, checked for what `from_pretrained` needs; UserError naming what is missing."""
        if self.path is None:
            raise UserError("features.audio=ssl needs the model folder: --data.features.ssl.path=DIR")
        folder = Path(self.path).expanduser()
        if not folder.is_dir():
            raise UserError(f"ssl model folder {folder} does not exist")
        if not (folder / "config.json").is_file():
            raise UserError(f"ssl model folder {folder} has no config.json (save it with `save_pretrained`)")
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            raise UserError(f"ssl model folder {folder} has no weights ({' or '.join(WEIGHT_FILES[:2])})")
        return folder

    def model_config(self) -> dict:
        return json.loads((self.folder() / "config.json").read_text())

    def shape(self) -> tuple[int, int, int]:
        """(L, K, D) of one clip: every hidden state, K rows, the hidden size (from config.json)."""
        config = self.model_config()
        try:
            return config["num_hidden_layers"] + 1, self.rows, config["hidden_size"]
        except KeyError as missing:
            raise UserError(f"ssl model folder {self.path}: config.json has no {missing}: not a speech model") from None

    def signature(self) -> dict:
        """What names the cache: the summary settings and the model's content (config files hashed, weight
        files by size and modification time), never the path, batch size or device, which change no value."""
        folder = self.folder()
        digest = hashlib.sha1()
        for name in ("config.json", "preprocessor_config.json"):
            if (folder / name).is_file():
                digest.update(name.encode() + (folder / name).read_bytes())
        for name in WEIGHT_FILES:
            if (folder / name).is_file():
                status = (folder / name).stat()
                digest.update(f"{name}|{status.st_size}|{status.st_mtime_ns}".encode())
        return {"model": digest.hexdigest()[:12], "pooling": self.pooling, "rows": self.rows}


class SpeechEmbedder:
    """A frozen speech model in eval mode, and the per-clip summary of its hidden states."""

    def __init__(self, settings: SSLConfig):
        import torch

        folder = settings.folder()
        model, normalise, attention_mask = load_speech_model(folder)
        use_cuda = settings.device == "cuda" or (settings.device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if use_cuda else "cpu")
        self.model = model.to(self.device).eval().requires_grad_(False)
        self.normalise, self.attention_mask = normalise, attention_mask
        self.settings = settings

    def __call__(self, windows: np.ndarray, samples: np.ndarray) -> np.ndarray:
        """(N, L, K, D) float16 from zero-padded windows (N, S) whose first `samples` (N,) are the clip."""
        size = self.settings.batch_size
        parts = [self.embed(windows[at : at + size], samples[at : at + size]) for at in range(0, len(windows), size)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.settings.shape()), np.float16)

    def embed(self, windows: np.ndarray, samples: np.ndarray) -> np.ndarray:
        import torch

        waveform = torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32)).to(self.device)
        lengths = torch.from_numpy(np.asarray(samples, dtype=np.int64)).to(self.device)
        inside = torch.arange(waveform.shape[1], device=self.device)[None] < lengths[:, None]
        if self.normalise:  # zero mean, unit variance over the clip's own samples (as the feature extractor does)
            count = lengths[:, None].clamp(min=1)
            mean = (waveform * inside).sum(1, keepdim=True) / count
            var = (((waveform - mean) * inside) ** 2).sum(1, keepdim=True) / count
            waveform = torch.where(inside, (waveform - mean) / torch.sqrt(var + 1e-7), 0.0)
        options = {"attention_mask": inside.long()} if self.attention_mask else {}
        with torch.inference_mode():
            hidden = self.model(waveform, output_hidden_states=True, **options).hidden_states
            layers = torch.stack(hidden, dim=1).float()  # (B, L, T, D)
            frames = valid_frames(self.model, lengths, layers.shape[2], waveform.shape[1])
            summary = summarise(layers, frames, self.settings)
        return summary.cpu().numpy().astype(np.float16)


def valid_frames(model, samples, total_frames: int, window_samples: int):
    """How many output frames each clip's real samples give: the model's own conv arithmetic (frames whose
    receptive field lies inside the clip) when it has it, else proportionally; at least one."""
    import torch

    if hasattr(model, "_get_feat_extract_output_lengths"):
        frames = model._get_feat_extract_output_lengths(samples)
    else:
        frames = samples * total_frames // window_samples
    return torch.as_tensor(frames).long().clamp(1, total_frames)


def summarise(layers, frames, settings: SSLConfig):
    """(B, L, K, D) from hidden states (B, L, T, D) of which the first `frames` (B,) are the clip's."""
    import torch

    steps = torch.arange(layers.shape[2], device=layers.device)[None]  # (1, T)
    inside = (steps < frames[:, None]).float()  # (B, T)
    if settings.pooling == "stats":
        count = inside.sum(1)[:, None, None]
        mean = torch.einsum("bt,bltd->bld", inside, layers) / count
        var = torch.einsum("bt,bltd->bld", inside, (layers - mean[:, :, None]) ** 2) / count
        return torch.stack([mean, var.clamp(min=0).sqrt()], dim=2)
    # segment k holds frames t with floor(t * K / n) == k: K equal slices of the clip's n frames
    segment = torch.div(steps * settings.segments, frames[:, None].clamp(min=1), rounding_mode="floor")
    weights = torch.nn.functional.one_hot(segment.clamp(max=settings.segments - 1), settings.segments).float()
    weights = weights * inside[:, :, None]  # (B, T, K)
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1)  # a clip shorter than K frames: empty slices are 0
    return torch.einsum("btk,bltd->blkd", weights, layers)


def load_speech_model(folder: Path):
    """The model, whether its input is normalised per clip, and whether it takes an attention mask: from the
    folder's preprocessor_config.json, or, without one, the transformers convention (models with a
    layer-normed feature encoder were trained on normalised input, with masks)."""
    os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers (and huggingface_hub) read it
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    try:
        model = transformers.AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"ssl model folder {folder} does not load as a speech model: {first_line(error)}") from None
    if getattr(model, "main_input_name", None) != "input_values":
        raise UserError(
            f"ssl model folder {folder} holds a {type(model).__name__}, not a speech model that reads waveforms "
            "(wav2vec 2.0, HuBERT, WavLM)"
        )
    layer_norm = getattr(model.config, "feat_extract_norm", "group") == "layer"
    normalise, attention_mask = layer_norm, layer_norm
    if (folder / "preprocessor_config.json").is_file():
        extractor = transformers.AutoFeatureExtractor.from_pretrained(folder, local_files_only=True)
        normalise = bool(getattr(extractor, "do_normalize", normalise))
        attention_mask = bool(getattr(extractor, "return_attention_mask", attention_mask))
    return model, normalise, attention_mask


def first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def speech_embedder(settings: SSLConfig) -> SpeechEmbedder:
    """One loaded model per settings, model content and process (predict and repeated prepares reuse it)."""
    return cached_embedder(settings, settings.signature()["model"])


@lru_cache(maxsize=2)
def cached_embedder(settings: SSLConfig, model_signature: str) -> SpeechEmbedder:
    return SpeechEmbedder(settings)
