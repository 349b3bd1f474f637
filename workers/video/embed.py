"""128-d face embeddings with dlib's ResNet model from the face_recognition_models package.

dlib aligns each face with its 5-point landmark model, then maps the aligned 150x150 chip
to a 128-d vector. dlib reports that the same person gives vectors less than 0.6 apart.
"""

from __future__ import annotations

import functools

import cv2
import dlib
import face_recognition_models
import numpy as np

EMBEDDER_NAME = "dlib_face_recognition_resnet_model_v1"


@functools.lru_cache(maxsize=1)
def _models() -> tuple[dlib.shape_predictor, dlib.face_recognition_model_v1]:
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
    encoder = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())
    return predictor, encoder


def embed_face(image_bgr: np.ndarray, box: tuple[int, int, int, int], jitter: int = 0) -> np.ndarray:
    """Return the 128-d embedding of the face at ``box`` (x, y, width, height) in ``image_bgr``.

    ``jitter`` > 0 averages that many randomly shifted chips: slower, slightly more stable.
    """
    predictor, encoder = _models()
    rgb = np.ascontiguousarray(cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB))
    x, y, w, h = (int(v) for v in box)
    shape = predictor(rgb, dlib.rectangle(x, y, x + w, y + h))
    descriptor = encoder.compute_face_descriptor(rgb, shape, jitter)
    return np.asarray(descriptor, dtype=np.float64)
