"""Training step time of the report's benchmark model with its conv weights channels-last (the package's
encoders) beside the same model with them contiguous (the layout before), on one CPU thread.

    python benchmarks/memory_format.py --rounds 5 --steps 20

Both models start from the same weights and train on the same in-memory batches of the benchmark's shape
(64 clips, 32 mel bins x 101 frames at 20 ms, four 32 px grey faces); rounds alternate the two layouts so a
busy machine slows both alike. Also prints the op that gains most (max-pool) from the PyTorch profiler.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from avdisentangle.models.multitask import MultitaskAVModule

BATCH, MELS, FRAMES, FACES, FACE_SIZE = 64, 32, 101, 4, 32
NUM_EMOTIONS, NUM_SPEAKERS = 6, 24


def benchmark_batch(generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "audio": torch.randn(BATCH, 1, MELS, FRAMES, generator=generator) * 20 - 40,
        "video": torch.randint(0, 256, (BATCH, FACES, 1, FACE_SIZE, FACE_SIZE), generator=generator, dtype=torch.uint8),
        "emotion": torch.randint(0, NUM_EMOTIONS, (BATCH,), generator=generator),
        "speaker": torch.randint(0, NUM_SPEAKERS, (BATCH,), generator=generator),
    }


def contiguous_copy(model: MultitaskAVModule) -> MultitaskAVModule:
    """The same weights in the default (contiguous) layout."""
    return copy.deepcopy(model).to(memory_format=torch.contiguous_format)


def train_steps(model: MultitaskAVModule, optimizer: torch.optim.Optimizer, batches) -> float:
    """Seconds per optimiser step over `batches` (forward, task losses, backward, step)."""
    started = time.perf_counter()
    for batch in batches:
        loss = sum(model.task_losses(model(batch), batch).values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / len(batches)


def pooling_share(model: MultitaskAVModule, optimizer: torch.optim.Optimizer, batches) -> float:
    """Share of the profiled CPU time spent in max-pooling (forward and backward)."""
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        train_steps(model, optimizer, batches)
    events = profiler.key_averages()
    total = sum(event.self_cpu_time_total for event in events)
    return sum(event.self_cpu_time_total for event in events if "max_pool" in event.key) / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batches = [benchmark_batch(generator) for _ in range(args.steps)]
    package = MultitaskAVModule(NUM_EMOTIONS, NUM_SPEAKERS, hidden_dim=128, emotion_dim=64, identity_dim=64)
    layouts = {"channels-last (package)": package, "contiguous (before)": contiguous_copy(package)}
    optimizers = {name: torch.optim.Adam(model.parameters(), lr=2e-3) for name, model in layouts.items()}
    for name, model in layouts.items():  # warm-up: allocator, oneDNN primitive caches
        train_steps(model, optimizers[name], batches[:3])
    times: dict[str, list[float]] = {name: [] for name in layouts}
    for _ in range(args.rounds):
        for name, model in layouts.items():
            times[name].append(train_steps(model, optimizers[name], batches))
    print(f"torch {torch.__version__}, 1 thread, {args.rounds} rounds x {args.steps} steps, batch {BATCH}")
    for name, model in layouts.items():
        share = pooling_share(model, optimizers[name], batches[:5])
        median = statistics.median(times[name])
        print(f"{name:24s} {1000 * median:6.1f} ms/step (min {1000 * min(times[name]):.1f}), max-pool {share:.0%}")
    before, after = (statistics.median(t) for t in (times["contiguous (before)"], times["channels-last (package)"]))
    print(f"channels-last step time: {after / before:.2f}x the contiguous one ({1 - after / before:.0%} less)")


if __name__ == "__main__":
    main()
