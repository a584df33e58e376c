"""The one error handler: domain errors become polite messages, anything else is logged."""

from __future__ import annotations

import logging

from slack_bolt.response import BoltResponse

from bot.blocks.notices import error_message
from bot.listeners.background import unexpected_error_text
from bot.services.errors import DomainError

log = logging.getLogger(__name__)


def handle_error(error: Exception, body: dict, respond, logger) -> BoltResponse | None:
    if isinstance(error, DomainError):
        text = error.user_message
    else:
        ref, text = unexpected_error_text()
        log.error(
            "unhandled error in a listener (reference %s): %s",
            ref,
            type(error).__name__,
            exc_info=error,
        )
    if body.get("response_url") or body.get("type") == "block_actions":
        try:
            # Ephemeral and next to the original: never replace a shared checklist or report.
            respond(
                **error_message(text).as_kwargs(),
                response_type="ephemeral",
                replace_original=False,
            )
        except Exception:
            log.warning("could not deliver an error message to the user")
    return None
