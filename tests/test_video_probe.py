"""Tests of video probing and frame sampling on the real test clips and bad uploads."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.errors import PermanentError
from workers.video.detect import FaceDetector
from workers.video.frames import frame_step, sample_frames, scale_down, upright
from workers.video.probe import probe_video


def test_probe_video_01(media_dir: Path) -> None:
    info = probe_video(media_dir / "video_01.mp4")
    assert (info.width, info.height) == (640, 480)
    assert info.rotation == 0
    assert info.fps == pytest.approx(29.97, abs=0.01)
    assert info.frame_count == 90
    assert info.duration == pytest.approx(3.04, abs=0.05)
    assert info.codec == "h264"
    assert info.has_audio


@pytest.mark.parametrize(
    ("name", "codec"),
    [("h264_aac.mp4", "h264"), ("vp8_opus.webm", "vp8"), ("xvid_aac.avi", "mpeg4")],
)
def test_probe_other_codecs(media_dir: Path, name: str, codec: str) -> None:
    info = probe_video(media_dir / name)
    assert info.codec == codec
    assert (info.width, info.height) == (640, 480)
    assert info.duration == pytest.approx(1.04, abs=0.05)


def test_probe_reads_rotation(media_dir: Path) -> None:
    info = probe_video(media_dir / "new_face_video-90.mp4")
    # The stream is coded 480 wide and 640 high, and displayed turned 90 degrees clockwise.
    assert info.rotation == 90
    assert (info.width, info.height) == (640, 480)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("video_01_invalid.mp4", "corrupt or truncated"),
        ("test5-noaudio-novideo.mkv", "neither a video nor an audio stream"),
        ("video_02_audio_only.mp4", "audio only, with no video stream"),
        ("person_cropped_2.png", "still image"),
        ("missing.mp4", "file not found"),
    ],
)
def test_probe_bad_files(media_dir: Path, name: str, problem: str) -> None:
    with pytest.raises(PermanentError) as caught:
        probe_video(media_dir / name)
    assert name in str(caught.value)
    assert problem in str(caught.value)


def test_probe_empty_and_garbage_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(PermanentError, match="empty.mp4: file is empty"):
        probe_video(empty)

    garbage = tmp_path / "notes.mp4"
    garbage.write_bytes(b"these are plain notes, not a video\n" * 50)
    with pytest.raises(PermanentError, match="notes.mp4: cannot be read as a media file"):
        probe_video(garbage)


def test_probe_uses_label_in_messages(media_dir: Path) -> None:
    with pytest.raises(PermanentError, match="^s3://bucket/upload.mp4: contains audio only"):
        probe_video(media_dir / "video_02_audio_only.mp4", label="s3://bucket/upload.mp4")


def test_sample_frames_at_two_per_second(media_dir: Path) -> None:
    path = media_dir / "video_01.mp4"
    frames = list(sample_frames(path, probe_video(path), sample_fps=2.0, max_side=960))
    assert [frame.index for frame in frames] == [0, 15, 30, 45, 60, 75]
    assert frames[1].time == pytest.approx(0.5, abs=0.01)
    assert frames[0].image.shape == (480, 640, 3)
    assert frames[0].scale == 1.0


def test_sample_faster_than_video_takes_every_frame(media_dir: Path) -> None:
    path = media_dir / "h264_aac.mp4"
    frames = list(sample_frames(path, probe_video(path), sample_fps=100.0, max_side=960))
    assert [frame.index for frame in frames] == list(range(31))


def test_sample_frames_max_samples(media_dir: Path) -> None:
    path = media_dir / "new_face_video-90.mp4"
    frames = list(sample_frames(path, probe_video(path), sample_fps=2.0, max_side=320, max_samples=3))
    assert len(frames) == 3
    assert frames[0].scaled.shape == (240, 320, 3)
    assert frames[0].scale == pytest.approx(0.5)


def test_rotated_frames_come_out_upright(media_dir: Path) -> None:
    path = media_dir / "new_face_video-90.mp4"
    info = probe_video(path)
    detector = FaceDetector(min_face_size=20)
    upright_hits = 0
    coded_hits = 0
    frames = list(sample_frames(path, info, sample_fps=2.0, max_side=960, max_samples=6))
    for frame in frames:
        assert frame.image.shape == (480, 640, 3)
        upright_hits += bool(detector.detect(frame.image))
        coded = cv2.rotate(frame.image, cv2.ROTATE_90_COUNTERCLOCKWISE)
        coded_hits += bool(detector.detect(coded))
    # The face is found in the upright frames and not when the frame is left as coded.
    assert upright_hits == len(frames)
    assert coded_hits <= 1


def test_upright_rotates_when_decoder_did_not(media_dir: Path) -> None:
    info = probe_video(media_dir / "new_face_video-90.mp4")
    coded = np.zeros((640, 480, 3), np.uint8)
    coded[0, 0] = 255
    turned = upright(coded, info)
    assert turned.shape == (480, 640, 3)
    # 90 degrees clockwise moves the top-left pixel to the top-right corner.
    assert turned[0, 639].tolist() == [255, 255, 255]
    already = np.zeros((480, 640, 3), np.uint8)
    assert upright(already, info) is already


def test_text_clip_samples_its_decodable_frames(media_dir: Path) -> None:
    path = media_dir / "text-test-video-detection.avi"
    frames = list(sample_frames(path, probe_video(path), sample_fps=10.0, max_side=960))
    # The file declares 42 frames, but only the first 3 can be decoded.
    assert [frame.index for frame in frames] == [0, 2]


def test_scale_down_and_frame_step() -> None:
    image = np.zeros((1080, 1920, 3), np.uint8)
    scaled, scale = scale_down(image, 960)
    assert scaled.shape == (540, 960, 3)
    assert scale == 0.5
    assert frame_step(30.0, 2.0) == 15.0
    assert frame_step(10.0, 30.0) == 1.0
    with pytest.raises(ValueError, match="sample_fps must be positive"):
        frame_step(30.0, 0)
