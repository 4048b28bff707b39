"""Training input: optimiser steps/s reading the feature cache through the DataModule, beside the
same model and loop fed batches already in memory (measured in the same run), plus the cache's
size per clip and the process's peak RSS.

    python benchmarks/training_input.py --epochs 3

Uses the default built-in corpus (generated and cached on first use, like `make data`).
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from avdisentangle.data.corpora.cremad import CLIP_COUNT as CREMAD_CLIPS
from avdisentangle.data.datamodule import AVDataModule
from avdisentangle.models.multitask import MultitaskAVModule


def train_steps(model: MultitaskAVModule, optimizer: torch.optim.Optimizer, batches) -> tuple[int, float]:
    """Forward, task losses, backward and step over `batches`; returns (steps, seconds)."""
    model.train()
    steps, started = 0, time.perf_counter()
    for batch in batches:
        outputs = model(batch)
        loss = sum(model.task_losses(outputs, batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps += 1
    return steps, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--loader-workers", type=int, default=0)
    args = parser.parse_args()

    datamodule = AVDataModule(batch_size=args.batch_size, num_workers=args.loader_workers, progress=False)
    datamodule.ready()
    torch.manual_seed(0)
    model = MultitaskAVModule.for_data(datamodule)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = datamodule.train_dataloader()
    in_memory = list(loader)
    train_steps(model, optimizer, in_memory[:2])  # warm-up: allocator and kernels

    cached = memory = (0, 0.0)
    for _ in range(args.epochs):  # interleaved, so both see the same machine load
        steps, seconds = train_steps(model, optimizer, loader)
        cached = (cached[0] + steps, cached[1] + seconds)
        steps, seconds = train_steps(model, optimizer, in_memory)
        memory = (memory[0] + steps, memory[1] + seconds)

    cache = datamodule.cache
    clip_bytes = (cache.audio.nbytes + cache.video.nbytes) / len(cache.clips)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"train split: {len(datamodule.splits['train'])} clips, batch {args.batch_size}, {args.epochs} epochs, "
        f"{torch.get_num_threads()} threads, loader_workers={args.loader_workers}"
    )
    print(f"through the DataModule : {cached[0] / cached[1]:7.2f} steps/s")
    print(f"batches in memory      : {memory[0] / memory[1]:7.2f} steps/s")
    print(f"ratio (loader/memory)  : {(cached[0] / cached[1]) / (memory[0] / memory[1]):.3f}")
    print(
        f"cache: {clip_bytes / 1024:.1f} KiB per clip -> {clip_bytes * CREMAD_CLIPS / 2**30:.2f} GiB for CREMA-D's "
        f"{CREMAD_CLIPS:,} clips "
        f"(features {datamodule.features.audio_shape} audio, {datamodule.features.video_shape} video)"
    )
    print(f"peak RSS: {peak_rss_mb:.0f} MiB")


if __name__ == "__main__":
    main()
