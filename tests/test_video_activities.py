"""Tests of the FaceDetect and FaceRecognize handlers on real clips, the demo video and bad uploads.

The handlers run in this process with a small stand-in for the activity context, which
records heartbeats. The worker runtime's own tests cover the real context.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from workers.activities import face_detect, face_recognize
from workers.config import Config, StorageConfig, VideoConfig
from workers.errors import PermanentError, TaskCancelled
from workers.video import task as video_task
from workers.video.demo_video import build_demo_video, load_demo_photos

# SWF rejects an activity result longer than 32,768 characters.
MAX_RESULT_CHARS = 32768


@dataclass
class FakeContext:
    """Stands in for workers.activity.ActivityContext: records heartbeats, can cancel."""

    config: Config
    workflow_id: str = "wf-test"
    activity_id: str = "act-1"
    cancel_after: int | None = None
    heartbeats: list[dict[str, Any] | None] = field(default_factory=list)

    def heartbeat(self, details: dict[str, Any] | None = None) -> None:
        self.heartbeats.append(details)
        if self.cancel_after is not None and len(self.heartbeats) > self.cancel_after:
            raise TaskCancelled(f"cancel requested for {self.activity_id}")


def make_context(root: Path | str, **video: Any) -> FakeContext:
    video.setdefault("min_face_size", 20)
    return FakeContext(config=Config(storage=StorageConfig(root=str(root)), video=VideoConfig(**video)))


def task(video_url: str, media_uuid: str = "media-1", user_uuid: str | None = None, previous: Any = None) -> dict:
    return {
        "workflow": {"media_uuid": media_uuid, "user_uuid": user_uuid, "video_url": video_url},
        "previous": previous,
    }


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_video(tmp_path_factory.mktemp("demo") / "demo.mp4", seconds=3.0, fps=10)


def run_pipeline(video_url: str, context: FakeContext, **task_fields: Any) -> tuple[dict, dict]:
    detected = face_detect.handle(task(video_url, **task_fields), context)
    recognized = face_recognize.handle(task(video_url, previous=detected, **task_fields), context)
    for result in (detected, recognized):
        assert len(json.dumps(result)) < MAX_RESULT_CHARS
    return detected, recognized


def test_demo_video_gives_two_people(tmp_path: Path, demo_video: Path) -> None:
    context = make_context(tmp_path / "store")
    detected, recognized = run_pipeline(str(demo_video), context)

    assert detected["frames_sampled"] == 6
    assert detected["frames_with_faces"] == 6
    assert detected["face_count"] == 12
    assert detected["video"]["width"] == 640
    assert detected["video"]["duration"] == pytest.approx(3.0, abs=0.1)

    faces_path = Path(detected["faces_url"])
    assert faces_path == (tmp_path / "store" / "media-1" / "faces.json").resolve()
    document = json.loads(faces_path.read_text())
    assert len(document["faces"]) == 12
    assert [frame["faces"] for frame in document["frames"]] == [2] * 6
    for face in document["faces"]:
        crop = cv2.imread(face["crop_url"])
        assert crop is not None
        x, y, w, h = face["crop_box"]
        assert x + w <= crop.shape[1]
        assert y + h <= crop.shape[0]

    assert recognized["people_count"] == 2
    assert [person["face_count"] for person in recognized["people"]] == [6, 6]
    assert recognized["matches"] == []
    people = json.loads(Path(recognized["people_url"]).read_text())["people"]
    all_ids = sorted(face_id for person in people for face_id in person["face_ids"])
    assert all_ids == sorted(face["id"] for face in document["faces"])
    # Each person stays in one half of the frame: the astronaut on top, Grace Hopper below.
    boxes = {face["id"]: face["box"] for face in document["faces"]}
    for person in people:
        halves = {boxes[face_id][1] < 240 for face_id in person["face_ids"]}
        assert len(halves) == 1, person["id"]

    sheet = cv2.imread(recognized["contact_sheet_url"])
    assert sheet is not None
    assert sheet.shape[0] == 2 * 96


def test_heartbeats_report_progress(tmp_path: Path, demo_video: Path) -> None:
    context = make_context(tmp_path)
    face_detect.handle(task(str(demo_video)), context)
    done = [beat["frames_done"] for beat in context.heartbeats if beat and "frames_done" in beat]
    assert done[0] == 0
    assert done[-1] == 6
    assert done == sorted(done)
    assert context.heartbeats[-1]["frames_total"] == 6


def test_cancel_stops_face_detect(tmp_path: Path, demo_video: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(video_task, "HEARTBEAT_INTERVAL", 0.0)
    context = make_context(tmp_path, sample_fps=10.0)
    # The first heartbeat comes before any frame, the next ones after each frame.
    context.cancel_after = 3
    with pytest.raises(TaskCancelled):
        face_detect.handle(task(str(demo_video)), context)
    assert len(context.heartbeats) == 4
    assert context.heartbeats[-1]["frames_done"] == 3
    assert not (tmp_path / "media-1" / "faces.json").exists()
    crops = list((tmp_path / "media-1" / "faces").iterdir())
    assert len(crops) == 6


def test_gallery_names_the_astronaut(tmp_path: Path, demo_video: Path) -> None:
    astronaut, hopper = load_demo_photos()
    for name, photo in (("Eileen Collins", astronaut), ("Grace Hopper", hopper)):
        folder = tmp_path / "gallery" / "user-7" / name
        folder.mkdir(parents=True)
        cv2.imwrite(str(folder / "1.jpg"), photo)
    context = make_context(tmp_path / "store", gallery_root=str(tmp_path / "gallery"), sample_fps=1.0)
    _, recognized = run_pipeline(str(demo_video), context, user_uuid="user-7")
    assert recognized["people_count"] == 2
    assert sorted(match["name"] for match in recognized["matches"]) == ["Eileen Collins", "Grace Hopper"]
    assert all(match["score"] < 0.5 for match in recognized["matches"])

    other_user = make_context(tmp_path / "store2", gallery_root=str(tmp_path / "gallery"), sample_fps=1.0)
    _, unknown = run_pipeline(str(demo_video), other_user, user_uuid="user-8")
    assert unknown["matches"] == []


def test_video_01_people_in_range(tmp_path: Path, media_dir: Path) -> None:
    context = make_context(tmp_path, sample_fps=1.0)
    detected, recognized = run_pipeline(str(media_dir / "video_01.mp4"), context)
    assert detected["frames_sampled"] == 3
    assert detected["frames_with_faces"] == 3
    assert 9 <= detected["face_count"] <= 18
    assert 4 <= recognized["people_count"] <= 6


def test_rotated_clip_finds_faces(tmp_path: Path, media_dir: Path) -> None:
    context = make_context(tmp_path, sample_fps=0.5)
    detected = face_detect.handle(task(str(media_dir / "new_face_video-90.mp4")), context)
    assert detected["video"]["rotation"] == 90
    assert (detected["video"]["width"], detected["video"]["height"]) == (640, 480)
    assert detected["frames_sampled"] == 9
    # Faces are in the first 11 seconds of the clip; the rest shows the landscape.
    assert detected["frames_with_faces"] >= 5


def test_text_clip_completes_with_zero_faces(tmp_path: Path, media_dir: Path) -> None:
    context = make_context(tmp_path)
    detected, recognized = run_pipeline(str(media_dir / "text-test-video-detection.avi"), context)
    assert detected["face_count"] == 0
    assert detected["frames_sampled"] >= 1
    assert recognized["people_count"] == 0
    assert recognized["people"] == []
    assert Path(recognized["contact_sheet_url"]).is_file()


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("video_01_invalid.mp4", "corrupt or truncated"),
        ("test5-noaudio-novideo.mkv", "neither a video nor an audio stream"),
        ("video_02_audio_only.mp4", "audio only"),
        ("no-such-upload.mp4", "file not found"),
    ],
)
def test_bad_uploads_fail_permanently(tmp_path: Path, media_dir: Path, name: str, problem: str) -> None:
    context = make_context(tmp_path)
    with pytest.raises(PermanentError) as caught:
        face_detect.handle(task(str(media_dir / name)), context)
    assert name in str(caught.value)
    assert problem in str(caught.value)
    assert not (tmp_path / "media-1").exists()


@pytest.mark.parametrize(
    ("task_input", "problem"),
    [
        ({"previous": None}, "expected an object with a 'workflow' object"),
        (task("/x.mp4", media_uuid="../escape"), "invalid media_uuid '../escape'"),
        (task("/x.mp4", media_uuid=""), "invalid media_uuid ''"),
        (task(""), "invalid video_url ''"),
        ({"workflow": {"media_uuid": "m", "user_uuid": 5, "video_url": "/x.mp4"}}, "invalid user_uuid 5"),
    ],
)
def test_invalid_input_rejected(tmp_path: Path, task_input: dict, problem: str) -> None:
    with pytest.raises(PermanentError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        face_detect.handle(task_input, make_context(tmp_path))


def test_face_recognize_needs_face_detect_result(tmp_path: Path) -> None:
    context = make_context(tmp_path)
    with pytest.raises(PermanentError, match="expected FaceDetect's result with 'faces_url'"):
        face_recognize.handle(task("/x.mp4", previous=None), context)
    with pytest.raises(PermanentError, match="faces.json: file not found"):
        face_recognize.handle(task("/x.mp4", previous={"faces_url": str(tmp_path / "faces.json")}), context)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(PermanentError, match="broken.json: is not valid JSON"):
        face_recognize.handle(task("/x.mp4", previous={"faces_url": str(broken)}), context)


def test_undecodable_crop_is_permanent(tmp_path: Path) -> None:
    crop = tmp_path / "crop.jpg"
    crop.write_bytes(b"not a jpeg")
    faces = tmp_path / "faces.json"
    faces.write_text(json.dumps({"faces": [{"id": "1", "time": 0, "crop_url": str(crop), "crop_box": [0, 0, 5, 5]}]}))
    with pytest.raises(PermanentError, match="crop.jpg: face crop cannot be decoded"):
        face_recognize.handle(task("/x.mp4", previous={"faces_url": str(faces)}), make_context(tmp_path))


@pytest.mark.stubbed
def test_s3_video_and_s3_results(tmp_path: Path, demo_video: Path) -> None:
    """Reads the video from S3 and writes results there, through moto's in-process S3 mock
    because the tests have no real bucket. No network is used."""
    moto = pytest.importorskip("moto")
    with moto.mock_aws():
        import boto3

        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="uploads")
        s3.upload_file(str(demo_video), "uploads", "in/demo.mp4")
        context = make_context("s3://uploads/results", sample_fps=1.0)
        detected, recognized = run_pipeline("s3://uploads/in/demo.mp4", context)

        assert detected["faces_url"] == "s3://uploads/results/media-1/faces.json"
        assert detected["face_count"] == 6
        assert recognized["people_count"] == 2
        keys = {item["Key"] for item in s3.list_objects_v2(Bucket="uploads", Prefix="results/")["Contents"]}
        assert "results/media-1/people.json" in keys
        assert "results/media-1/contact_sheet.png" in keys
        assert sum(key.startswith("results/media-1/faces/") for key in keys) == 6
        sheet = s3.get_object(Bucket="uploads", Key="results/media-1/contact_sheet.png")["Body"].read()
        assert cv2.imdecode(np.frombuffer(sheet, np.uint8), cv2.IMREAD_COLOR) is not None

        with pytest.raises(PermanentError, match="s3://uploads/in/missing.mp4: object not found"):
            face_detect.handle(task("s3://uploads/in/missing.mp4"), context)


def test_expected_samples_without_frame_count(media_dir: Path) -> None:
    from workers.video.probe import probe_video

    webm = probe_video(media_dir / "vp8_opus.webm")
    # WebM stores no frame count, so the estimate comes from the duration.
    assert webm.frame_count == 0
    assert face_detect.expected_samples(webm, 2.0) == 3
    assert face_detect.expected_samples(probe_video(media_dir / "video_01.mp4"), 2.0) == 6
