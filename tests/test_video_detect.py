"""Tests of detection, embeddings, clustering, the gallery and the contact sheet.

They run on the real test clips and on the demo video built from packaged photos.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from workers.video.cluster import centroid, cluster_embeddings
from workers.video.contact_sheet import LABEL_WIDTH, MAX_FACES_PER_ROW, THUMBNAIL, encode_png, render_contact_sheet
from workers.video.demo_video import build_demo_video, load_demo_photos
from workers.video.detect import Detection, FaceDetector, crop_face
from workers.video.embed import embed_face
from workers.video.frames import SampledFrame, sample_frames
from workers.video.gallery import best_match, load_gallery
from workers.video.probe import probe_video


@pytest.fixture(scope="module")
def demo_frames(tmp_path_factory: pytest.TempPathFactory) -> list[SampledFrame]:
    path = build_demo_video(tmp_path_factory.mktemp("demo") / "demo.mp4", seconds=2.0, fps=10)
    return list(sample_frames(path, probe_video(path), sample_fps=2.0, max_side=960))


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(min_face_size=20)


def _embed_all(frames: list[SampledFrame], detector: FaceDetector) -> tuple[list[np.ndarray], list[int]]:
    """Embed every face and return the embeddings with each face's row (0 top, 1 bottom)."""
    embeddings, rows = [], []
    for frame in frames:
        for detection in detector.detect(frame.scaled, frame.scale):
            crop, box = crop_face(frame.image, detection)
            embeddings.append(embed_face(crop, box))
            rows.append(0 if detection.box[1] < frame.image.shape[0] / 2 else 1)
    return embeddings, rows


def test_demo_frames_have_two_faces(demo_frames: list[SampledFrame], detector: FaceDetector) -> None:
    assert len(demo_frames) == 4
    for frame in demo_frames:
        detections = detector.detect(frame.scaled, frame.scale)
        assert len(detections) == 2, f"frame {frame.index}"
        for detection in detections:
            x, y, w, h = detection.box
            assert 0 <= x
            assert x + w <= 640
            assert 0 <= y
            assert y + h <= 480
            assert detection.confidence >= 0.9
            assert len(detection.keypoints) == 5


def test_video_01_finds_four_to_six_faces(media_dir: Path, detector: FaceDetector) -> None:
    path = media_dir / "video_01.mp4"
    frames = list(sample_frames(path, probe_video(path), sample_fps=1.0, max_side=960))
    counts = [len(detector.detect(frame.scaled, frame.scale)) for frame in frames]
    assert len(counts) == 3
    # Five people face the camera; one face is hidden behind a phone.
    assert all(3 <= count <= 6 for count in counts), counts
    assert max(counts) >= 4, counts


def test_detection_in_scaled_frame_maps_back(media_dir: Path, detector: FaceDetector) -> None:
    path = media_dir / "video_01.mp4"
    frame = next(sample_frames(path, probe_video(path), sample_fps=1.0, max_side=960))
    full = sorted(face.box for face in detector.detect(frame.image))
    large = cv2.resize(frame.image, (1280, 960))
    mapped = sorted(face.box for face in detector.detect(large, scale=2.0))
    assert len(mapped) == len(full)
    for a, b in zip(full, mapped):
        assert np.abs(np.subtract(a, b)).max() <= 6


def test_text_frame_has_no_faces(media_dir: Path, detector: FaceDetector) -> None:
    path = media_dir / "text-test-video-detection.avi"
    frame = next(sample_frames(path, probe_video(path), sample_fps=2.0, max_side=960))
    assert detector.detect(frame.scaled, frame.scale) == []


def test_detector_rejects_tiny_min_face_size() -> None:
    with pytest.raises(ValueError, match="min_face_size must be at least 12"):
        FaceDetector(min_face_size=8)


def test_crop_face_keeps_box_inside() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    detection = Detection(box=(600, 10, 40, 50), confidence=0.99, keypoints=((0, 0),) * 5)
    crop, (x, y, w, h) = crop_face(image, detection)
    assert (w, h) == (40, 50)
    assert 0 <= x
    assert x + w <= crop.shape[1]
    assert 0 <= y
    assert y + h <= crop.shape[0]

    big = Detection(box=(100, 100, 300, 300), confidence=0.99, keypoints=((0, 0),) * 5)
    crop, box = crop_face(image, big, max_side=128)
    assert max(crop.shape[:2]) == 128
    assert box[2] < 128


def test_embeddings_separate_two_people(demo_frames: list[SampledFrame], detector: FaceDetector) -> None:
    embeddings, rows = _embed_all(demo_frames, detector)
    assert len(embeddings) == 8
    assert all(embedding.shape == (128,) for embedding in embeddings)
    same, different = [], []
    for i in range(len(embeddings)):
        for j in range(i + 1, len(embeddings)):
            distance = float(np.linalg.norm(embeddings[i] - embeddings[j]))
            (same if rows[i] == rows[j] else different).append(distance)
    # Measured: same person up to about 0.1 apart, the two people 0.62 to 0.66 apart. Both
    # sides keep a margin from the clustering distance of 0.55.
    assert max(same) < 0.45
    assert min(different) > 0.6

    groups = cluster_embeddings(np.array(embeddings), 0.55)
    assert len(groups) == 2
    for group in groups:
        assert len({rows[i] for i in group}) == 1


def test_cluster_embeddings_edge_cases() -> None:
    assert cluster_embeddings(np.zeros((0, 128)), 0.55) == []
    assert cluster_embeddings(np.ones((1, 128)), 0.55) == [[0]]

    rng = np.random.default_rng(7)
    a = rng.normal(0, 0.01, (3, 128))
    b = rng.normal(0, 0.01, (5, 128)) + 1.0
    points = np.vstack([a, b])
    assert cluster_embeddings(points, 0.55) == [[3, 4, 5, 6, 7], [0, 1, 2]]
    # A distance above the gap between the groups merges them.
    assert len(cluster_embeddings(points, 50.0)) == 1
    assert centroid(b) == pytest.approx(b.mean(axis=0))


def test_cluster_never_merges_faces_of_one_frame() -> None:
    rng = np.random.default_rng(11)
    points = rng.normal(0, 0.01, (4, 128))
    # Without frames, four near-identical faces form one group.
    assert cluster_embeddings(points, 0.55) == [[0, 1, 2, 3]]
    # Faces 0 and 1 share frame 5, so they must end up in different groups.
    groups = cluster_embeddings(points, 0.55, frames=[5, 5, 6, 7])
    assert len(groups) >= 2
    assert not any({0, 1} <= set(group) for group in groups)
    assert sorted(index for group in groups for index in group) == [0, 1, 2, 3]


def test_gallery_matches_known_face(tmp_path: Path, demo_frames: list[SampledFrame], detector: FaceDetector) -> None:
    astronaut, _ = load_demo_photos()
    person_folder = tmp_path / "user-1" / "Eileen Collins"
    person_folder.mkdir(parents=True)
    cv2.imwrite(str(person_folder / "portrait.jpg"), astronaut)
    (person_folder / "notes.txt").write_text("not a photo")
    cv2.imwrite(str(person_folder / "blank.png"), np.zeros((100, 100, 3), np.uint8))

    gallery = load_gallery(str(tmp_path), "user-1", detector)
    assert [entry.name for entry in gallery] == ["Eileen Collins"]

    embeddings, rows = _embed_all(demo_frames[:1], detector)
    by_row = dict(zip(rows, embeddings))
    match = best_match(by_row[0], gallery, 0.5)
    assert match is not None
    assert match.name == "Eileen Collins"
    assert match.distance < 0.5
    assert best_match(by_row[1], gallery, 0.5) is None


def test_gallery_absent_for_unknown_user(tmp_path: Path, detector: FaceDetector) -> None:
    assert load_gallery(str(tmp_path), "nobody", detector) == []
    assert load_gallery(None, "user-1", detector) == []
    assert load_gallery(str(tmp_path), None, detector) == []
    assert load_gallery(str(tmp_path), "../etc", detector) == []


def test_contact_sheet_has_row_per_person() -> None:
    face = np.full((120, 120, 3), 200, np.uint8)
    rows = [("person_1", [(face, (20, 20, 80, 80))] * 3), ("Eileen", [(face, (20, 20, 80, 80))] * 15)]
    sheet = render_contact_sheet(rows)
    assert sheet.shape == (2 * THUMBNAIL, LABEL_WIDTH + MAX_FACES_PER_ROW * THUMBNAIL, 3)
    # Row one has three thumbnails, then white background.
    assert sheet[THUMBNAIL // 2, LABEL_WIDTH + THUMBNAIL].tolist() == [200, 200, 200]
    assert sheet[THUMBNAIL // 2, LABEL_WIDTH + 4 * THUMBNAIL].tolist() == [255, 255, 255]
    decoded = cv2.imdecode(np.frombuffer(encode_png(sheet), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == sheet.shape

    empty = render_contact_sheet([])
    assert empty.shape[0] == THUMBNAIL
