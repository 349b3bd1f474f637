"""Writing people.json and the contact sheet, and summarising them for the activity result."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from workers.errors import PermanentError
from workers.storage import Storage
from workers.video.contact_sheet import encode_png, render_contact_sheet

# The result lists at most this many people, so that it stays far below SWF's 32 KB limit;
# people.json has all of them.
MAX_PEOPLE_IN_RESULT = 50


@dataclass(frozen=True)
class PersonMatch:
    """A gallery name given to a person, with the recognizer's distance or similarity."""

    name: str
    score: float


def read_faces_document(previous: Any, storage: Storage) -> dict[str, Any]:
    """Load faces.json named by FaceDetect's result; raise PermanentError when it is unusable."""
    if not isinstance(previous, dict) or not isinstance(previous.get("faces_url"), str):
        raise PermanentError(
            f"invalid previous result {str(previous)[:200]!r}: expected FaceDetect's result with 'faces_url'"
        )
    faces_url = previous["faces_url"]
    try:
        document = json.loads(storage.get_bytes(faces_url))
    except ValueError as error:
        raise PermanentError(f"{faces_url}: is not valid JSON ({error})") from error
    if not isinstance(document, dict) or not isinstance(document.get("faces"), list):
        raise PermanentError(f"{faces_url}: has no 'faces' list; it was not written by FaceDetect")
    return document


def read_crop(storage: Storage, face: dict[str, Any]) -> tuple[bytes, np.ndarray]:
    """Return a face crop's encoded bytes and decoded BGR image."""
    crop_url = face["crop_url"]
    data = storage.get_bytes(crop_url)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise PermanentError(f"{crop_url}: face crop cannot be decoded as an image")
    return data, image


def write_people(
    storage: Storage,
    media_uuid: str,
    faces: Sequence[dict[str, Any]],
    crops: Sequence[np.ndarray],
    groups: Sequence[Sequence[int]],
    matches: Sequence[PersonMatch | None],
    settings: dict[str, Any],
    started: float,
) -> dict[str, Any]:
    """Write people.json and contact_sheet.png for ``groups`` of face indices; return the summary.

    ``matches`` has one entry per group. ``settings`` (recognizer name and thresholds) is
    copied into people.json.
    """
    people: list[dict[str, Any]] = []
    sheet_rows = []
    for number, (members, match) in enumerate(zip(groups, matches), start=1):
        member_faces = [faces[i] for i in members]
        person_id = f"person_{number}"
        people.append(
            {
                "id": person_id,
                "name": match.name if match else None,
                "match_score": match.score if match else None,
                "face_count": len(members),
                "first_time": min(face["time"] for face in member_faces),
                "last_time": max(face["time"] for face in member_faces),
                "face_ids": [face["id"] for face in member_faces],
                "crop_urls": [face["crop_url"] for face in member_faces],
            }
        )
        sheet_rows.append((match.name if match else person_id, [(crops[i], faces[i]["crop_box"]) for i in members]))

    sheet_url = storage.put_bytes(f"{media_uuid}/contact_sheet.png", encode_png(render_contact_sheet(sheet_rows)))
    document = {"media_uuid": media_uuid, **settings, "contact_sheet_url": sheet_url, "people": people}
    people_url = storage.put_bytes(f"{media_uuid}/people.json", json.dumps(document, indent=1).encode())

    named = [{"person": p["id"], "name": p["name"], "score": p["match_score"]} for p in people if p["name"]]
    return {
        "media_uuid": media_uuid,
        "people_count": len(people),
        "face_count": len(faces),
        "people_url": people_url,
        "contact_sheet_url": sheet_url,
        "people": [{"id": p["id"], "name": p["name"], "face_count": p["face_count"]} for p in people][
            :MAX_PEOPLE_IN_RESULT
        ],
        "matches": named[:MAX_PEOPLE_IN_RESULT],
        "recognizer": settings.get("recognizer"),
        "seconds": round(time.monotonic() - started, 3),
    }
