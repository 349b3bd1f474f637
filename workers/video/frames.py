"""Sampling frames from a video at a fixed rate with OpenCV.

OpenCV's FFmpeg backend decodes every frame in order. Frames between samples are only
grabbed (decoded but not converted to BGR), which is the cheap part of the loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.errors import PermanentError
from workers.video.probe import VideoInfo

log = logging.getLogger(__name__)

_ROTATE_CODES = {90: cv2.ROTATE_90_CLOCKWISE, 180: cv2.ROTATE_180, 270: cv2.ROTATE_90_COUNTERCLOCKWISE}


@dataclass
class SampledFrame:
    """One sampled frame, upright, as decoded and scaled down for detection."""

    index: int
    # Seconds from the start of the video.
    time: float
    # Upright BGR frame at the video's display size.
    image: np.ndarray
    # The frame scaled so that its larger side is at most max_side (may be ``image`` itself).
    scaled: np.ndarray
    # scaled size / original size, 1.0 when the frame was small enough.
    scale: float


def open_capture(path: Path, label: str) -> cv2.VideoCapture:
    """Open ``path`` with OpenCV's FFmpeg backend, with automatic rotation turned on."""
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise PermanentError(f"{label}: OpenCV cannot open the video for decoding")
    # On by default in OpenCV 4.5+ and 5.x; ``upright`` covers builds that ignore it.
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    return capture


def frame_step(fps: float, sample_fps: float) -> float:
    """Return the number of video frames between two samples (at least 1)."""
    if sample_fps <= 0:
        raise ValueError(f"sample_fps must be positive, got {sample_fps}")
    if fps <= 0:
        return 1.0
    return max(1.0, fps / sample_fps)


def upright(image: np.ndarray, info: VideoInfo) -> np.ndarray:
    """Rotate ``image`` when the decoder did not apply the rotation metadata itself."""
    height, width = image.shape[:2]
    if info.rotation in (90, 270) and (width, height) == (info.height, info.width):
        return cv2.rotate(image, _ROTATE_CODES[info.rotation])
    return image


def scale_down(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    height, width = image.shape[:2]
    largest = max(height, width)
    if largest <= max_side:
        return image, 1.0
    scale = max_side / largest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def sample_frames(
    path: Path,
    info: VideoInfo,
    sample_fps: float,
    max_side: int,
    label: str | None = None,
    max_samples: int | None = None,
) -> Iterator[SampledFrame]:
    """Yield frames of ``path`` at ``sample_fps`` per second, starting with the first frame.

    Stops early after ``max_samples`` samples when it is given. A stream that breaks off in
    the middle ends the iteration with a warning. Raises PermanentError when OpenCV cannot
    open the file or decode its first frame.
    """
    name = label or str(path)
    step = frame_step(info.fps, sample_fps)
    capture = open_capture(path, name)
    try:
        index = 0
        next_sample = 0.0
        yielded = 0
        while max_samples is None or yielded < max_samples:
            if not capture.grab():
                break
            # Half a frame of tolerance keeps rounding from skipping a sample.
            if index + 0.5 >= next_sample:
                ok, image = capture.retrieve()
                if not ok or image is None:
                    log.warning("frame %d of %s could not be converted; skipping it", index, name)
                else:
                    image = upright(image, info)
                    scaled, scale = scale_down(image, max_side)
                    seconds = index / info.fps if info.fps > 0 else 0.0
                    yield SampledFrame(index=index, time=round(seconds, 3), image=image, scaled=scaled, scale=scale)
                    yielded += 1
                next_sample += step
            index += 1
        if index == 0:
            raise PermanentError(f"{name}: the video stream contains no frame that OpenCV can decode")
        if info.frame_count and index < info.frame_count * 0.9 and max_samples is None:
            log.warning(
                "decoded %d of the %d frames that %s declares; the rest is missing or corrupt",
                index,
                info.frame_count,
                name,
            )
    finally:
        capture.release()
