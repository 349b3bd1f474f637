"""Page tokens for list calls: opaque to the caller, a keyset position for us."""

from __future__ import annotations

from typing import Any

from localswf.model import decode_token, encode_token


def next_token(kind: str, position: Any) -> str:
    return encode_token("page", kind, position)


def read_token(token: Any, kind: str) -> Any:
    """Return the position stored in a nextPageToken, or None when there is no token."""
    if not token:
        return None
    tag, token_kind, position = decode_token(token, "nextPageToken", 3)
    if tag != "page" or token_kind != kind:
        decode_token("", "nextPageToken", 3)  # raises the same ValidationException as any bad token
    return position


def page(rows: list[Any], size: int) -> tuple[list[Any], bool]:
    """Split `size + 1` fetched rows into the page and whether more follow."""
    return rows[:size], len(rows) > size
