"""`prepare` of an ssl cache beside the speech model's bare batched forward pass on the same windows.

    nice -n 10 python benchmarks/ssl_extraction.py --size base --speakers 4 --clips 24 --workers 2

A random Wav2Vec2 (base: 12 layers x 768, the size of wav2vec 2.0 / HuBERT / WavLM base; tiny: the
tests' 2 x 32) is saved to a temporary folder. The bare forward is the model alone on the clips'
2 s windows, decoded beforehand and held in memory, in batches of `--batch-size` with every hidden
state returned (what prepare asks of it); prepare is the whole command on the same clips: decoding
and windowing in `--workers` processes, the forward, the summaries, writing the cache. The ratio
is prepare's clips/s over the bare forward's; both run in this process, one after the other, on the
same device (cuda when there is one).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from avdisentangle.data.audio import load_audio  # noqa: E402
from avdisentangle.data.datamodule import AVDataModule  # noqa: E402
from avdisentangle.data.features import FeatureConfig, clip_audio  # noqa: E402
from avdisentangle.data.ssl_features import SpeechEmbedder, SSLConfig  # noqa: E402
from avdisentangle.data.synthetic import SyntheticConfig, generate_corpus  # noqa: E402

SIZES = {
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(32, 32), conv_stride=(5, 4), conv_kernel=(10, 8),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    ),
}  # fmt: skip


def save_random_model(folder: Path, size: str) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config(**SIZES[size])).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(folder)
    return folder


def bare_forward(embedder: SpeechEmbedder, windows: np.ndarray, batch_size: int) -> float:
    """Seconds for the model alone on every window, in batches, every hidden state returned."""
    import torch

    def sync():
        if embedder.device.type == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        embedder.model(torch.from_numpy(windows[:batch_size]).to(embedder.device), output_hidden_states=True)  # warm
        sync()
        started = time.perf_counter()
        for at in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[at : at + batch_size]).to(embedder.device)
            embedder.model(batch, output_hidden_states=True)
        sync()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--speakers", type=int, default=4)
    parser.add_argument("--clips", type=int, default=24, help="clips per speaker")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        synthetic = SyntheticConfig(num_speakers=options.speakers, clips_per_speaker=options.clips, fps=10)
        corpus = generate_corpus(scratch / "corpus", synthetic, progress=False, workers=options.workers)
        model = save_random_model(scratch / "model", options.size)
        settings = SSLConfig(path=str(model), batch_size=options.batch_size)
        features = FeatureConfig(modalities="audio", audio="ssl", ssl=settings)
        embedder = SpeechEmbedder(settings)
        windows = []
        for path in sorted((corpus / "AudioWAV").glob("*.wav")):
            waveform = load_audio(path, features.sample_rate)
            start = max(0.0, (len(waveform) / features.sample_rate - features.window_s) / 2)
            segment = clip_audio(waveform, start, features)
            windows.append(np.pad(segment, (0, features.window_samples - len(segment))))
        windows = np.stack(windows).astype(np.float32)
        bare, device = bare_forward(embedder, windows, options.batch_size), embedder.device.type
        del embedder
        datamodule = AVDataModule(
            root=str(corpus), synthetic=synthetic, features=features, cache_dir=str(scratch / "cache"),
            prepare_workers=options.workers, progress=False,
        )  # fmt: skip
        started = time.perf_counter()
        summary = datamodule.prepare_data()
        prepare = time.perf_counter() - started
    clips = len(windows)
    print(f"{options.size} Wav2Vec2, {clips} clips of {features.window_s} s, batch {options.batch_size}, on {device}")
    print(f"bare forward: {bare:.1f} s, {clips / bare:.1f} clips/s")
    print(f"prepare ({options.workers} workers, kept {summary.kept}): {prepare:.1f} s, {clips / prepare:.1f} clips/s")
    print(f"ratio prepare / bare (clips/s): {bare / prepare:.2f}")


if __name__ == "__main__":
    main()
