"""The video pipeline end to end on real clips: a real manager, the embedded endpoint, real video.

One manager serves every clip of the module, so the bad uploads run beside the good
ones and the test shows that they disturb nothing else.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from manager import submit
from manager_harness import ManagerProcess, embedded_endpoint_config
from workers.client import make_swf_client
from workers.config_loader import load_config

pytestmark = pytest.mark.slow

WORKFLOW_TIMEOUT = 600.0

# Clips of the same group of 4 to 6 people facing the camera, in several codecs and containers.
GROUP_CLIPS = ["video_01.mp4", "h264_aac.mp4", "vp8_opus.webm", "xvid_aac.avi"]
# Uploads that no retry can fix: each must fail its own workflow with "retry": false.
BROKEN_UPLOADS = {
    "video_01_invalid.mp4": "corrupt",
    "video_02_audio_only.mp4": "audio only",
    "test5-noaudio-novideo.mkv": "neither a video nor an audio stream",
}


@pytest.fixture(scope="module")
def running_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    folder = tmp_path_factory.mktemp("pipeline")
    storage = folder / "storage"
    manager = ManagerProcess(
        folder,
        embedded_endpoint_config(storage),
        arguments=("--workers", "2"),
    )
    try:
        manager.start()
        yield manager
        code = manager.stop()
        assert code == 0, manager.log_tail()
        assert manager.leftover_processes() == []
    finally:
        manager.kill_everything()


@pytest.fixture(scope="module")
def outcomes(running_manager: ManagerProcess, media_dir_path: Path) -> dict[str, dict[str, Any]]:
    """Submit every clip at once, then follow each workflow until it closes."""
    config = load_config(running_manager.config_path)
    client = make_swf_client(config, running_manager.state["endpoint_url"])
    clips = [*GROUP_CLIPS, "new_face_video-90.mp4", "text-test-video-detection.avi", *BROKEN_UPLOADS]
    runs = {}
    for clip in clips:
        media_uuid = str(uuid.uuid4())
        workflow_input = submit.build_input(str(media_dir_path / clip), media_uuid, None, None)
        runs[clip] = (media_uuid, submit.start_workflow(client, config, "VideoProcessing", media_uuid, workflow_input))

    results = {}
    for clip, (media_uuid, run_id) in runs.items():
        closing = submit.follow(client, config.swf.domain, media_uuid, run_id, io.StringIO(), timeout=WORKFLOW_TIMEOUT)
        results[clip] = closing
    return results


@pytest.fixture(scope="module")
def media_dir_path() -> Path:
    from conftest import SHARED_MEDIA

    if not SHARED_MEDIA.is_dir():
        pytest.skip(f"test media folder {SHARED_MEDIA} not found")
    return SHARED_MEDIA


def completed_steps(closing: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert closing["eventType"] == "WorkflowExecutionCompleted", closing
    result = json.loads(closing["workflowExecutionCompletedEventAttributes"]["result"])
    return {step["activity"]: step["result"] for step in result["steps"]}


@pytest.mark.parametrize("clip", GROUP_CLIPS)
def test_group_clip_finds_people(outcomes: dict[str, dict[str, Any]], clip: str) -> None:
    steps = completed_steps(outcomes[clip])
    detect = steps["FaceDetect"]
    recognize = steps["FaceRecognize"]

    assert detect["frames_sampled"] > 0
    # The people face the camera throughout, so most sampled frames have faces.
    assert detect["frames_with_faces"] >= 0.5 * detect["frames_sampled"]
    assert 3 <= recognize["people_count"] <= 8
    assert Path(recognize["contact_sheet_url"]).is_file()
    assert Path(recognize["people_url"]).is_file()


def test_rotated_clip_is_read_upright(outcomes: dict[str, dict[str, Any]]) -> None:
    steps = completed_steps(outcomes["new_face_video-90.mp4"])

    # Faces are only found when the rotation metadata is honoured.
    assert steps["FaceDetect"]["frames_with_faces"] >= 0.5 * steps["FaceDetect"]["frames_sampled"]
    # One woman fills most frames, from arm's length to a close-up, with bystanders far
    # behind her. The close-ups and half-covered faces split off into extra groups, so
    # the count is a range, not exactly one.
    assert 1 <= steps["FaceRecognize"]["people_count"] <= 4


def test_text_clip_has_no_faces(outcomes: dict[str, dict[str, Any]]) -> None:
    steps = completed_steps(outcomes["text-test-video-detection.avi"])

    assert steps["FaceDetect"]["face_count"] == 0
    assert steps["FaceRecognize"]["people_count"] == 0


@pytest.mark.parametrize("clip", sorted(BROKEN_UPLOADS))
def test_broken_upload_fails_without_retry(outcomes: dict[str, dict[str, Any]], clip: str) -> None:
    closing = outcomes[clip]

    assert closing["eventType"] == "WorkflowExecutionFailed", closing
    attributes = closing["workflowExecutionFailedEventAttributes"]
    assert clip in attributes["reason"] or "FaceDetect" in attributes["reason"]
    details = json.loads(attributes["details"])
    assert details["retry"] is False
    assert BROKEN_UPLOADS[clip] in json.dumps(details).lower() or BROKEN_UPLOADS[clip] in attributes["reason"].lower()
