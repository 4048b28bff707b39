"""Reading a clip's audio: decode it at one sample rate, and refuse an empty, cut-off or undecodable file.

Decoding goes through librosa (any container ffmpeg reads); a WAV is first checked against its own
header, because libsndfile silently returns what is left of a truncated copy. Nothing here depends on
the feature settings: `features` turns the waveform into a log-mel window.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from avdisentangle.data.clip_errors import ClipRefused, describe_error


def load_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 at `sample_rate`; refuses empty, truncated or undecodable files."""
    import librosa  # imported here: its import costs ~1 s and only workers need it

    try:
        if path.suffix.lower() == ".wav":
            check_wav_complete(path)
        waveform, _ = librosa.load(str(path), sr=sample_rate, mono=True)
    except ClipRefused:
        raise
    except Exception as error:  # soundfile and audioread raise many unrelated types
        raise ClipRefused(f"unreadable audio: {describe_error(error)}") from None
    if waveform.size == 0:
        raise ClipRefused("audio holds no samples")
    if not np.all(np.isfinite(waveform)):
        raise ClipRefused("audio holds NaN or infinite samples")
    return waveform


def check_wav_complete(path: Path) -> None:
    """Refuse a WAV whose data chunk is shorter than its header declares (a cut-off copy).

    libsndfile silently returns the samples that are there, so truncation is only visible by
    comparing the declared chunk size with the bytes on disk.
    """
    size = path.stat().st_size
    if size == 0:
        raise ClipRefused("empty audio file (0 bytes)")
    with path.open("rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            raise ClipRefused("audio is not a RIFF/WAVE file")
        position = 12
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                raise ClipRefused("truncated audio: no data chunk in its header")
            chunk_id, chunk_size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            position += 8
            if chunk_id == b"data":
                if position + chunk_size > size:
                    raise ClipRefused(
                        f"truncated audio: its header declares {chunk_size} data bytes, "
                        f"the file holds {size - position}"
                    )
                return
            position += chunk_size + (chunk_size & 1)
            handle.seek(position)
