"""Reading a clip's video: decode the frames shown at given times, find a face in one, crop a square.

Decoding grabs every frame but converts only the wanted ones; detection runs on a downscaled,
equalised grey frame. Nothing here depends on the feature settings: `features` decides which
frames to probe for a face and which box to crop.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from avdisentangle.data.clip_errors import ClipRefused

# Face detection runs on grey frames downscaled to `FeatureConfig.detection_height`, searching face
# sizes in steps of DETECTION_SCALE_STEP. On 480x360 clips, 120 px and steps of 1.2 instead of 180 px
# and 1.1 cut a detection from 9.7 to 3.8 ms and move the box by at most 2.5% of its side (p95).
DETECTION_SCALE_STEP = 1.2
MAX_MISSING_FRAME_FRACTION = 0.25


def load_face_detector() -> cv2.CascadeClassifier:
    """The Haar frontal-face cascade that ships inside opencv-python 4.x (offline)."""
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise RuntimeError(f"could not load the Haar cascade at {path}; is opencv-python>=4.10,<5 installed?")
    return detector


def read_frames(path: Path, times_s: np.ndarray) -> list[np.ndarray]:
    """Decode sequentially, converting only the frames nearest to `times_s` (grab, then retrieve).

    Frames past the end of a slightly short video repeat the last decoded one; a video missing
    more than a quarter of the window is refused as truncated.
    """
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise ClipRefused("unreadable video: OpenCV could not open it")
        fps = capture.get(cv2.CAP_PROP_FPS)
        if not fps or not np.isfinite(fps) or fps <= 0:
            raise ClipRefused("unreadable video: no frame rate in its header")
        declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        wanted = np.floor(times_s * fps).clip(min=0).astype(int)  # the frame shown at each time
        if declared > 0:
            # The audio may outlast the last frame by a fraction of a frame period.
            wanted = np.minimum(wanted, declared - 1)
        wanted_set = set(wanted.tolist())
        frames: dict[int, np.ndarray] = {}
        decoded = 0
        for index in range(int(wanted.max()) + 1):
            if not capture.grab():
                break
            decoded += 1
            if index in wanted_set:
                ok, frame = capture.retrieve()
                if ok:
                    frames[index] = frame
    finally:
        capture.release()
    if not frames:
        raise ClipRefused("unreadable or truncated video: no frame could be decoded")
    missing = [index for index in wanted.tolist() if index not in frames]
    if len(missing) > MAX_MISSING_FRAME_FRACTION * len(wanted):
        raise ClipRefused(
            f"truncated video: shorter than its audio; decoded {decoded} frames, "
            f"the window needs frame {int(wanted.max())} (header declares {declared})"
        )
    last = frames[max(frames)]
    return [frames.get(index, last) for index in wanted.tolist()]


def video_duration(path: Path) -> float:
    """Seconds of video from its header (frame count / frame rate): the time line of a video-only run,
    which has no audio to take it from."""
    capture = open_video(path)
    try:
        if not capture.isOpened():
            raise ClipRefused("unreadable video: OpenCV could not open it")
        fps = capture.get(cv2.CAP_PROP_FPS)
        frames = capture.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        capture.release()
    if not fps or not np.isfinite(fps) or fps <= 0:
        raise ClipRefused("unreadable video: no frame rate in its header")
    if not frames or not np.isfinite(frames) or frames <= 0:
        raise ClipRefused("unreadable video: no frame count in its header")
    return float(frames) / fps


def open_video(path: Path) -> cv2.VideoCapture:
    """A capture that decodes on one thread: `prepare` runs one process per core, and FFmpeg's own
    decoding threads would only contend with them (measured on a 480x360 clip: 38 ms of CPU with
    FFmpeg's threads, 32 ms with one, at about the same wall time)."""
    return cv2.VideoCapture(str(path), cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, 1])


def detect_face(
    frame: np.ndarray, detector: cv2.CascadeClassifier, detection_height: int
) -> tuple[float, float, float] | None:
    """(centre x, centre y, side) of the largest face, in full-frame pixels, or None.

    Faces smaller than a sixth of the frame height are not searched for."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    scale = min(1.0, detection_height / grey.shape[0])
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    min_side = max(16, grey.shape[0] // 6)
    faces = detector.detectMultiScale(
        grey, scaleFactor=DETECTION_SCALE_STEP, minNeighbors=4, minSize=(min_side, min_side)
    )
    if len(faces) == 0:
        return None
    x, y, w, h = max(faces, key=lambda box: box[2] * box[3])
    return ((x + w / 2) / scale, (y + h / 2) / scale, max(w, h) / scale)


def crop_square(
    frame: np.ndarray, centre_x: float, centre_y: float, side: float, size: int, color: str
) -> np.ndarray:
    """A square crop resized to size x size, channels first, in `color` ("grey" or "rgb"), edges
    replicated where the box leaves the frame."""
    half = side / 2
    x0, y0 = int(round(centre_x - half)), int(round(centre_y - half))
    x1, y1 = int(round(centre_x + half)), int(round(centre_y + half))
    height, width = frame.shape[:2]
    pad = max(0, -x0, -y0, x1 - width, y1 - height)
    if pad:
        frame = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0, x1, y1 = x0 + pad, y0 + pad, x1 + pad, y1 + pad
    crop = cv2.resize(frame[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    if color == "grey":
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)[None] if crop.ndim == 3 else crop[None]
    else:
        crop = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
    return crop
