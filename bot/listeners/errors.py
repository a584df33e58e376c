"""Error policy for every listener: domain errors become polite messages, anything else is
logged (with a reference) and answered with a short apology. No stack trace reaches a user.

``polite`` wraps each listener: an exception raised after ``ack()`` must not escape to Bolt,
which would then answer Slack with an error (and Slack would show a failure or retry).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Respond

from bot.blocks.notices import error_message
from bot.listeners.background import unexpected_error_text
from bot.observability.metrics import record_outcome
from bot.services.errors import DomainError
from bot.slack.messaging import responder

log = logging.getLogger(__name__)


def polite(listener: Callable[..., Any], *, kind: str = "other") -> Callable[..., Any]:
    """``kind`` (command, event, view, action): what the outcome is counted under."""

    @functools.wraps(listener)  # Bolt reads the wrapped signature to inject arguments
    def wrapper(**kwargs: Any) -> Any:
        try:
            result = listener(**kwargs)
            record_outcome(kind, "ok")
            return result
        except DomainError as exc:
            record_outcome(kind, "refused")
            _answer(kwargs, exc.user_message)
        except Exception as exc:
            record_outcome(kind, "error")
            ref, text = unexpected_error_text()
            log.error(
                "listener %s failed (reference %s): %s",
                listener.__name__,
                ref,
                type(exc).__name__,
                exc_info=exc,
            )
            _answer(kwargs, text)
        return None

    return wrapper


def _answer(kwargs: dict[str, Any], text: str) -> None:
    message = error_message(text)
    ack = kwargs.get("ack")
    if ack is not None and getattr(ack, "response", None) is None:
        if kwargs.get("command") is not None or (kwargs.get("body") or {}).get("command"):
            ack(**message.as_kwargs())
            return
        ack()
    respond = kwargs.get("respond")
    if respond is None:
        return
    if kwargs.get("client") is not None and kwargs.get("body") is not None:
        respond = responder(kwargs["body"], kwargs["client"], respond)  # App Home: a DM
    try:
        # Ephemeral and next to the original: never replace a shared checklist or report.
        respond(**message.as_kwargs(), response_type="ephemeral", replace_original=False)
    except Exception:
        log.warning("could not deliver an error message to the user")


def handle_error(error: Exception, body: dict[str, Any], respond: Respond) -> None:
    """Bolt's global error handler: for failures outside the listeners (middleware)."""
    if isinstance(error, DomainError):
        text = error.user_message
    else:
        ref, text = unexpected_error_text()
        log.error("unhandled error (reference %s): %s", ref, type(error).__name__, exc_info=error)
    if getattr(respond, "response_url", None):  # only Slack's own (see bot.slack.response_urls)
        try:
            respond(
                **error_message(text).as_kwargs(), response_type="ephemeral", replace_original=False
            )
        except Exception:
            log.warning("could not deliver an error message to the user")
