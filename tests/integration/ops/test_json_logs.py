"""`general.log_format = "json"`: one JSON object per line with time, level, logger, message
and event fields; the redaction still applies, so no token or user id reaches a line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bridge.app import SDK_LOGGERS, configure_logging
from bridge.ports import PermanentFailure
from tests.integration.ops.support import fake, get, make_app, say
from tests.support import OPERATOR, person

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawX"


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """The product's logging set-up in JSON at DEBUG into a buffer; undone afterwards."""
    stream = io.StringIO()
    root = logging.getLogger()
    levels = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    root_level, root_filters = root.level, list(root.filters)
    handler = configure_logging("DEBUG", stream, log_format="json")
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(root_level)
        root.filters[:] = root_filters
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


async def test_json_lines_carry_event_fields_and_no_identity(tmp_path: Path) -> None:
    with json_log() as stream:
        app = make_app(tmp_path)
        await app.start()
        try:
            await say(app, OPERATOR, "/newchannel news Daily News")
            for i in range(4):
                await say(app, person(i), "/follow news")
            await app.sync()
            fake(app).script[person(3).id] = [PermanentFailure(f"chat {person(3).id} not found")]
            await say(app, OPERATOR, "/post news Hello")
            await app.sync()
            await get(app, "/metrics")
            log = logging.getLogger("bridge.test")
            careless = {"chat_id": person(1).id, "platform": "fake"}
            log.warning("sending to %s failed", person(1).id, extra=careless)
            try:
                raise RuntimeError(f"GET https://api.telegram.org/bot{TOKEN}/getMe for user {person(2).id}")
            except RuntimeError:
                log.exception("a call failed", extra={"post_id": 1, "outcome": "error"})
        finally:
            await app.stop()
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines, "nothing was logged"
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line)
    first = [line for line in lines if line.get("outcome") == "first_copy"]
    assert first and first[0]["post_id"] == 1
    failed = [line for line in lines if line.get("outcome") == "failed" and line.get("platform") == "fake"]
    assert failed, "the failed delivery's line has its event fields"
    error = next(line for line in lines if line["message"] == "a call failed")
    assert error["post_id"] == 1 and "RuntimeError" in error["exc"]
    assert all("chat_id" not in line for line in lines)
    for needle in ("700000", TOKEN, TOKEN.split(":")[1], "AAHdqTcvCH1"):
        assert needle not in text, needle
