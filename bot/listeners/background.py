"""Running slow work after the ack, with the same error policy as the Bolt error handler."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from bot.blocks.notices import error_message
from bot.services.context import Services
from bot.services.errors import DomainError

log = logging.getLogger(__name__)

UNEXPECTED = (
    "Sorry, something went wrong on our side and nothing was changed. "
    "The problem was logged (reference {ref}); please try again in a moment."
)


def in_background(
    services: Services, respond: Callable[..., Any], work: Callable[[], None]
) -> None:
    """Run ``work`` on the background pool; domain errors become polite replies."""

    def run() -> None:
        try:
            work()
        except DomainError as exc:
            respond(**error_message(exc.user_message).as_kwargs(), replace_original=True)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("background work failed (reference %s)", ref)
            try:
                respond(**error_message(UNEXPECTED.format(ref=ref)).as_kwargs())
            except Exception:
                log.exception("could not tell the user about failure %s", ref)

    services.background.submit(run)


def unexpected_error_text() -> tuple[str, str]:
    ref = uuid.uuid4().hex[:8]
    return ref, UNEXPECTED.format(ref=ref)
