"""Tests of the Rekognition FaceRecognize backend.

FaceDetect runs for real on the demo video; the Rekognition API is replaced with
botocore's Stubber, because the tests have no AWS account. The stubbed replies follow the
documented shapes of CreateCollection, IndexFaces, SearchFacesByImage and DeleteFaces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import cv2
import pytest
from botocore.stub import ANY, Stubber

from workers.activities import face_detect, face_recognize, rekognition
from workers.config import Config, StorageConfig, SwfConfig, VideoConfig
from workers.errors import PermanentError
from workers.video.demo_video import build_demo_video, load_demo_photos


class RecordingContext:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.workflow_id = "wf-rek"
        self.activity_id = "act-rek"
        self.heartbeats: list[Any] = []

    def heartbeat(self, details: dict | None = None) -> None:
        self.heartbeats.append(details)


@pytest.fixture(scope="module")
def demo_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_video(tmp_path_factory.mktemp("demo") / "demo.mp4", seconds=3.0, fps=10)


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    client = boto3.client("rekognition", region_name="us-west-2")
    stubber = Stubber(client)
    monkeypatch.setattr(rekognition, "make_client", lambda region: client)
    with stubber:
        yield stubber


def make_context(tmp_path: Path, gallery_root: str | None = None) -> RecordingContext:
    video = VideoConfig(
        sample_fps=1.0, min_face_size=20, recognizer="rekognition", gallery_root=gallery_root,
        rekognition_collection_prefix="test-",
    )
    return RecordingContext(Config(swf=SwfConfig(region="us-west-2"), storage=StorageConfig(root=str(tmp_path)), video=video))


def detect(demo_video: Path, context: RecordingContext, user: str | None) -> tuple[dict, dict, list[dict]]:
    task = {"workflow": {"media_uuid": "m-rek", "user_uuid": user, "video_url": str(demo_video)}, "previous": None}
    detected = face_detect.handle(task, context)
    faces = json.loads(Path(detected["faces_url"]).read_text())["faces"]
    return {**task, "previous": detected}, detected, faces


def face_record(face_id: str, external_id: str) -> dict:
    return {"Face": {"FaceId": face_id, "ExternalImageId": external_id, "Confidence": 99.9}}


def match(face_id: str, external_id: str, similarity: float) -> dict:
    return {"Similarity": similarity, "Face": {"FaceId": face_id, "ExternalImageId": external_id}}


@pytest.mark.stubbed
def test_groups_and_names_people(tmp_path: Path, demo_video: Path, stubbed: Stubber) -> None:
    """Replies stand in for Rekognition: the astronaut matches the gallery, Hopper does not."""
    astronaut, _ = load_demo_photos()
    folder = tmp_path / "gallery" / "user-9" / "Eileen Collins"
    folder.mkdir(parents=True)
    cv2.imwrite(str(folder / "1.jpg"), astronaut)
    context = make_context(tmp_path / "store", gallery_root=str(tmp_path / "gallery"))
    task, detected, faces = detect(demo_video, context, "user-9")
    assert len(faces) == 6

    gallery_id = rekognition.gallery_external_id("Eileen Collins")
    stubbed.add_response("create_collection", {"StatusCode": 200}, {"CollectionId": "test-user-9"})
    stubbed.add_response(
        "index_faces",
        {"FaceRecords": [face_record("g-1", gallery_id)]},
        {"CollectionId": "test-user-9", "Image": ANY, "ExternalImageId": gallery_id, "MaxFaces": 1, "QualityFilter": "AUTO"},
    )
    first_face_id: dict[str, str] = {}
    indexed = []
    for face in faces:
        person = "astronaut" if face["box"][1] < 240 else "hopper"
        own = f"media:m-rek:{face['id']}"
        matches = []
        if person in first_face_id:
            matches.append(match(first_face_id[person], "media:m-rek:earlier", 99.0))
        if person == "astronaut":
            matches.append(match("g-1", gallery_id, 97.5))
        search_params = {
            "CollectionId": "test-user-9", "Image": ANY, "MaxFaces": 10, "FaceMatchThreshold": 90.0,
        }
        stubbed.add_response("search_faces_by_image", {"FaceMatches": matches}, search_params)
        if person not in first_face_id:
            first_face_id[person] = f"{person}-face"
            indexed.append(f"{person}-face")
            stubbed.add_response(
                "index_faces",
                {"FaceRecords": [face_record(f"{person}-face", own)]},
                {"CollectionId": "test-user-9", "Image": ANY, "ExternalImageId": own, "MaxFaces": 1, "QualityFilter": "NONE"},
            )
    stubbed.add_response("delete_faces", {"DeletedFaces": indexed}, {"CollectionId": "test-user-9", "FaceIds": indexed})

    result = face_recognize.handle(task, context)
    stubbed.assert_no_pending_responses()

    assert result["recognizer"] == "rekognition"
    assert result["people_count"] == 2
    assert [person["face_count"] for person in result["people"]] == [3, 3]
    assert result["matches"] == [
        {"person": result["matches"][0]["person"], "name": "Eileen Collins", "score": 97.5}
    ]
    people = json.loads(Path(result["people_url"]).read_text())
    assert people["gallery_faces_indexed"] == 1
    named = next(p for p in people["people"] if p["name"] == "Eileen Collins")
    boxes = {face["id"]: face["box"] for face in faces}
    assert all(boxes[face_id][1] < 240 for face_id in named["face_ids"])
    assert Path(result["contact_sheet_url"]).is_file()


@pytest.mark.stubbed
def test_crop_without_face_is_skipped(tmp_path: Path, demo_video: Path, stubbed: Stubber) -> None:
    """Stubbed Rekognition reports no face in every crop, as it does for a poor crop."""
    context = make_context(tmp_path)
    task, _, faces = detect(demo_video, context, None)
    stubbed.add_client_error("create_collection", "ResourceAlreadyExistsException", http_status_code=400)
    for _ in faces:
        stubbed.add_client_error(
            "search_faces_by_image", "InvalidParameterException", "There are no faces in the image", 400
        )
    result = face_recognize.handle(task, context)
    stubbed.assert_no_pending_responses()
    assert result["people_count"] == 0
    people = json.loads(Path(result["people_url"]).read_text())
    assert people["faces_without_usable_face"] == len(faces)
    assert people["collection"] == "test-anonymous"


@pytest.mark.stubbed
def test_access_denied_is_permanent(tmp_path: Path, demo_video: Path, stubbed: Stubber) -> None:
    """Stubbed Rekognition rejects the worker's credentials."""
    context = make_context(tmp_path)
    task, _, _ = detect(demo_video, context, "user-1")
    stubbed.add_client_error("create_collection", "AccessDeniedException", http_status_code=400)
    with pytest.raises(PermanentError, match="denied CreateCollection on 'test-user-1'"):
        face_recognize.handle(task, context)


def test_collection_and_gallery_ids() -> None:
    assert rekognition.collection_id("swf-", "a b/c") == "swf-a_b_c"
    assert rekognition.collection_id("swf-", None) == "swf-anonymous"
    external = rekognition.gallery_external_id("Grace Hopper")
    assert external.startswith("gallery:")
    assert " " not in external
    assert rekognition.gallery_name(external) == "Grace Hopper"
