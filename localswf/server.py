"""SWF's JSON protocol over HTTP: `X-Amz-Target: SimpleWorkflowService.<Operation>`, one thread per connection."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from localswf.connection import set_current as set_current_connection
from localswf.errors import (
    SerializationException,
    SwfFault,
    UnknownOperationException,
    ValidationException,
)
from localswf.operations import OPERATIONS
from localswf.service import Service

log = logging.getLogger(__name__)

TARGET_PREFIX = "SimpleWorkflowService."
RESET_TARGET = "LocalSwf.ResetDatabase"  # not an SWF operation; accepted only with --enable-reset
# Not an SWF operation either: held polls return empty at once. It changes no state, so
# it needs no flag.
RELEASE_TARGET = "LocalSwf.ReleaseHeldPolls"
CONTENT_TYPE = "application/x-amz-json-1.0"
# SWF's quotas give 1 MB as the maximum API request size, which also bounds the decisions in one response.
MAX_BODY = 1024 * 1024


class SwfHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], service: Service, *, enable_reset: bool = False) -> None:
        super().__init__(address, SwfRequestHandler)
        self.service = service
        self.enable_reset = enable_reset

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed connection through logging instead of printing a traceback to stderr.

        A client that dies with a keep-alive connection open resets it. That is routine for a
        poller killed by its manager, so it gets one line, not a traceback.
        """
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.info("connection from %s ended: %s", client_address, error)
        else:
            log.exception("request from %s failed", client_address)


class SwfRequestHandler(BaseHTTPRequestHandler):
    server: SwfHttpServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would delay the second by 40 ms
    server_version = "localswf"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        log.debug("%s %s", self.address_string(), format % args)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        request_id = str(uuid.uuid4())
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                raise ValidationException(f"request body of {length} bytes is larger than the limit of {MAX_BODY} bytes")
            body = self.rfile.read(length) if length else b"{}"
            if target == RESET_TARGET and self.server.enable_reset:
                self.server.service.reset()
                self._reply(200, {}, request_id)
                return
            if target == RELEASE_TARGET:
                held = self.server.service.release_held_polls()
                log.info("released %d held polls (request %s)", held, request_id)
                self._reply(200, {"releasedPolls": held}, request_id)
                return
            handler = OPERATIONS.get(operation)
            if handler is None:
                raise UnknownOperationException(
                    f"Unknown operation {target!r}: set X-Amz-Target to SimpleWorkflowService.<Operation>"
                )
            try:
                params = json.loads(body or b"{}")
            except ValueError as error:
                raise SerializationException(f"request body is not valid JSON: {error}") from None
            if not isinstance(params, dict):
                raise SerializationException("request body must be a JSON object")
            set_current_connection(self.connection)
            try:
                result = handler(self.server.service, params)
            finally:
                set_current_connection(None)
            self._reply(200, result, request_id)
        except SwfFault as fault:
            log.info("%s rejected (request %s): %s: %s", operation or target, request_id, fault.code, fault.message)
            self._reply(400, fault.to_body(), request_id)
        except Exception:
            log.exception("%s failed (request %s)", operation or target, request_id)
            self._reply(500, {"__type": "com.amazonaws.swf.base.model#InternalFailure", "message": "internal error, see the localswf log"}, request_id)

    def do_GET(self) -> None:  # noqa: N802
        """Report liveness and the number of held long polls, for health checks and tests."""
        status = {"service": "localswf", "heldPolls": self.server.service.waiters.waiting_count()}
        self._reply(200, status, str(uuid.uuid4()))

    def _reply(self, status: int, payload: dict[str, Any], request_id: str) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", request_id)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            log.info("client went away before the reply to request %s", request_id)
