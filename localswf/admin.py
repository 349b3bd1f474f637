"""Calls to localswf that are not part of SWF's API, over plain HTTP.

They use urllib, not boto3, so a manager can make them without building an SWF client
in a process that keeps forking.
"""

from __future__ import annotations

import json
import urllib.request


def release_held_polls(url: str, timeout: float = 10.0) -> int:
    """Ask the server at `url` to return every held poll empty; return how many were held."""
    request = urllib.request.Request(
        url,
        data=b"{}",
        headers={"X-Amz-Target": "LocalSwf.ReleaseHeldPolls", "Content-Type": "application/x-amz-json-1.0"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as reply:
        return int(json.loads(reply.read())["releasedPolls"])

