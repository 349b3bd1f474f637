"""A PNG contact sheet with one row of face thumbnails per person."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

THUMBNAIL = 96
LABEL_WIDTH = 160
MAX_FACES_PER_ROW = 10
BACKGROUND = (255, 255, 255)
TEXT_COLOR = (40, 40, 40)


def _thumbnail(image: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """Square thumbnail centred on the face box, with a little of its surroundings."""
    height, width = image.shape[:2]
    x, y, w, h = box
    side = int(max(w, h) * 1.3)
    left = max(0, min(width - 1, x + w // 2 - side // 2))
    top = max(0, min(height - 1, y + h // 2 - side // 2))
    region = image[top : top + side, left : left + side]
    if region.size == 0:
        region = image
    return cv2.resize(region, (THUMBNAIL, THUMBNAIL), interpolation=cv2.INTER_AREA)


def render_contact_sheet(rows: Sequence[tuple[str, Sequence[tuple[np.ndarray, Sequence[int]]]]]) -> np.ndarray:
    """Draw one row per person: a label, then up to MAX_FACES_PER_ROW face thumbnails.

    ``rows`` contains (label, faces) pairs, where each face is a BGR crop and the face box in
    it. Faces past MAX_FACES_PER_ROW are left out, and the label gives the full count.
    """
    row_count = max(1, len(rows))
    width = LABEL_WIDTH + MAX_FACES_PER_ROW * THUMBNAIL
    sheet = np.full((row_count * THUMBNAIL, width, 3), BACKGROUND, dtype=np.uint8)
    if not rows:
        cv2.putText(sheet, "no faces found", (10, THUMBNAIL // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6, TEXT_COLOR, 1)
        return sheet

    for row_index, (label, faces) in enumerate(rows):
        top = row_index * THUMBNAIL
        lines = [label, f"{len(faces)} face" if len(faces) == 1 else f"{len(faces)} faces"]
        for line_index, line in enumerate(lines):
            position = (8, top + 30 + 24 * line_index)
            cv2.putText(sheet, line[:18], position, cv2.FONT_HERSHEY_SIMPLEX, 0.5, TEXT_COLOR, 1, cv2.LINE_AA)
        for face_index, (image, box) in enumerate(faces[:MAX_FACES_PER_ROW]):
            left = LABEL_WIDTH + face_index * THUMBNAIL
            sheet[top : top + THUMBNAIL, left : left + THUMBNAIL] = _thumbnail(image, box)
    return sheet


def encode_png(image: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("OpenCV failed to encode the contact sheet as PNG")
    return buffer.tobytes()
