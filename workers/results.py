"""Activity results that stay within SWF's size limits by being stored when large.

SWF limits a result and an activity input to 32,768 characters each. The input of a
pipeline step contains the previous step's result next to the workflow input, so a result
is stored under the storage root once it is over half that size, and the step after it
receives ``{"result_ref": URL}`` in its place.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

MAX_RESULT_CHARS = 32768
# Results above this are stored, which leaves half of the next step's input to the
# workflow input.
INLINE_RESULT_CHARS = 16384
RESULT_REF_KEY = "result_ref"


class BlobStore(Protocol):
    def put_bytes(self, key: str, data: bytes) -> str: ...

    def get_bytes(self, url: str) -> bytes: ...


def encode_result(result: Any, storage: BlobStore, key: str) -> str:
    """Encode ``result`` as JSON, storing it under ``key`` and returning a reference when large."""
    text = json.dumps(result)
    if len(text) <= INLINE_RESULT_CHARS:
        return text
    url = storage.put_bytes(key, text.encode())
    return json.dumps({RESULT_REF_KEY: url, "size": len(text)})


def is_result_ref(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(RESULT_REF_KEY), str)


def resolve_result(value: Any, storage: BlobStore) -> Any:
    """Return the stored result when ``value`` is a reference, else ``value`` itself."""
    if not is_result_ref(value):
        return value
    return json.loads(storage.get_bytes(value[RESULT_REF_KEY]).decode())
