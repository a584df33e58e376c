"""Where scheduled messages go: the alert channel, else direct messages."""

from __future__ import annotations

import logging
import threading
import time

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.blocks.message import Message
from bot.config import Settings
from bot.job_queue.queue import ClaimedJob, PartialProgress

log = logging.getLogger(__name__)

# Payload entry of a job sent to several people: who already has it (see direct_message_each).
DELIVERED_TO = "delivered_to"


class SlackDirectory:
    """Who is still in the workspace, and the DM channel of each user: looked up once and
    remembered for a while, so a tick of a thousand reminders is a thousand posts, not
    three thousand calls."""

    def __init__(self, client: WebClient, *, ttl_seconds: float = 600.0) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._gone: dict[str, tuple[float, bool]] = {}
        self._dm: dict[str, str] = {}
        self._lock = threading.Lock()

    def user_is_gone(self, user_id: str | None) -> bool:
        """True when the user left the workspace (deactivated or unknown)."""
        if not user_id:
            return True
        with self._lock:
            cached = self._gone.get(user_id)
        if cached and time.monotonic() - cached[0] < self._ttl:
            return cached[1]
        try:
            gone = bool(self._client.users_info(user=user_id)["user"].get("deleted"))
        except SlackApiError as exc:
            if exc.response.get("error") not in ("user_not_found", "account_inactive"):
                raise
            gone = True
        with self._lock:
            self._gone[user_id] = (time.monotonic(), gone)
        return gone

    def direct_message(self, user_id: str, message: Message) -> None:
        with self._lock:
            channel = self._dm.get(user_id)
        if channel is None:
            channel = self._client.conversations_open(users=user_id)["channel"]["id"]
            with self._lock:
                self._dm[user_id] = channel
        self._client.chat_postMessage(channel=channel, **message.as_kwargs())

    def direct_message_each(
        self, user_ids: list[str | None], message: Message, *, job: ClaimedJob
    ) -> None:
        """DM each user once per job: those a failed earlier attempt of ``job`` already reached
        are skipped, and when one post fails the ones that went through are saved with the job
        (``PartialProgress``) so the retry does not send them the message again."""
        delivered = list(job.payload.get(DELIVERED_TO, []))
        for user_id in dict.fromkeys(u for u in user_ids if u):
            if user_id in delivered:
                continue
            try:
                self.direct_message(user_id, message)
            except Exception as exc:
                if not delivered:
                    raise
                raise PartialProgress({DELIVERED_TO: delivered}, exc) from exc
            delivered.append(user_id)

    def to_channel(
        self,
        settings: Settings,
        message: Message,
        *,
        fallback_users: list[str | None],
        job: ClaimedJob,
    ) -> None:
        """Post in the alert channel; without one, DM each fallback user (owner, admins)."""
        if settings.alert_channel:
            self._client.chat_postMessage(channel=settings.alert_channel, **message.as_kwargs())
            return
        if not any(fallback_users):
            log.warning("no alert channel, owner or admin to tell: %s", message.text[:80])
        self.direct_message_each(fallback_users, message, job=job)
