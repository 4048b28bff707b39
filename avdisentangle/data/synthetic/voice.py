"""The voice: additive synthesis of one utterance in a speaker's voice and an emotion's style.

The syllable envelope it returns drives the mouth in the video, so both streams share one timeline.
"""

from __future__ import annotations

import numpy as np

from avdisentangle.data.synthetic.factors import EmotionStyle, Speaker


def _syllable_envelope(rng: np.random.Generator, t: np.ndarray, rate: float) -> np.ndarray:
    """Loudness over time: raised-cosine syllables at ``rate`` per second with jittered timing."""
    duration = t[-1]
    start, end = rng.uniform(0.06, 0.18), duration - rng.uniform(0.06, 0.18)
    count = max(1, int((end - start) * rate))
    centres = start + (np.arange(count) + 0.5) * (end - start) / count
    centres += rng.uniform(-0.15, 0.15, count) / rate
    widths = rng.uniform(0.65, 0.95, count) / rate
    heights = rng.uniform(0.55, 1.0, count)
    phase = np.clip((t[:, None] - centres) / widths, -0.5, 0.5).astype(np.float32)  # (samples, syllables)
    bumps = 0.5 * (1.0 + np.cos(2.0 * np.pi * phase))
    return np.clip((bumps * heights).sum(axis=1), 0.0, 1.2)


def _contour(shape: str, u: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Zero-mean pitch contour (in units of the emotion's pitch range) over normalised time u."""
    if shape == "fall":
        return 0.5 - u
    if shape == "dip":
        return np.cos(np.pi * u) ** 2 - 0.5
    if shape == "arch":
        return np.sin(np.pi * u) - 2.0 / np.pi
    if shape == "tremble":
        return 0.5 * np.sin(2.0 * np.pi * 6.0 * t) + 0.4 * (u - 0.5)
    return 0.2 * (np.sin(np.pi * u) - 2.0 / np.pi)  # flat: only a slight arch


def synthesize_voice(
    rng: np.random.Generator, speaker: Speaker, style: EmotionStyle, duration_s: float, sample_rate: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Audio samples, their syllable envelope (for the mouth) and the clip's mean f0.

    Additive synthesis: harmonics of a time-varying f0, weighted by a spectral tilt and formant-like
    peaks evaluated at each harmonic's current frequency, plus breath noise shaped by the envelope.
    """
    n = int(round(duration_s * sample_rate))
    t = np.arange(n) / sample_rate
    rate = style.syllable_rate_hz * speaker.rate_factor * rng.uniform(0.9, 1.1)
    envelope = _syllable_envelope(rng, t, rate)

    u = t / t[-1]
    wander = np.interp(t, np.linspace(0, t[-1], 6), rng.normal(0, 0.4, 6))  # slow pitch drift
    semitones = (
        style.pitch_shift_st + rng.normal(0, 0.7) + style.pitch_range_st * _contour(style.contour, u, t) + wander
    )
    f0 = speaker.f0_hz * 2.0 ** (semitones / 12.0)
    phase = (2.0 * np.pi * np.cumsum(f0) / sample_rate) % (2.0 * np.pi)  # wrapped: float32-safe below

    nyquist_safe = 0.45 * sample_rate
    harmonics = np.arange(1, min(48, int(nyquist_safe / f0.max())) + 1, dtype=np.float32)
    step = sample_rate // 100  # harmonic weights at 100 Hz control rate, then interpolated
    control = np.arange(0, n, step)
    freqs = f0[control, None] * harmonics  # (control, harmonics)
    formants = np.array(speaker.formants_hz) * rng.uniform(0.93, 1.07, 3)
    peaks = sum(np.exp(-0.5 * ((freqs - f) / (0.12 * f + 60)) ** 2) * g for f, g in zip(formants, (1.0, 0.7, 0.4)))
    weights = (0.15 + peaks) * harmonics ** -(speaker.tilt - style.brightness)
    weights /= np.sqrt(0.5 * (weights**2).sum(axis=1, keepdims=True))  # unit RMS at any pitch
    position = np.arange(n) / step
    low = np.minimum(position.astype(int), len(control) - 1)
    high = np.minimum(low + 1, len(control) - 1)
    frac = (position - low).astype(np.float32)[:, None]
    weights = weights.astype(np.float32)
    weights = weights[low] * (1 - frac) + weights[high] * frac
    voiced = (weights * np.sin(phase.astype(np.float32)[:, None] * harmonics)).sum(axis=1, dtype=np.float64)

    breath = np.diff(rng.normal(0, 1, n + 1)) * speaker.breathiness
    floor = rng.normal(0, 0.003, n)
    gain = 0.09 * speaker.loudness * 10 ** (style.loudness_db / 20) * rng.uniform(0.9, 1.1)
    audio = gain * envelope * (voiced + breath) + floor
    return np.clip(audio, -1.0, 1.0), envelope, float(f0.mean())

