"""FaceRecognize: embed FaceDetect's face crops, group them into people, match a gallery.

Output under ``<storage root>/<media_uuid>/``: ``people.json`` (each person's faces, time
span and gallery match) and ``contact_sheet.png`` (one row of faces per person). The
activity result is a small summary with both URLs. With ``video.recognizer =
"rekognition"`` the work goes to ``workers.activities.rekognition`` instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from workers.logs import log_context
from workers.storage import Storage
from workers.video.cluster import centroid, cluster_embeddings
from workers.video.detect import FaceDetector
from workers.video.embed import EMBEDDER_NAME, embed_face
from workers.video.gallery import best_match, load_gallery
from workers.video.people import PersonMatch, read_crop, read_faces_document, write_people
from workers.video.task import Heartbeats, parse_workflow_input

log = logging.getLogger(__name__)


def handle(task_input: dict, context: Any) -> dict:
    """Group the detected faces into people and return a summary of what was stored."""
    media = parse_workflow_input(task_input)
    video_config = context.config.video
    if video_config.recognizer == "rekognition":
        from workers.activities import rekognition

        return rekognition.handle(task_input, context)

    storage = Storage(context.config.storage.root)
    heartbeats = Heartbeats(context)
    started = time.monotonic()

    with log_context(media_uuid=media.media_uuid, user_uuid=media.user_uuid):
        document = read_faces_document(task_input.get("previous"), storage)
        faces = document["faces"]
        log.info("FaceRecognize started on %d faces from %s", len(faces), task_input["previous"]["faces_url"])
        heartbeats.beat({"stage": "embedding", "faces_done": 0, "faces_total": len(faces)}, force=True)

        crops: list[np.ndarray] = []
        embeddings: list[np.ndarray] = []
        for done, face in enumerate(faces, start=1):
            _, crop = read_crop(storage, face)
            crops.append(crop)
            embeddings.append(embed_face(crop, face["crop_box"]))
            heartbeats.beat({"stage": "embedding", "faces_done": done, "faces_total": len(faces)})

        matrix = np.array(embeddings) if embeddings else np.zeros((0, 128))
        groups = cluster_embeddings(matrix, video_config.cluster_distance, [face["frame"] for face in faces])

        gallery = []
        if groups and video_config.gallery_root:
            heartbeats.beat({"stage": "loading gallery"}, force=True)
            gallery = load_gallery(video_config.gallery_root, media.user_uuid, FaceDetector(video_config.min_face_size))
        matches: list[PersonMatch | None] = []
        for members in groups:
            match = best_match(centroid(matrix[members]), gallery, video_config.gallery_match_distance)
            matches.append(PersonMatch(match.name, match.distance) if match else None)

        heartbeats.beat({"stage": "writing", "people": len(groups)}, force=True)
        settings = {
            "recognizer": "dlib",
            "embedder": EMBEDDER_NAME,
            "cluster_distance": video_config.cluster_distance,
            "gallery_match_distance": video_config.gallery_match_distance,
            "gallery_photos": len(gallery),
        }
        summary = write_people(storage, media.media_uuid, faces, crops, groups, matches, settings, started)
        log.info(
            "FaceRecognize grouped %d faces into %d people",
            len(faces),
            len(groups),
            extra={"duration": summary["seconds"]},
        )
        return summary
