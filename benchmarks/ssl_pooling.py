"""Which ssl summary to cache by default: pooled statistics (K=2) or K segments, on the built-in corpus.

    nice -n 10 python benchmarks/ssl_pooling.py --seeds 0 1 2 --segments 4

For each seed, a random Wav2Vec2 (4 layers, 64 wide) is saved to a temporary folder and the built-in
corpus of base.yaml (10 speakers x 36 clips, audio only) is prepared with `features.audio=ssl` in
both forms, then read by a linear probe (standardised logistic regression on every layer's rows,
flattened): emotion UAR over 5 speaker-grouped folds (speakers unseen), and speaker accuracy over 5
stratified folds (closed set). eGeMAPS is probed the same way as a reference. The weights are
random, so this checks the plumbing and what each form keeps of the signal, not the quality of a
pretrained model; the cache size per clip is exact.
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

from avdisentangle.data.datamodule import AVDataModule  # noqa: E402
from avdisentangle.data.features import FeatureConfig  # noqa: E402
from avdisentangle.data.ssl_features import SSLConfig  # noqa: E402
from avdisentangle.data.synthetic import SyntheticConfig  # noqa: E402

BUILT_IN = SyntheticConfig(num_speakers=10, clips_per_speaker=36, speaker_emotion_correlation=0.6, seed=0, fps=10)


def random_speech_model(folder: Path, seed: int) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(seed)
    config = Wav2Vec2Config(
        hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=128,
        conv_dim=(64, 64, 64), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
    )  # fmt: skip
    Wav2Vec2Model(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(folder)
    return folder


def cached(features: FeatureConfig, cache_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(features (N, F), emotions, speakers, seconds to prepare) of the built-in corpus."""
    started = time.perf_counter()
    datamodule = AVDataModule(synthetic=BUILT_IN, features=features, cache_dir=str(cache_dir), progress=False)
    datamodule.ready()
    cache = datamodule.cache
    audio = np.asarray(cache.audio, dtype=np.float32)
    seconds = time.perf_counter() - started
    return audio.reshape(len(audio), -1), cache.column("emotion"), cache.column("speaker"), seconds


def probe(features: np.ndarray, emotions: np.ndarray, speakers: np.ndarray) -> tuple[list[float], list[float]]:
    """Emotion UAR per speaker-grouped fold, speaker accuracy per stratified fold."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def scores(labels, splits):
        out = []
        for train, test in splits:
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000, C=0.1))
            model.fit(features[train], labels[train])
            out.append(balanced_accuracy_score(labels[test], model.predict(features[test])))
        return out

    emotion = scores(emotions, GroupKFold(5).split(features, emotions, speakers))
    speaker = scores(speakers, StratifiedKFold(5, shuffle=True, random_state=0).split(features, speakers))
    return emotion, speaker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--segments", type=int, default=4)
    options = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        forms = {"egemaps (88 functionals)": [FeatureConfig(modalities="audio", audio="egemaps")]}
        for seed in options.seeds:
            model = str(random_speech_model(scratch / f"model{seed}", seed))
            segments = SSLConfig(path=model, pooling="segments", segments=options.segments)
            for name, settings in (
                ("ssl stats (K=2)", SSLConfig(path=model, pooling="stats")),
                (f"ssl segments (K={options.segments})", segments),
            ):
                forms.setdefault(name, []).append(FeatureConfig(modalities="audio", audio="ssl", ssl=settings))
        for name, configs in forms.items():
            for features in configs:
                x, emotions, speakers, seconds = cached(features, scratch / "cache")
                emotion, speaker = probe(x, emotions, speakers)
                entry = results.setdefault(name, {"emotion": [], "speaker": [], "seconds": []})
                entry["emotion"] += emotion
                entry["speaker"] += speaker
                entry["seconds"].append(seconds)
                sizes[name] = x.shape[1] * (4 if features.audio == "egemaps" else 2)
    print(f"built-in corpus, {len(options.seeds)} random models (seeds {options.seeds}), 5 folds each")
    print("| features | bytes per clip | emotion UAR, unseen speakers | speaker accuracy, closed set | prepare s |")
    print("| --- | --- | --- | --- | --- |")
    for name, entry in results.items():
        emotion, speaker = np.array(entry["emotion"]), np.array(entry["speaker"])
        print(
            f"| {name} | {sizes[name]} | {emotion.mean():.3f} +- {emotion.std():.3f} | "
            f"{speaker.mean():.3f} +- {speaker.std():.3f} | {np.mean(entry['seconds']):.1f} |"
        )


if __name__ == "__main__":
    main()
