"""A contact sheet of the cached face crops: whether detection and cropping worked, seen at a glance.

A cache of thousands of clips is checked by eye in seconds when a few clips of each speaker sit side
by side: a crop that shows a shoulder or a background, one speaker whose camera differs, a clip
where no face was found (framed in red: it fell back to a centre crop). Drawn with OpenCV, which
the data layer already uses, so writing it costs a prepare next to nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np

MAX_SPEAKERS = 24  # rows; a corpus with more speakers shows this many, evenly spread over them
CLIPS_PER_SPEAKER = (3, 6)  # more for few speakers; spread over each speaker's clips, so several emotions show
FRAMES_PER_CLIP = 4
MIN_TILE = 64  # px: small crops (32 px) are enlarged, pixel for pixel, to stay legible
LABEL_WIDTH, HEADER, GAP, CAPTION = 72, 28, 6, 16
NO_FACE = (40, 40, 230)  # BGR red
TEXT = (230, 230, 230)


def spread(items: list, count: int) -> list:
    """`count` items evenly spread over `items` (all of them when there are fewer)."""
    if len(items) <= count:
        return list(items)
    return [items[round(i)] for i in np.linspace(0, len(items) - 1, count)]


def frame_tile(crop: np.ndarray, scale: int) -> np.ndarray:
    """One crop (C, S, S) as a BGR image, enlarged `scale` times."""
    image = crop[0] if crop.shape[0] == 1 else cv2.cvtColor(crop.transpose(1, 2, 0), cv2.COLOR_RGB2BGR)
    image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def contact_sheet(video: np.ndarray, rows: list[dict[str, str]]) -> np.ndarray:
    """The sheet as a BGR image: one row per speaker (label at the left), a few clips each, a few frames
    per clip with the clip's emotion under them; a clip whose face was not found has a red frame."""
    by_speaker: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        by_speaker.setdefault(row["speaker"], []).append(index)
    speakers = spread(sorted(by_speaker), MAX_SPEAKERS)
    frames = spread(list(range(video.shape[1])), FRAMES_PER_CLIP)
    clips_per_speaker = max(CLIPS_PER_SPEAKER[0], min(CLIPS_PER_SPEAKER[1], MAX_SPEAKERS // len(speakers)))
    scale = max(1, math.ceil(MIN_TILE / video.shape[-1]))
    tile = video.shape[-1] * scale
    clip_width = len(frames) * tile + 2 * GAP
    width = LABEL_WIDTH + clips_per_speaker * clip_width
    row_height = tile + 2 * GAP + CAPTION
    sheet = np.full((HEADER + len(speakers) * row_height, width, 3), 24, np.uint8)
    title = f"{len(speakers)} of {len(by_speaker)} speakers; red: no face found (centre crop)"
    cv2.putText(sheet, title, (6, 19), cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT, 1, cv2.LINE_AA)
    for row_index, speaker in enumerate(speakers):
        top = HEADER + row_index * row_height
        label_y = top + GAP + tile // 2 + 5
        cv2.putText(sheet, speaker[:8], (6, label_y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, TEXT, 1, cv2.LINE_AA)
        for clip_index, clip in enumerate(spread(by_speaker[speaker], clips_per_speaker)):
            left = LABEL_WIDTH + clip_index * clip_width
            if rows[clip]["face_found"] == "0":
                sheet[top : top + tile + 2 * GAP, left : left + clip_width] = NO_FACE
            for frame_index, frame in enumerate(frames):
                x = left + GAP + frame_index * tile
                sheet[top + GAP : top + GAP + tile, x : x + tile] = frame_tile(video[clip, frame], scale)
            caption_y = top + 2 * GAP + tile + CAPTION - 4
            emotion = rows[clip]["emotion"]
            cv2.putText(sheet, emotion, (left + GAP, caption_y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, TEXT, 1, cv2.LINE_AA)
    return sheet


def write_contact_sheet(
    path: Path, video: np.ndarray, rows: list[dict[str, str]], write: Callable[[Path, Callable[[BinaryIO], None]], None]
) -> None:
    """Encode the sheet as PNG and hand it to `write` (the cache's atomic writer)."""
    ok, png = cv2.imencode(".png", contact_sheet(video, rows))
    if ok:
        write(path, lambda handle: handle.write(png.tobytes()))
