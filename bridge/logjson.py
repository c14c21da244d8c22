"""Structured logs: `general.log_format = "json"` writes one JSON object per line.

Each object has `time` (ISO 8601, UTC), `level`, `logger` and `message`, then the event fields
a call passed with `extra=` (`post_id`, `platform`, `outcome`, ...: only the names in
`EVENT_FIELDS`, so an identity passed by mistake under another name is dropped), and `exc` with
the traceback. Every string is redacted (`bridge.privacy.redact`) before it is encoded: the
same redaction as the text format, applied value by value so the line stays valid JSON.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from bridge.privacy import RedactingFormatter, redact

#: the `extra=` names copied into a line; values must be numbers, booleans or short strings
EVENT_FIELDS = frozenset(
    {
        "post_id",
        "platform",
        "outcome",
        "lane",
        "scope",
        "command",
        "channel",
        "count",
        "rate",
        "attempts",
        "delivery_id",
        "notice_id",
    }
)


class JsonFormatter(RedactingFormatter):
    """One redacted JSON object per record (a `RedactingFormatter`, so the log redaction
    installed on the root logger keeps it as it is)."""

    def format(self, record: logging.LogRecord) -> str:
        """Encode the record; never raises."""
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not break logging
            message = str(record.msg)
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(message),
        }
        for name in sorted(EVENT_FIELDS):
            value = record.__dict__.get(name)
            if isinstance(value, bool | int | float):
                line[name] = value
            elif isinstance(value, str):
                line[name] = redact(value[:200])
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = redact(record.exc_text)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(line, ensure_ascii=False)


__all__ = ["EVENT_FIELDS", "JsonFormatter"]
