"""Failure reasons and details stay within SWF's limits and stay valid JSON."""

from __future__ import annotations

import json

import pytest

from workers.failure import (
    MAX_DETAILS_CHARS,
    cut_reason,
    encode_details,
    failure_payload,
    parse_failure_details,
)


def test_short_failure_kept_whole():
    reason, details = failure_payload(False, "PermanentError", "corrupt file")

    assert reason == "PermanentError: corrupt file"
    assert json.loads(details) == {"retry": False, "error": "PermanentError", "message": "corrupt file"}


def test_reason_cut_to_256_on_one_line():
    reason = cut_reason("line one\nline two " + "é" * 1000)

    assert len(reason) == 256
    assert "\n" not in reason
    assert reason.endswith("...")


@pytest.mark.parametrize("message", ["x" * 100_000, "\u00e9\"\\\n" * 20_000, "\U0001f600" * 40_000])
def test_huge_message_cut_to_valid_json(message):
    reason, details = failure_payload(True, "RuntimeError", message)

    assert len(reason) <= 256
    assert len(details) <= MAX_DETAILS_CHARS
    parsed = json.loads(details)
    assert parsed["retry"] is True
    assert parsed["error"] == "RuntimeError"
    assert parsed["truncated"] is True


def test_huge_nested_extra_falls_back_to_minimal():
    details = encode_details({"retry": False, "error": "E", "message": "m", "frames": [[i] * 10 for i in range(20_000)]})

    parsed = json.loads(details)
    assert len(details) <= MAX_DETAILS_CHARS
    assert parsed["retry"] is False
    assert parsed["error"] == "E"


def test_too_small_details_limit_rejected():
    with pytest.raises(ValueError, match="at least 512"):
        encode_details({"retry": True}, limit=100)


@pytest.mark.parametrize(
    ("details", "retry", "error"),
    [
        (None, True, "Unknown"),
        ("", True, "Unknown"),
        ("not json", True, "Unknown"),
        ("[1, 2]", True, "Unknown"),
        ('{"retry": false, "error": "PermanentError"}', False, "PermanentError"),
        ('{"error": "OSError"}', True, "OSError"),
    ],
)
def test_parse_failure_details_shapes(details, retry, error):
    parsed = parse_failure_details(details)

    assert parsed["retry"] is retry
    assert parsed["error"] == error
