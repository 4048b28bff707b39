"""The face: a painted frontal face per video frame, whose mouth follows the voice's syllable envelope.

The light-dark layout (dark sockets, brows and mouth; light forehead, cheeks and nose bridge) is what
Haar face detectors key on, so the feature extractor finds these faces as it finds real ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from avdisentangle.data.synthetic.config import SyntheticConfig
from avdisentangle.data.synthetic.factors import EmotionStyle, Speaker


@dataclass(frozen=True)
class FacePose:
    """One frame's face: where it is and what its features are doing."""

    cx: float
    cy: float
    radius: float  # half the face height, pixels
    mouth_open: float  # in face radii
    eye_open: float


def _ellipse(img: np.ndarray, centre, axes, colour) -> None:
    """Filled anti-aliased ellipse with sub-pixel centre and axes (cv2 fixed point, 4 fractional bits)."""
    c = (int(round(centre[0] * 16)), int(round(centre[1] * 16)))
    a = (max(1, int(round(axes[0] * 16))), max(1, int(round(axes[1] * 16))))
    cv2.ellipse(img, c, a, 0, 0, 360, colour, -1, cv2.LINE_AA, 4)


def _polygon(img: np.ndarray, points: np.ndarray, colour) -> None:
    """Anti-aliased filled polygon with sub-pixel vertices."""
    cv2.fillPoly(img, [np.round(points * 16).astype(np.int32)], colour, cv2.LINE_AA, 4)


def _shade(colour, factor: float) -> tuple[float, float, float]:
    """The colour lit by ``factor`` (below 1: in shadow)."""
    return tuple(float(min(255.0, c * factor)) for c in colour)


def draw_face(img: np.ndarray, speaker: Speaker, style: EmotionStyle, pose: FacePose) -> None:
    """Paint a shaded frontal face: head and shoulders, then eyes and brows, then nose and mouth."""
    rw = pose.radius * speaker.face_aspect  # half the face width, pixels
    _draw_head(img, speaker, pose, rw)
    _draw_eyes(img, speaker, style, pose, rw)
    _draw_nose_and_mouth(img, speaker, style, pose, rw)


def _draw_head(img: np.ndarray, speaker: Speaker, pose: FacePose, rw: float) -> None:
    """Shoulders, neck, hair, the shaded face oval, forehead light, fringe and cheeks."""
    cx, cy, r = pose.cx, pose.cy, pose.radius
    skin, hair = speaker.skin_bgr, speaker.hair_bgr
    h = img.shape[0]
    _ellipse(img, (cx, cy + 1.55 * r), (1.6 * rw, 0.75 * r), speaker.shirt_bgr)  # shoulders
    cv2.rectangle(img, (int(cx - 0.45 * rw), int(cy + 0.5 * r)), (int(cx + 0.45 * rw), h), _shade(skin, 0.7), -1)
    hair_axes = (1.08 * rw + 0.08 * r * speaker.hair_volume, (1.06 + 0.1 * speaker.hair_volume) * r)
    _ellipse(img, (cx, cy - 0.12 * r), hair_axes, hair)
    _ellipse(img, (cx, cy), (rw, r), _shade(skin, 0.82))  # shaded rim
    _ellipse(img, (cx, cy - 0.02 * r), (0.86 * rw, 0.9 * r), skin)
    _ellipse(img, (cx, cy - 0.45 * r), (0.55 * rw, 0.25 * r), _shade(skin, 1.1))  # forehead light
    _ellipse(img, (cx, cy - 0.92 * r), (0.95 * rw, 0.28 * r), hair)  # fringe
    for side in (-1, 1):
        _ellipse(img, (cx + side * 0.5 * rw, cy + 0.18 * r), (0.26 * rw, 0.2 * r), _shade(skin, 1.08))  # cheek


def _eye_line(pose: FacePose) -> float:
    """The height of the eyes' centres, pixels."""
    return pose.cy - 0.15 * pose.radius


def _draw_eyes(img: np.ndarray, speaker: Speaker, style: EmotionStyle, pose: FacePose, rw: float) -> None:
    """Dark sockets, half-lit whites, irises and brows that the emotion raises and tilts."""
    cx, r = pose.cx, pose.radius
    skin, hair = speaker.skin_bgr, speaker.hair_bgr
    eye_y = _eye_line(pose)
    brow_colour = tuple(0.5 * min(a, b) for a, b in zip(hair, skin))  # brows stay dark whatever the hair
    raise_px = 0.07 * style.brow_raise * r
    eye_white = tuple(0.5 * a + 110 for a in skin)  # half-lit whites: the eye band must stay darker than the cheeks
    for side in (-1, 1):
        ex = cx + side * speaker.eye_spacing * rw
        lift = 0.5 * raise_px  # the socket shadow reaches up to a raised brow: no lit gap between them
        _ellipse(img, (ex, eye_y - lift), (0.32 * rw, 0.17 * r + lift), _shade(skin, 0.5))  # socket
        openness = max(0.15, pose.eye_open)
        _ellipse(img, (ex, eye_y), (0.18 * rw, 0.065 * r * openness), eye_white)
        _ellipse(img, (ex, eye_y), (0.075 * r, 0.065 * r * min(openness, 1.15)), (35, 30, 30))
        inner, outer = ex - side * 0.24 * rw, ex + side * 0.26 * rw
        brow_y = eye_y - 0.22 * r - raise_px
        tilt = 0.035 * style.brow_tilt * r  # turns the brow about its middle
        brow = np.array([
            [inner, brow_y + tilt], [outer, brow_y - tilt - 0.02 * r],
            [outer, brow_y - tilt + 0.05 * r], [inner, brow_y + tilt + 0.08 * r],
        ])
        _polygon(img, brow, brow_colour)


def _draw_nose_and_mouth(img: np.ndarray, speaker: Speaker, style: EmotionStyle, pose: FacePose, rw: float) -> None:
    """A lit nose bridge, a nostril shadow, and lips curved by the emotion and opened by the pose."""
    cx, cy, r = pose.cx, pose.cy, pose.radius
    skin = speaker.skin_bgr
    _ellipse(img, (cx, _eye_line(pose) + 0.05 * r), (0.08 * rw, 0.3 * r), _shade(skin, 1.15))  # nose bridge
    _ellipse(img, (cx, cy + 0.2 * r), (0.17 * rw, 0.05 * r), _shade(skin, 0.6))  # nostril shadow

    mouth_y, half = cy + 0.45 * r, 0.34 * rw * (1 + 0.08 * style.mouth_curve)
    x = np.linspace(-1, 1, 13)
    upper = mouth_y - 0.09 * style.mouth_curve * r * x**2 + 0.03 * style.mouth_curve * r
    lower = upper + (0.025 + pose.mouth_open) * r * np.sqrt(1 - x**2) + 0.01 * r
    xs = cx + half * x
    lips = np.concatenate([np.stack([xs, upper - 0.03 * r], 1), np.stack([xs, lower + 0.03 * r], 1)[::-1]])
    _polygon(img, lips, _shade(skin, 0.55))
    _polygon(img, np.concatenate([np.stack([xs, upper], 1), np.stack([xs, lower], 1)[::-1]]), (25, 20, 35))


def render_video(
    rng: np.random.Generator,
    config: SyntheticConfig,
    speaker: Speaker,
    style: EmotionStyle,
    envelope: np.ndarray,
    num_frames: int,
) -> list[np.ndarray]:
    """Frames whose mouth opening follows the audio envelope at each frame's centre time."""
    w, h = config.width, config.height
    radius = 0.5 * speaker.face_height * h * rng.uniform(0.96, 1.04)
    room_x = max(0.0, w / 2 - 1.25 * radius * speaker.face_aspect)
    room_y = max(0.0, h / 2 - 1.2 * radius)
    cx0 = w / 2 + speaker.offset_x * room_x + rng.normal(0, 0.03 * w)
    cy0 = h / 2 + speaker.offset_y * room_y + rng.normal(0, 0.03 * h)
    sway = rng.uniform(0.005, 0.02, 2) * np.array([w, h])
    sway_hz, sway_phase = rng.uniform(0.3, 1.0, 2), rng.uniform(0, 2 * np.pi, 2)
    blink = rng.integers(0, num_frames) if rng.random() < 0.5 else -1
    light = rng.uniform(0.9, 1.1)
    times = (np.arange(num_frames) + 0.5) / config.fps
    samples = np.minimum((times * config.sample_rate).astype(int), len(envelope) - 1)
    open_by_frame = style.mouth_open + 0.22 * envelope[samples]

    falloff = np.linspace(1.1, 0.85, h)[:, None, None]  # soft vertical light falloff
    background = np.clip(np.array(speaker.background_bgr) * falloff, 0, 255).astype(np.uint8).repeat(w, axis=1)
    frames = []
    for i, t in enumerate(times):
        img = background.copy()
        offset = sway * np.sin(2 * np.pi * sway_hz * t + sway_phase)
        eye_open = 0.15 if i == blink else style.eye_open
        pose = FacePose(cx0 + offset[0], cy0 + offset[1], radius, float(open_by_frame[i]), eye_open)
        draw_face(img, speaker, style, pose)
        img = cv2.GaussianBlur(img, (0, 0), 0.6 + h / 400).astype(np.float32) * light
        img += 3.0 * rng.standard_normal((h, w, 1), dtype=np.float32)  # luminance sensor noise
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames
