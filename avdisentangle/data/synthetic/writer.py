"""Writing the corpus: each clip's WAV and FLV in the CREMA-D layout, then the manifest that marks it done.

Every file is written under a temporary name and moved into place, and the manifest ``synthetic.json``
comes last, so its presence means every clip is there; clips are written in chunks, by worker
processes when asked, and the files do not depend on how many.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np
import soundfile as sf
from tqdm import tqdm

from avdisentangle.data.corpora.cremad import EMOTION_CODES
from avdisentangle.data.synthetic.config import GENERATOR_VERSION, SyntheticConfig
from avdisentangle.data.synthetic.face import render_video
from avdisentangle.data.synthetic.factors import LEVEL_INTENSITY, Speaker, express, make_speaker
from avdisentangle.data.synthetic.plan import ClipPlan, plan_clips
from avdisentangle.data.synthetic.streams import clip_stream
from avdisentangle.data.synthetic.voice import synthesize_voice
from avdisentangle.errors import UserError
from avdisentangle.workers import exit_with_parent

MARKER = "synthetic.json"
FLV_CODEC_TAG = 2  # FFmpeg's tag for FLV1 (Sorenson H.263) in the flv container
CHUNK_CLIPS = 16  # clips per task: small enough for a live progress bar, large enough to amortise the hand-off


def _clip_duration(rng: np.random.Generator, config: SyntheticConfig) -> tuple[float, int]:
    """A duration that is a whole number of audio samples, and the video frame count it implies."""
    samples = int(round(rng.uniform(config.min_duration_s, config.max_duration_s) * config.sample_rate))
    duration = samples / config.sample_rate
    return duration, int(round(duration * config.fps))


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """16-bit PCM mono WAV, written to a temporary name and moved into place."""
    tmp = path.with_name(f".{path.stem}.tmp.wav")
    sf.write(tmp, audio, sample_rate, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)


def _write_flv(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """Flash video as in CREMA-D's VideoFlash, written to a temporary ``.flv`` name and moved into place."""
    tmp = path.with_name(f".{path.stem}.tmp.flv")  # the extension picks ffmpeg's container
    height, width = frames[0].shape[:2]
    # FLV's own codec tag (2, Sorenson H.263) rather than the fourcc "FLV1": the same bytes, without
    # OpenCV's two-line warning per file about falling back to that tag.
    writer = cv2.VideoWriter(str(tmp), FLV_CODEC_TAG, fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write FLV1 video to {tmp}; is this OpenCV built with FFMPEG?")
    for frame in frames:
        writer.write(frame)
    writer.release()
    os.replace(tmp, path)


def write_clip(root: Path, config: SyntheticConfig, speaker: Speaker, plan: ClipPlan) -> dict:
    """Synthesise and write one clip's WAV and FLV; return its ground-truth factors."""
    rng = clip_stream(config.seed, plan.speaker_index, plan.clip_index)
    intensity = LEVEL_INTENSITY[plan.level] * config.emotion_strength * rng.uniform(0.85, 1.15)
    style = express(plan.emotion, intensity)
    duration, num_frames = _clip_duration(rng, config)
    audio, envelope, f0 = synthesize_voice(rng, speaker, style, duration, config.sample_rate)
    frames = render_video(rng, config, speaker, style, envelope, num_frames)
    _write_wav(root / "AudioWAV" / f"{plan.stem}.wav", audio, config.sample_rate)
    _write_flv(root / "VideoFlash" / f"{plan.stem}.flv", frames, config.fps)
    return {
        "clip_id": plan.stem,
        "speaker": speaker.actor,
        "speaker_index": plan.speaker_index,
        "emotion": plan.emotion,
        "sentence": plan.sentence,
        "level": plan.level,
        "intensity": round(intensity, 4),
        "duration_s": duration,
        "num_frames": num_frames,
        "mean_f0_hz": round(f0, 2),
    }


def is_complete(root: str | Path, config: SyntheticConfig) -> bool:
    """Whether root already holds a finished corpus made from this config by this generator version."""
    marker = Path(root) / MARKER
    if not marker.is_file():
        return False
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return meta.get("fingerprint") == config.fingerprint() and meta.get("config") == asdict(config)


def _refuse_foreign_contents(root: Path, config: SyntheticConfig, stems: set[str]) -> None:
    """Refuse to write into a root holding another corpus, rather than mixing two corpora."""
    marker = root / MARKER
    if marker.exists():
        raise UserError(
            f"{root} already holds a different synthetic corpus ({MARKER} does not match config "
            f"{config.fingerprint()}); use an empty folder, e.g. one named by config.fingerprint()"
        )
    for folder, suffix in (("AudioWAV", ".wav"), ("VideoFlash", ".flv")):
        for path in (root / folder).glob(f"*{suffix}"):
            if not path.name.startswith(".") and path.stem not in stems:
                raise UserError(f"{root} holds a file this corpus would not write ({path}); use an empty folder")


def generate_corpus(
    root: str | Path, config: SyntheticConfig = SyntheticConfig(), *, progress: bool = True, workers: int = 0
) -> Path:
    """Write the corpus under root and return root; `workers` processes write clips side by side.

    Idempotent: if root already holds a finished corpus with the same config, nothing is done. The
    manifest ``synthetic.json`` is written last and atomically, so its presence means every clip
    is in place; an interrupted run leaves no manifest and is simply redone. Every clip has its own
    random stream, so the files are the same whatever the number of workers.
    """
    root = Path(root)
    if is_complete(root, config):
        return root
    plans = plan_clips(config)
    if root.exists():
        _refuse_foreign_contents(root, config, {p.stem for p in plans})
    for folder in ("AudioWAV", "VideoFlash"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    speakers = [make_speaker(config.seed, s) for s in range(config.num_speakers)]
    bar = tqdm(total=len(plans), desc="synthetic corpus", unit="clip", disable=not progress)
    clips = []
    for chunk in _write_chunks(root, config, speakers, plans, workers):
        clips += chunk
        bar.update(len(chunk))
    bar.close()
    _write_marker(root, config, speakers, clips)
    return root


def _write_marker(root: Path, config: SyntheticConfig, speakers: list[Speaker], clips: list[dict]) -> None:
    """The manifest: config, joint distribution, speakers and every clip's factors, moved into place last."""
    meta = {
        "generator": GENERATOR_VERSION,
        "fingerprint": config.fingerprint(),
        "config": asdict(config),
        "emotions": list(EMOTION_CODES[: config.num_emotions]),
        "emotion_counts": config.emotion_counts().tolist(),
        "speakers": [asdict(s) for s in speakers],
        "clips": clips,
    }
    tmp = root / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, root / MARKER)


def _write_chunk(root: Path, config: SyntheticConfig, speakers: list[Speaker], plans: list[ClipPlan]) -> list[dict]:
    return [write_clip(root, config, speakers[plan.speaker_index], plan) for plan in plans]


def _write_chunks(root: Path, config: SyntheticConfig, speakers: list[Speaker], plans: list[ClipPlan], workers: int):
    """Yield each chunk's clip metadata in plan order, from a process pool when workers > 0."""
    chunks = [plans[i : i + CHUNK_CLIPS] for i in range(0, len(plans), CHUNK_CLIPS)]
    if workers <= 0 or len(chunks) <= 1:
        for chunk in chunks:
            yield _write_chunk(root, config, speakers, chunk)
        return
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=exit_with_parent) as pool:
        yield from pool.map(_write_chunk, *zip(*[(root, config, speakers, chunk) for chunk in chunks]))
