"""The benchmarks' own machinery: the GPU benchmark's CREMA-D-sized cache is a faithful tiling of
a real cache that the DataModule trains on (its timing loop is smoke-run on CPU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from avdisentangle.data.datamodule import AVDataModule
from tests.conftest import TINY_FEATURES, TINY_SYNTHETIC

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiled_cache_repeats_rows_as_new_speakers_and_trains(tiny_corpus, tmp_path, single_thread):
    gpu = load_benchmark("gpu_throughput")
    source = AVDataModule(
        root=str(tiny_corpus),
        synthetic=TINY_SYNTHETIC,
        features=TINY_FEATURES,
        cache_dir=str(tmp_path / "cache"),
        prepare_workers=0,
        progress=False,
    )
    source.ready()
    clips = len(source.cache.clips)
    tiled = gpu.tile_cache(source.cache.path, tmp_path / "tiled", clips=2 * clips, copies_per_speaker=2)

    datamodule = AVDataModule.from_cache(tiled, batch_size=8)
    datamodule.ready()
    assert len(datamodule.cache.clips) == 2 * clips
    assert datamodule.features == TINY_FEATURES  # read from the cache
    assert datamodule.num_speakers == 2 * source.num_speakers
    assert np.array_equal(datamodule.cache.video[clips:], source.cache.video)
    assert np.array_equal(datamodule.cache.audio[:clips], source.cache.audio)

    seconds, utilisation = gpu.time_epochs(gpu.build_model(datamodule, {}), datamodule, "cpu", "32-true", epochs=1)
    assert seconds > 0 and np.isnan(utilisation)  # no GPU to sample

    options = gpu.model_options(REPO / "experiments/configs/model/resnet.yaml")  # the wider model, timed alike
    for encoder in ("audio_encoder", "video_encoder"):
        options[encoder]["init_args"]["base_width"] = 4
    wide = gpu.build_model(datamodule, {**options, "hidden_dim": 16})
    assert [type(e).__name__ for e in wide.encoders.values()] == ["ResNetAudioEncoder", "ResNetVideoEncoder"]
    seconds, _ = gpu.time_epochs(wide, datamodule, "cpu", "bf16-mixed", epochs=1)
    assert seconds > 0
