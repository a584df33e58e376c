"""LOG_FORMAT=json: one JSON object per log line, for log pipelines that parse them.

Fields: ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger``, ``message``, plus
``exception`` (the formatted traceback) when there is one, and ``stack`` for stack_info. The
handler's redacting filter (bot.log_redaction) has already rewritten the message and the
traceback when this formats them, so a secret stays out of the JSON line as it does of text.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        # ensure_ascii: a line never holds a raw newline or control character of the message.
        return json.dumps(entry, ensure_ascii=True)
