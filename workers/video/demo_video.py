"""A short demo clip of two real faces moving across the frame, built from packaged photos.

The photos ship inside installed packages, so the demo needs no download: scikit-image's
``astronaut`` (Eileen Collins, public domain, NASA) and matplotlib's ``grace_hopper.jpg``
sample (public domain, US Navy).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

FRAME_WIDTH = 640
FRAME_HEIGHT = 480
PHOTO_HEIGHT = 220
# mp4v (MPEG-4 Part 2) is the MP4 codec that OpenCV's bundled FFmpeg can both write and read.
FOURCC = "mp4v"


def load_demo_photos() -> list[np.ndarray]:
    """Return the astronaut and Grace Hopper photos as BGR images of PHOTO_HEIGHT pixels."""
    from matplotlib import cbook
    from skimage import data

    astronaut = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    with cbook.get_sample_data("grace_hopper.jpg") as handle:
        encoded = np.frombuffer(handle.read(), np.uint8)
    hopper = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if hopper is None:
        raise RuntimeError("matplotlib's grace_hopper.jpg sample cannot be decoded")

    photos = []
    for photo in (astronaut, hopper):
        width = round(photo.shape[1] * PHOTO_HEIGHT / photo.shape[0])
        photos.append(cv2.resize(photo, (width, PHOTO_HEIGHT), interpolation=cv2.INTER_AREA))
    return photos


def _background() -> np.ndarray:
    gradient = np.linspace(90, 170, FRAME_WIDTH, dtype=np.float32)
    gray = np.tile(gradient, (FRAME_HEIGHT, 1)).astype(np.uint8)
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def build_demo_video(path: Path, seconds: float = 4.0, fps: int = 15) -> Path:
    """Write an MP4 at ``path`` in which the two photos cross the frame in opposite directions.

    The astronaut moves left to right in the top half, Grace Hopper right to left in the
    bottom half. Returns ``path``. Raises ValueError for a non-positive length or rate and
    RuntimeError when OpenCV cannot write the file.
    """
    if seconds <= 0 or fps <= 0:
        raise ValueError(f"seconds and fps must be positive, got seconds={seconds}, fps={fps}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    photos = load_demo_photos()
    background = _background()
    frame_count = max(1, round(seconds * fps))

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (FRAME_WIDTH, FRAME_HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} with the {FOURCC} codec")
    try:
        tops = (10, FRAME_HEIGHT - PHOTO_HEIGHT - 10)
        for index in range(frame_count):
            progress = index / max(1, frame_count - 1)
            frame = background.copy()
            for number, (photo, top) in enumerate(zip(photos, tops)):
                travel = FRAME_WIDTH - photo.shape[1]
                left = round(travel * (progress if number == 0 else 1 - progress))
                frame[top : top + photo.shape[0], left : left + photo.shape[1]] = photo
            writer.write(frame)
    finally:
        writer.release()
    if not path.is_file() or path.stat().st_size == 0:
        raise RuntimeError(f"OpenCV wrote no data to {path}")
    return path
