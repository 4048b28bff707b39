"""GPU training throughput: one epoch of a CREMA-D-sized cache through the DataModule and a
Lightning Trainer, at 32-bit, `bf16-mixed` and `16-mixed` precision, with the GPU's utilisation.

    python benchmarks/gpu_throughput.py                      # needs a CUDA GPU; says so and exits 0 without
    python benchmarks/gpu_throughput.py --source-cache DIR   # tile an existing cache instead of preparing one
    python benchmarks/gpu_throughput.py --accelerator cpu --clips 200 --precisions 32-true   # smoke run
    python benchmarks/gpu_throughput.py --model-config experiments/configs/model/resnet.yaml  # the ResNet-18 encoders

The CREMA-D-sized cache tiles the rows of a small real cache (the default built-in corpus unless
`--source-cache` names one) until the train split holds about 7,442 clips, CREMA-D's size; the
epoch time printed is scaled to exactly 7,442. Each precision runs a warm-up epoch (cuDNN autotuning,
allocator growth), then `--epochs` timed ones (the median is printed); the first precision listed
(32-bit by default) is the baseline that the others' speed ratios divide by. `--model-config` takes
the `model:` section of a config file (the encoders, widths) so the wider model is timed the same way.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import platform
import shutil
import tempfile
import threading
import time
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import torch
import yaml

from avdisentangle.data.cache import FeatureCache
from avdisentangle.data.corpora.cremad import CLIP_COUNT as CREMAD_CLIPS
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.models.multitask import MultitaskAVModule

PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")


def tile_cache(source: Path, target: Path, clips: int, copies_per_speaker: int) -> Path:
    """Write a cache of `clips` rows repeating `source`'s rows; each repeat of a speaker becomes a
    new speaker (up to `copies_per_speaker`), so the identity head has CREMA-D's order of classes."""
    cache = FeatureCache.open(source)
    rows = np.arange(clips) % len(cache.clips)
    repeat = np.arange(clips) // len(cache.clips)
    target.mkdir(parents=True)
    for name, array in (("audio", cache.audio), ("video", cache.video)):
        tiled = np.lib.format.open_memmap(
            target / f"{name}.npy", mode="w+", dtype=array.dtype, shape=(clips, *array.shape[1:])
        )
        for start in range(0, clips, 1024):
            tiled[start : start + 1024] = array[rows[start : start + 1024]]
        tiled.flush()
    with (target / "clips.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(cache.clips[0]))
        writer.writeheader()
        speakers = set()
        for row, copy in zip(rows, repeat):
            clip = dict(cache.clips[row])
            clip["clip_id"] = f"{clip['clip_id']}-{copy}"
            clip["speaker"] = f"{clip['speaker']}-{copy % copies_per_speaker}"
            speakers.add(clip["speaker"])
            writer.writerow(clip)
    shutil.copy(source / "refused.csv", target / "refused.csv")
    meta = {**cache.meta, "kept": clips, "speakers": sorted(speakers), "tiled_from": str(source)}
    (target / "meta.json").write_text(json.dumps(meta))
    return target


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class EpochClock(L.Callback):
    """Wall time of each training epoch after the first (GPU synchronised), and the GPU's
    utilisation sampled every 50 ms during those epochs."""

    def __init__(self):
        self.seconds: list[float] = []
        self.utilisation: list[int] = []
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None

    def _sample(self, device: torch.device) -> None:
        while not self._stop.wait(0.05):
            self.utilisation.append(torch.cuda.utilization(device))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronize()
        if trainer.current_epoch == 1 and pl_module.device.type == "cuda":
            self._sampler = threading.Thread(target=self._sample, args=(pl_module.device,), daemon=True)
            self._sampler.start()
        self._started = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        synchronize()
        if trainer.current_epoch > 0:
            self.seconds.append(time.perf_counter() - self._started)

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join()


def model_options(config: Path | None) -> dict:
    """The `model:` section of a config file (nothing: the default model)."""
    return {} if config is None else yaml.safe_load(config.read_text()).get("model") or {}


def build_model(datamodule: AVDataModule, options: dict) -> MultitaskAVModule:
    """The model every precision starts from: sized from the data, same seed, same options."""
    torch.manual_seed(0)
    return MultitaskAVModule.for_data(datamodule, **options)


def time_epochs(
    model: MultitaskAVModule, datamodule: AVDataModule, accelerator: str, precision: str, epochs: int
) -> tuple[float, float]:
    """(median seconds of `epochs` timed epochs, mean GPU utilisation % during them) after a warm-up epoch."""
    clock = EpochClock()
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_epochs=1 + epochs,
        limit_val_batches=0, num_sanity_val_steps=0, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock],
    )
    trainer.fit(model, datamodule=datamodule)
    return float(np.median(clock.seconds)), float(np.mean(clock.utilisation)) if clock.utilisation else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source-cache", type=Path, default=None,
                        help="a finished cache to tile (default: the built-in corpus')")
    parser.add_argument("--clips", type=int, default=CREMAD_CLIPS,
                        help=f"training clips per epoch (CREMA-D: {CREMAD_CLIPS:,})")
    parser.add_argument("--accelerator", default="gpu", choices=["gpu", "cpu"], help="cpu only for a smoke run")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--loader-workers", type=int, default=0)
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per precision (the median is printed)")
    parser.add_argument("--model-config", type=Path, default=None,
                        help="a config whose model: section to time, e.g. experiments/configs/model/resnet.yaml")
    args = parser.parse_args()
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print("GPU benchmark skipped: no CUDA GPU here (see benchmarks/RESULTS.md for figures from an H100)")
        return

    source = args.source_cache
    if source is None:
        default = AVDataModule(progress=False)
        default.prepare_data()
        source = default.cache_location()
    val_fraction = test_fraction = 0.15
    clips = math.ceil(args.clips / (1 - val_fraction - test_fraction))
    workdir = Path(tempfile.mkdtemp())
    try:
        tiled = tile_cache(source, workdir / "tiled", clips, copies_per_speaker=9)
        device = torch.cuda.get_device_name() if args.accelerator == "gpu" else platform.processor() or "CPU"
        print(f"{device} | torch {torch.__version__} | lightning {L.__version__} | CUDA {torch.version.cuda} | "
              f"cuDNN {torch.backends.cudnn.version()} | Python {platform.python_version()}")
        print(f"cache: {clips} clips tiled from {source}; loader_workers={args.loader_workers}")
        options = model_options(args.model_config)
        size = sum(p.numel() for p in build_model(AVDataModule.from_cache(tiled), options).parameters())
        print(f"model: {args.model_config or 'default'}, {size / 1e6:.2f} M parameters")
        print(f"{'batch':>5} {'precision':<12} {'clips/s':>9} {'epoch s':>8} {'vs 32':>6} {'GPU util %':>10}")
        for batch_size in args.batch_sizes:
            datamodule = AVDataModule.from_cache(tiled, batch_size=batch_size, num_workers=args.loader_workers,
                                                 val_fraction=val_fraction, test_fraction=test_fraction)
            datamodule.ready()
            train_clips = len(datamodule.splits["train"])
            baseline = None
            for precision in args.precisions:
                model = build_model(datamodule, options)
                seconds, utilisation = time_epochs(model, datamodule, args.accelerator, precision, args.epochs)
                baseline = baseline or seconds
                epoch_seconds = seconds * args.clips / train_clips
                print(f"{batch_size:>5} {precision:<12} {train_clips / seconds:>9.0f} {epoch_seconds:>8.2f} "
                      f"{baseline / seconds:>6.2f} {utilisation:>10.0f}", flush=True)
        print(f"epoch s = one epoch of {args.clips} training clips (CREMA-D: {CREMAD_CLIPS}), "
              f"median of {args.epochs}, validation excluded; goal < 10 s")
    finally:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
