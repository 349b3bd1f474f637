"""FaceRecognize on AWS Rekognition, chosen with ``video.recognizer = "rekognition"``.

Each user has a face collection named ``<rekognition_collection_prefix><user_uuid>``. When
the collection is first created, the user's gallery photos are indexed into it with
ExternalImageId ``gallery:<hex of the name>``. Then each face crop of the video is searched
in the collection (SearchFacesByImage):

- a hit on a face indexed earlier from this video puts the crop in that face's person;
- a hit on a gallery face names the person;
- otherwise the crop is indexed (IndexFaces) as ``media:<media_uuid>:<face id>`` and starts
  a new person.

The faces indexed from this video are deleted from the collection at the end, so the
collection keeps only the gallery.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from workers.errors import PermanentError
from workers.logs import log_context
from workers.storage import Storage
from workers.video.gallery import IMAGE_SUFFIXES
from workers.video.people import PersonMatch, read_crop, read_faces_document, write_people
from workers.video.task import Heartbeats, parse_workflow_input

log = logging.getLogger(__name__)

# Minimum similarity, in percent, for SearchFacesByImage to report a match. AWS's default is 80.
FACE_MATCH_THRESHOLD = 90.0
# Candidates per search: faces of other people may rank above this video's own faces.
MAX_CANDIDATES = 10
# DeleteFaces accepts at most 4096 face ids per call.
DELETE_BATCH = 4096
GALLERY_PREFIX = "gallery:"
MEDIA_PREFIX = "media:"

_clients: dict[tuple[int, str], Any] = {}


def make_client(region: str) -> Any:
    """Return this process's Rekognition client for ``region``, built on first use after a fork."""
    key = (os.getpid(), region)
    if key not in _clients:
        import boto3

        _clients[key] = boto3.client("rekognition", region_name=region)
    return _clients[key]


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def collection_id(prefix: str, user_uuid: str | None) -> str:
    # Rekognition collection ids allow only [a-zA-Z0-9_.-]. Media without a user share one collection.
    owner = user_uuid or "anonymous"
    safe = "".join(character if character.isalnum() or character in "_.-" else "_" for character in owner)
    return f"{prefix}{safe}"[:255]


def gallery_external_id(name: str) -> str:
    return GALLERY_PREFIX + name.encode().hex()


def gallery_name(external_id: str) -> str:
    return bytes.fromhex(external_id[len(GALLERY_PREFIX) :]).decode()


def ensure_collection(client: Any, collection: str, gallery_root: str | None, user_uuid: str | None) -> int:
    """Create ``collection`` when missing and index the user's gallery into it.

    Returns the number of gallery faces indexed (0 when the collection already existed).
    """
    try:
        client.create_collection(CollectionId=collection)
    except Exception as error:
        if _error_code(error) == "ResourceAlreadyExistsException":
            return 0
        if _error_code(error) == "AccessDeniedException":
            raise PermanentError(
                f"Rekognition denied CreateCollection on {collection!r}: grant the worker's IAM role "
                "rekognition:CreateCollection, IndexFaces, SearchFacesByImage and DeleteFaces"
            ) from error
        raise
    log.info("created Rekognition collection %s", collection)
    if not gallery_root or not user_uuid:
        return 0
    # TODO: photos added to the gallery after the collection was created are not indexed.
    folder = Path(gallery_root) / user_uuid
    indexed = 0
    for person_folder in sorted(p for p in folder.glob("*") if p.is_dir()):
        for photo in sorted(person_folder.iterdir()):
            if photo.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            response = client.index_faces(
                CollectionId=collection,
                Image={"Bytes": photo.read_bytes()},
                ExternalImageId=gallery_external_id(person_folder.name),
                MaxFaces=1,
                QualityFilter="AUTO",
            )
            if response.get("FaceRecords"):
                indexed += 1
            else:
                log.warning("Rekognition indexed no face from gallery photo %s", photo)
    return indexed


def _search(client: Any, collection: str, image: bytes, face_url: str) -> list[dict[str, Any]] | None:
    """Return the matches of one crop, or None when Rekognition finds no face in it."""
    try:
        response = client.search_faces_by_image(
            CollectionId=collection,
            Image={"Bytes": image},
            MaxFaces=MAX_CANDIDATES,
            FaceMatchThreshold=FACE_MATCH_THRESHOLD,
        )
    except Exception as error:
        if _error_code(error) in ("InvalidParameterException", "InvalidImageFormatException"):
            log.warning("Rekognition found no usable face in %s (%s); skipping it", face_url, _error_code(error))
            return None
        raise
    return response.get("FaceMatches", [])


def handle(task_input: dict, context: Any) -> dict:
    """Group FaceDetect's crops into people with Rekognition and return a summary."""
    media = parse_workflow_input(task_input)
    video_config = context.config.video
    storage = Storage(context.config.storage.root)
    heartbeats = Heartbeats(context)
    started = time.monotonic()

    with log_context(media_uuid=media.media_uuid, user_uuid=media.user_uuid):
        document = read_faces_document(task_input.get("previous"), storage)
        faces = document["faces"]
        client = make_client(context.config.swf.region)
        collection = collection_id(video_config.rekognition_collection_prefix, media.user_uuid)
        gallery_faces = ensure_collection(client, collection, video_config.gallery_root, media.user_uuid)
        own_prefix = f"{MEDIA_PREFIX}{media.media_uuid}:"

        crops = []
        used: list[int] = []
        groups: list[list[int]] = []
        person_of_face_id: dict[str, int] = {}
        names: dict[int, PersonMatch] = {}
        indexed_face_ids: list[str] = []
        try:
            for index, face in enumerate(faces):
                heartbeats.beat({"stage": "searching", "faces_done": index, "faces_total": len(faces)})
                data, image = read_crop(storage, face)
                matches = _search(client, collection, data, face["crop_url"])
                if matches is None:
                    continue
                crops.append(image)
                used.append(index)
                position = len(used) - 1

                own = [m for m in matches if m["Face"].get("ExternalImageId", "").startswith(own_prefix)]
                known = [m for m in matches if m["Face"].get("ExternalImageId", "").startswith(GALLERY_PREFIX)]
                if own and own[0]["Face"]["FaceId"] in person_of_face_id:
                    person = person_of_face_id[own[0]["Face"]["FaceId"]]
                    groups[person].append(position)
                else:
                    person = len(groups)
                    groups.append([position])
                    response = client.index_faces(
                        CollectionId=collection,
                        Image={"Bytes": data},
                        ExternalImageId=f"{own_prefix}{face['id']}",
                        MaxFaces=1,
                        QualityFilter="NONE",
                    )
                    for record in response.get("FaceRecords", []):
                        person_of_face_id[record["Face"]["FaceId"]] = person
                        indexed_face_ids.append(record["Face"]["FaceId"])
                if known:
                    best = max(known, key=lambda m: m["Similarity"])
                    match = PersonMatch(gallery_name(best["Face"]["ExternalImageId"]), round(best["Similarity"], 2))
                    if person not in names or match.score > names[person].score:
                        names[person] = match
        finally:
            for start in range(0, len(indexed_face_ids), DELETE_BATCH):
                batch = indexed_face_ids[start : start + DELETE_BATCH]
                try:
                    client.delete_faces(CollectionId=collection, FaceIds=batch)
                except Exception:
                    log.exception("could not delete %d faces of %s from collection %s", len(batch), media.media_uuid, collection)

        order = sorted(range(len(groups)), key=lambda g: (-len(groups[g]), groups[g][0]))
        kept_faces = [faces[i] for i in used]
        settings = {
            "recognizer": "rekognition",
            "collection": collection,
            "face_match_threshold": FACE_MATCH_THRESHOLD,
            "gallery_faces_indexed": gallery_faces,
            "faces_without_usable_face": len(faces) - len(used),
        }
        summary = write_people(
            storage,
            media.media_uuid,
            kept_faces,
            crops,
            [groups[g] for g in order],
            [names.get(g) for g in order],
            settings,
            started,
        )
        log.info(
            "Rekognition grouped %d faces into %d people", len(used), len(groups), extra={"duration": summary["seconds"]}
        )
        return summary
