"""FaceDetect: sample a video's frames, find faces, store face crops and faces.json.

Output under ``<storage root>/<media_uuid>/``: ``faces/<frame>_<n>.jpg`` per face and
``faces.json``, which lists the video's properties, the sampled frames and every face with
its box in the frame and in its crop. The activity result is a small summary with the URL
of faces.json.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

import cv2

from workers.logs import log_context
from workers.storage import Storage
from workers.video.detect import DETECTOR_NAME, KEYPOINT_NAMES, FaceDetector, crop_face
from workers.video.frames import frame_step, sample_frames
from workers.video.probe import VideoInfo, probe_video
from workers.video.task import Heartbeats, parse_workflow_input

log = logging.getLogger(__name__)

CROP_JPEG_QUALITY = 92


def expected_samples(info: VideoInfo, sample_fps: float) -> int:
    """Estimate how many frames will be sampled, for progress reports."""
    if info.frame_count:
        # sample_frames takes frame i for sample k when i + 0.5 >= k * step.
        return math.floor((info.frame_count - 0.5) / frame_step(info.fps, sample_fps)) + 1
    return max(1, math.ceil(info.duration * sample_fps))


def _encode_jpeg(image: Any) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, CROP_JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a face crop as JPEG")
    return buffer.tobytes()


def handle(task_input: dict, context: Any) -> dict:
    """Detect faces in the workflow's video and return a summary of what was stored."""
    media = parse_workflow_input(task_input)
    video_config = context.config.video
    storage = Storage(context.config.storage.root)
    heartbeats = Heartbeats(context)
    started = time.monotonic()

    with log_context(media_uuid=media.media_uuid, user_uuid=media.user_uuid):
        log.info("FaceDetect started on %s", media.video_url)
        detector = FaceDetector(video_config.min_face_size)
        frames: list[dict[str, Any]] = []
        faces: list[dict[str, Any]] = []

        with storage.local_copy(media.video_url) as path:
            info = probe_video(path, media.video_url)
            total = expected_samples(info, video_config.sample_fps)
            heartbeats.beat({"stage": "detecting", "frames_done": 0, "frames_total": total}, force=True)

            for frame in sample_frames(path, info, video_config.sample_fps, video_config.max_frame_side, media.video_url):
                detections = detector.detect(frame.scaled, frame.scale)
                for number, detection in enumerate(detections):
                    crop, crop_box = crop_face(frame.image, detection)
                    face_id = f"{frame.index:06d}_{number}"
                    crop_url = storage.put_bytes(f"{media.media_uuid}/faces/{face_id}.jpg", _encode_jpeg(crop))
                    faces.append(
                        {
                            "id": face_id,
                            "frame": frame.index,
                            "time": frame.time,
                            "box": list(detection.box),
                            "confidence": detection.confidence,
                            "keypoints": dict(zip(KEYPOINT_NAMES, (list(p) for p in detection.keypoints))),
                            "crop_url": crop_url,
                            "crop_box": list(crop_box),
                        }
                    )
                frames.append({"index": frame.index, "time": frame.time, "faces": len(detections)})
                heartbeats.beat(
                    {"stage": "detecting", "frames_done": len(frames), "frames_total": max(total, len(frames))}
                )

        frames_with_faces = sum(1 for frame in frames if frame["faces"])
        document = {
            "media_uuid": media.media_uuid,
            "video_url": media.video_url,
            "video": info.to_json(),
            "detector": DETECTOR_NAME,
            "sample_fps": video_config.sample_fps,
            "max_frame_side": video_config.max_frame_side,
            "min_face_size": video_config.min_face_size,
            "frames": frames,
            "faces": faces,
        }
        faces_url = storage.put_bytes(f"{media.media_uuid}/faces.json", json.dumps(document, indent=1).encode())
        heartbeats.beat({"stage": "done", "frames_done": len(frames), "frames_total": len(frames)}, force=True)

        duration = time.monotonic() - started
        log.info(
            "FaceDetect found %d faces in %d of %d sampled frames",
            len(faces),
            frames_with_faces,
            len(frames),
            extra={"duration": round(duration, 3)},
        )
        return {
            "media_uuid": media.media_uuid,
            "faces_url": faces_url,
            "frames_sampled": len(frames),
            "frames_with_faces": frames_with_faces,
            "face_count": len(faces),
            "detector": DETECTOR_NAME,
            "seconds": round(duration, 3),
            "video": {
                "duration": info.duration,
                "fps": round(info.fps, 3),
                "width": info.width,
                "height": info.height,
                "rotation": info.rotation,
                "codec": info.codec,
            },
        }
