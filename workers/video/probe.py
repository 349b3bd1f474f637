"""Checking that a file is a decodable video, and reading its duration, size and rotation.

PyAV (FFmpeg's libraries) opens the container because it can tell a corrupt file, a file
without streams and an audio-only file apart, where OpenCV only reports that it could not
open the file.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import av

from workers.errors import PermanentError

log = logging.getLogger(__name__)

# Demuxers that FFmpeg uses for still images. A still image is rejected, not treated as a
# one-frame video.
STILL_IMAGE_FORMATS = ("image2", "_pipe")


@dataclass(frozen=True)
class VideoInfo:
    """Properties of a video that the pipeline reads before it samples frames."""

    container: str
    codec: str
    # Size as displayed, after the rotation metadata is applied.
    width: int
    height: int
    # Clockwise rotation in degrees (0, 90, 180 or 270) that the player applies.
    rotation: int
    fps: float
    # Frame count from the container; 0 when the container does not store it (WebM).
    frame_count: int
    duration: float
    has_audio: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _clockwise_rotation(frame: Any) -> int:
    # PyAV reports the display matrix angle counter-clockwise, e.g. -90 for a clip that a
    # player turns 90 degrees clockwise.
    angle = int(round(getattr(frame, "rotation", 0) or 0))
    return (-angle) % 360


def probe_video(path: Path, label: str | None = None) -> VideoInfo:
    """Open ``path``, decode its first video frame and return what it contains.

    ``label`` names the file in error messages (the URL it came from); it defaults to the
    path. Raises PermanentError when the file is missing, corrupt, a still image, has no
    video stream or has no decodable video frame.
    """
    name = label or str(path)
    if not path.exists():
        raise PermanentError(f"{name}: file not found")
    if path.stat().st_size == 0:
        raise PermanentError(f"{name}: file is empty")

    try:
        container = av.open(str(path))
    except av.error.InvalidDataError as error:
        raise PermanentError(
            f"{name}: cannot be read as a media file; it is corrupt or truncated ({error.strerror}), "
            "so upload it again"
        ) from error
    except av.error.FFmpegError as error:
        raise PermanentError(f"{name}: cannot be opened as a media file ({error})") from error

    with container:
        format_name = container.format.name
        if any(marker in format_name for marker in STILL_IMAGE_FORMATS):
            raise PermanentError(f"{name}: is a still image ({format_name}), not a video")

        has_audio = bool(container.streams.audio)
        if not container.streams.video:
            if has_audio:
                raise PermanentError(f"{name}: contains audio only, with no video stream")
            kinds = sorted({stream.type for stream in container.streams})
            found = f"only {', '.join(kinds)} streams" if kinds else "no streams at all"
            raise PermanentError(f"{name}: has neither a video nor an audio stream ({found})")

        stream = container.streams.video[0]
        first = None
        try:
            for frame in container.decode(stream):
                first = frame
                break
        except av.error.FFmpegError as error:
            raise PermanentError(f"{name}: the video stream cannot be decoded ({error})") from error
        if first is None:
            raise PermanentError(f"{name}: the video stream contains no decodable frame")

        rotation = _clockwise_rotation(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width

        fps = float(stream.average_rate or stream.guessed_rate or 0.0)
        if container.duration:
            duration = container.duration / av.time_base
        elif stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        else:
            duration = 0.0
        frame_count = int(stream.frames or 0)

        return VideoInfo(
            container=format_name,
            codec=stream.codec_context.name,
            width=width,
            height=height,
            rotation=rotation,
            fps=fps,
            frame_count=frame_count,
            duration=round(duration, 3),
            has_audio=has_audio,
        )
