"""The access log: the stream writer `relay serve` uses writes what `logging` would."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from typing import TextIO

import pytest
from aiohttp import web

from relay.web.access_log import LOG_FORMAT, AccessLogger
from relay.web.forwarded_test import _request


@pytest.mark.asyncio
async def test_the_stream_writer_writes_byte_for_byte_what_logging_would(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    handler: logging.StreamHandler[TextIO] = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger = logging.getLogger("relay.access.writer_test")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    # One instant for both lines (logging reads time.time() for its record too).
    monkeypatch.setattr(time, "time", lambda: 1767225600.25)
    request = _request({"X-Forwarded-For": "203.0.113.7"})
    response = web.Response(status=200, body=b"abc")
    try:
        AccessLogger(logger, "").log(request, response, 0.0123)
        AccessLogger.writing_to(handler)(logger, "").log(request, response, 0.0123)
        assert len(stream.getvalue().splitlines()) == 1  # the writer writes at the end of the loop's turn
        await asyncio.sleep(0)
    finally:
        logger.removeHandler(handler)
    through_logging, written = stream.getvalue().splitlines()
    assert written == through_logging
    assert written.endswith(' INFO relay.access.writer_test method=GET path="/main/" status=200 ms=12.3 client=10.0.0.5 bytes=3')
