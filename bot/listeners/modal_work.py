"""Answering a modal submission whose work asks Binance (Slack wants an answer within 3 s).

Work that finishes in time is answered inside the modal (field errors, or the success view);
slower work switches the modal to a "checking" view and updates it when the work is done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from slack_bolt import Ack
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.models.views import View

from bot.blocks.approvals import held_view
from bot.blocks.custody.register import checking_view, registration_failed_view
from bot.listeners.background import unexpected_error_text
from bot.services.approvals.holding import HeldForApproval
from bot.services.context import Services
from bot.services.errors import DomainError

log = logging.getLogger(__name__)

INLINE_SECONDS = 2.0
T = TypeVar("T")


def answer_submission(
    ack: Ack,
    client: WebClient,
    services: Services,
    *,
    view_id: str,
    work: Callable[[], T],
    success_view: Callable[[T], View],
    after: Callable[[T], None],
    default_field: str,
    on_late_failure: Callable[[str], None] | None = None,
    checking: Callable[[], View] = checking_view,
    failed: Callable[[str], View] = registration_failed_view,
) -> None:
    """``checking``: the modal shown while slow work goes on; ``failed``: the modal that says
    why it failed (the defaults speak of registering a key)."""
    future = services.background.submit(work)
    try:
        result = future.result(timeout=INLINE_SECONDS)
    except FutureTimeout:
        ack(response_action="update", view=checking())
        _finish_slowly(
            future,
            client,
            view_id=view_id,
            success_view=success_view,
            failed=failed,
            after=after,
            on_late_failure=on_late_failure,
        )
        return
    except HeldForApproval as held:  # not a refusal: the change waits for approval
        ack(response_action="update", view=held_view(held.view))
        return
    except DomainError as exc:
        ack(response_action="errors", errors={exc.field or default_field: exc.user_message})
        return
    except Exception:
        ref, text = unexpected_error_text()
        log.exception("modal work failed (reference %s)", ref)
        ack(response_action="errors", errors={default_field: text})
        return
    ack(response_action="update", view=success_view(result))
    after(result)


def _finish_slowly(
    future: Future[T],
    client: WebClient,
    *,
    view_id: str,
    success_view: Callable[[T], View],
    failed: Callable[[str], View],
    after: Callable[[T], None],
    on_late_failure: Callable[[str], None] | None,
) -> None:
    try:
        result = future.result()
    except HeldForApproval as held:
        _show(client, view_id, held_view(held.view), None, None)
        return
    except DomainError as exc:
        _show(client, view_id, failed(exc.user_message), on_late_failure, exc.user_message)
        return
    except Exception:
        ref, text = unexpected_error_text()
        log.exception("modal work failed (reference %s)", ref)
        _show(client, view_id, failed(text), on_late_failure, text)
        return
    _show(client, view_id, success_view(result), None, None)
    after(result)


def _show(
    client: WebClient,
    view_id: str,
    view: View,
    on_failure: Callable[[str], None] | None,
    failure_text: str | None,
) -> None:
    """Update the modal; if the person closed it meanwhile, tell them another way."""
    try:
        client.views_update(view_id=view_id, view=view)
        return
    except SlackApiError as exc:
        log.info("modal %s could not be updated (%s)", view_id, exc.response.get("error"))
    if on_failure is not None and failure_text is not None:
        on_failure(failure_text)
