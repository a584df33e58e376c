"""Getting a private message to one person: ephemeral in the channel, else a direct message."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.message import Message
from bot.observability.metrics import record_slack_delivery

log = logging.getLogger(__name__)

RESPONSE_URL_ATTEMPTS = 3
MAX_RETRY_AFTER = 5.0  # seconds worth waiting for a response_url; past that, go another way


def passing_failure(exc: SlackApiError) -> bool:
    """Slack refused for a reason that passes (rate limited, server error): try again later.
    Anything else (channel gone, message deleted) would fail the same way every time."""
    status = getattr(exc.response, "status_code", None) or 200
    return status == 429 or status >= 500


def send_private(client: WebClient, *, channel: str | None, user_id: str, message: Message) -> None:
    if channel:
        try:
            client.chat_postEphemeral(channel=channel, user=user_id, **message.as_kwargs())
            return
        except SlackApiError as exc:
            log.info("ephemeral message not possible (%s); sending a DM", exc.response.get("error"))
    opened = client.conversations_open(users=user_id)
    client.chat_postMessage(channel=opened["channel"]["id"], **message.as_kwargs())


def responder(
    body: dict[str, Any], client: WebClient, respond: Callable[..., Any]
) -> Callable[..., Any]:
    """``respond`` where Slack gave a ``response_url``; a click on the App Home has none, so
    the answer goes to the person's direct messages with the app instead."""
    if getattr(respond, "response_url", None):  # None too when it was not Slack's (refused)
        return respond
    user_id = body.get("user_id") or (body.get("user") or {}).get("id")

    def direct_message(**kwargs: Any) -> None:
        for ignored in ("response_type", "replace_original", "delete_original"):
            kwargs.pop(ignored, None)
        opened = client.conversations_open(users=user_id)
        client.chat_postMessage(channel=opened["channel"]["id"], **kwargs)

    return direct_message


def respond_reliably(
    respond: Callable[..., Any],
    client: WebClient,
    *,
    channel: str | None,
    user_id: str,
    message: Message,
    **options: Any,
) -> None:
    """Answer through ``response_url``, again after a 429 (honouring Retry-After) or a 5xx.
    If Slack still does not take it, the person gets the message privately through the Web
    API instead (ephemeral in the channel, else a direct message): a finished answer is never
    dropped silently."""
    for attempt in range(RESPONSE_URL_ATTEMPTS):
        try:
            response = respond(**message.as_kwargs(), **options)
        except Exception as exc:  # connection refused or reset: as passing as a 5xx
            log.info("response_url not reachable (%s)", type(exc).__name__)
            status, wait = None, 0.5 * 2**attempt
        else:
            status = getattr(response, "status_code", None)
            if status is None or status < 300:
                return
            log.info("response_url refused the answer (HTTP %s)", status)
            if status != 429 and status < 500:
                break  # expired or already used: trying it again cannot help
            wait = _retry_after(response) if status == 429 else 0.5 * 2**attempt
        if attempt + 1 < RESPONSE_URL_ATTEMPTS:
            if wait > MAX_RETRY_AFTER:
                break
            record_slack_delivery("response_url", "retried")
            time.sleep(wait)
    record_slack_delivery("response_url", "failed")  # the Web API takes it instead
    send_private(client, channel=channel, user_id=user_id, message=message)


def _retry_after(response: object) -> float:
    headers = getattr(response, "headers", None) or {}
    for name, value in headers.items():
        if name.lower() == "retry-after":
            try:
                return max(0.0, float(value[0] if isinstance(value, list) else value))
            except (TypeError, ValueError):
                break
    return 1.0
