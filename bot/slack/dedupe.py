"""Global middleware: a request Slack delivers twice has one effect (see services/request_dedupe)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import BoltRequest, BoltResponse

from bot.observability.metrics import OUTCOME_KEY, REPEATED
from bot.services.context import Services
from bot.services.request_dedupe import SeenRequests, request_key

log = logging.getLogger(__name__)


def make_once_only(services: Services) -> Callable[..., BoltResponse | None]:
    deliveries = SeenRequests(services.engine)

    def once_only(
        body: dict[str, Any], req: BoltRequest, next: Callable[[], None]
    ) -> BoltResponse | None:
        key = request_key(body)
        if key is not None and not deliveries.first_time(key, services.clock()):
            retry = (req.headers.get("x-slack-retry-num") or ["?"])[0]
            log.info("dropped a repeated Slack delivery (retry %s)", retry)
            req.context[OUTCOME_KEY] = REPEATED
            return BoltResponse(status=200, body="")
        next()
        return None

    return once_only
