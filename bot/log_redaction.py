"""A filter on the log handlers that removes secrets from whatever any library logs.

The bot never logs a secret itself, but libraries do what they do: slack_bolt logs a rejected
request's whole body at INFO (``RequestVerification._debug_log_error``), slack_sdk and urllib3
log request bodies and URLs at DEBUG. A register form's body holds a key's secret; a stale
command may hold a pasted one. So every record that reaches a handler is rewritten first:
- Slack request bodies (form-encoded fields, ``payload=…``, the body Bolt quotes) are dropped;
- anything shaped like a key, a secret or a private key (64-character keys and HMAC secrets,
  PEM blocks, long base64 runs such as a DER key without its armour) is replaced;
- a ``response_url`` (a bearer capability for 30 minutes) keeps only its host.
Tracebacks are formatted and redacted the same way.
"""

from __future__ import annotations

import logging
import re

from bot.secret_shapes import (
    KEY_IN_TEXT,
    LONG_BASE64_RUN,
    LONG_URL_ENCODED_BASE64_RUN,
    PEM_IN_TEXT,
)

REDACTED = "[redacted]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # What Bolt appends to "Invalid request signature detected (…, body: …)".
    (re.compile(r"\bbody:\s.*", re.DOTALL), "body: " + REDACTED),
    # PEM blocks, also cut short or URL-encoded (BEGIN%20PRIVATE%20KEY, BEGIN+PRIVATE+KEY).
    (PEM_IN_TEXT, REDACTED + " PEM"),
    (re.compile(r"\bpayload=\S*"), "payload=" + REDACTED),
    # A form body: three or more key=value fields joined by '&'.
    (re.compile(r"(?:[\w.%\[\]-]+=[^&\s]*&){2,}[\w.%\[\]-]+=[^&\s]*"), REDACTED + " form"),
    # Values of fields that carry what people type into the bot's forms and commands.
    (
        re.compile(
            r"""(["']?\b(?:value|text|secret|private_key|api_key|token|trigger_id)\b["']?"""
            r"""\s*[:=]\s*)(["'])(?:\\.|(?!\2).)*\2""",
            re.DOTALL,
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"https://hooks\.slack\.com/\S*"), "https://hooks.slack.com/" + REDACTED),
    # Binance API keys and HMAC secrets: 64 letters and digits.
    (KEY_IN_TEXT, REDACTED + " key"),
    # Long base64 or base64url runs (a private key's DER, a secret in another encoding).
    (LONG_BASE64_RUN, REDACTED + " base64"),
    (LONG_URL_ENCODED_BASE64_RUN, REDACTED + " base64"),
)


def redact(text: str) -> str:
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message and traceback before a handler formats it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record: say so rather than print its arguments
            message = f"(unformattable log message from {record.name})"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class BelowWarning(logging.Filter):
    """Drops a logger's records below WARNING (a filter survives Bolt re-levelling its
    loggers from the app's base logger, which a ``setLevel`` would not)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def install(handlers: list[logging.Handler]) -> None:
    for handler in handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    # Bolt's request verification logs a rejected request's body at INFO: never let it.
    quiet = logging.getLogger("slack_bolt.RequestVerification")
    if not any(isinstance(f, BelowWarning) for f in quiet.filters):
        quiet.addFilter(BelowWarning())
