"""The VideoProcessing pipeline through real forked workers: FaceDetect, then FaceRecognize."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from worker_harness import (
    attrs_of,
    diag_type,
    endpoint,  # noqa: F401 - pytest fixture
    endpoint_server,  # noqa: F401 - pytest fixture used by endpoint
    make_config,
    make_farm,
    pipeline,
)

from workers.config import RetryPolicy
from workers.video.demo_video import build_demo_video

pytestmark = pytest.mark.slow

TYPES = (
    diag_type("FaceDetect", start_to_close_timeout=300, heartbeat_timeout=30, retry=RetryPolicy(max_failures=1, timeouts=(300,))),
    diag_type("FaceRecognize", start_to_close_timeout=300, heartbeat_timeout=30, retry=RetryPolicy(max_failures=1, timeouts=(300,))),
)
WORKFLOWS = (pipeline("VideoProcessing", "FaceDetect", "FaceRecognize"),)


@pytest.fixture
def farm(endpoint, tmp_path: Path):  # noqa: F811 - the fixture imported above
    config = make_config(tmp_path, TYPES, WORKFLOWS)
    farm = make_farm(endpoint, config)
    try:
        yield farm
    finally:
        farm.close()


def test_demo_video_runs_both_steps(farm, tmp_path):
    video = build_demo_video(tmp_path / "demo.mp4")
    run_id = farm.swf.start("VideoProcessing", "media-demo", {"media_uuid": "media-demo", "user_uuid": None, "video_url": str(video)})
    farm.decider()
    farm.activity_worker()

    summary = farm.closed.wait_for("media-demo", timeout=300)

    assert summary["status"] == "completed", summary
    detect, recognize = summary["result"]["steps"]
    assert detect["activity_id"] == "FaceDetect-1"
    assert recognize["activity_id"] == "FaceRecognize-1"
    scheduled = attrs_of(farm.swf.history("media-demo", run_id), "ActivityTaskScheduled")
    second_input = json.loads(scheduled[1]["input"])
    assert second_input["previous"] == detect["result"]
    assert detect["result"]["face_count"] > 0
    assert recognize["result"]["face_count"] == detect["result"]["face_count"]
    assert recognize["result"]["people_count"] >= 1


def test_corrupt_upload_fails_for_good(farm, media_dir):
    video = media_dir / "video_01_invalid.mp4"
    farm.swf.start("VideoProcessing", "media-bad", {"media_uuid": "media-bad", "user_uuid": None, "video_url": str(video)})
    farm.decider()
    farm.activity_worker()

    summary = farm.closed.wait_for("media-bad", timeout=300)

    assert summary["status"] == "failed"
    assert summary["reason"].startswith("FaceDetect failed with a permanent error")
    assert summary["details"]["retry"] is False
