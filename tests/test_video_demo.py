"""Tests of the demo video builder."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from workers.video.demo_video import build_demo_video, load_demo_photos


def test_demo_video_is_readable(tmp_path: Path) -> None:
    path = build_demo_video(tmp_path / "sub" / "demo.mp4", seconds=2.0, fps=12)
    assert path == tmp_path / "sub" / "demo.mp4"
    capture = cv2.VideoCapture(str(path))
    try:
        assert capture.isOpened()
        assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)
    finally:
        capture.release()
    assert len(frames) == 24
    assert frames[0].shape == (480, 640, 3)
    # The photos move: the first and last frames differ.
    assert cv2.absdiff(frames[0], frames[-1]).mean() > 10


def test_demo_photos_come_from_packages() -> None:
    photos = load_demo_photos()
    assert len(photos) == 2
    assert all(photo.shape[0] == 220 for photo in photos)


@pytest.mark.parametrize(("seconds", "fps"), [(0, 15), (2.0, 0), (-1.0, 15)])
def test_demo_video_rejects_bad_arguments(tmp_path: Path, seconds: float, fps: int) -> None:
    with pytest.raises(ValueError, match="seconds and fps must be positive"):
        build_demo_video(tmp_path / "demo.mp4", seconds=seconds, fps=fps)
