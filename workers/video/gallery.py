"""Known people of one user, read from ``<gallery_root>/<user_uuid>/<name>/*.jpg``.

Each photo's largest face is embedded with the same detector and model as the video
faces. A person matches the gallery name whose closest photo is nearest to the person's
mean embedding, when that distance is under the configured threshold.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from workers.video.detect import FaceDetector
from workers.video.embed import embed_face

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class GalleryEntry:
    name: str
    photo: str
    embedding: np.ndarray


@dataclass(frozen=True)
class Match:
    name: str
    distance: float


def load_gallery(gallery_root: str | None, user_uuid: str | None, detector: FaceDetector) -> list[GalleryEntry]:
    """Embed the known faces of ``user_uuid``; an absent folder gives an empty gallery.

    Photos that cannot be read or show no face are skipped with a warning.
    """
    if not gallery_root or not user_uuid:
        return []
    if "/" in user_uuid or user_uuid in (".", ".."):
        log.warning("user_uuid %r cannot be a folder name; skipping the gallery", user_uuid)
        return []
    folder = Path(gallery_root) / user_uuid
    if not folder.is_dir():
        log.info("no gallery folder %s for user %s", folder, user_uuid)
        return []

    entries = []
    for person_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        for photo in sorted(person_folder.iterdir()):
            if photo.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            image = cv2.imread(str(photo))
            if image is None:
                log.warning("gallery photo %s cannot be read as an image; skipping it", photo)
                continue
            faces = detector.detect(image)
            if not faces:
                log.warning("no face found in gallery photo %s; skipping it", photo)
                continue
            largest = max(faces, key=lambda face: face.box[2] * face.box[3])
            entries.append(GalleryEntry(person_folder.name, str(photo), embed_face(image, largest.box)))
    log.info("loaded %d gallery photos for user %s from %s", len(entries), user_uuid, folder)
    return entries


def best_match(embedding: np.ndarray, gallery: list[GalleryEntry], max_distance: float) -> Match | None:
    """Return the gallery name nearest to ``embedding`` if it is within ``max_distance``."""
    best: Match | None = None
    for entry in gallery:
        distance = float(np.linalg.norm(embedding - entry.embedding))
        if best is None or distance < best.distance:
            best = Match(entry.name, round(distance, 4))
    if best is None or best.distance > max_distance:
        return None
    return best
