"""Counting Slack requests and timing their acks, in both serving modes.

Both HTTP mode's gate and Socket Mode's handler hand each request to ``App.dispatch``, which
returns once the listener has acked (Bolt waits for the ack, not for the listener): timing that
call is the ack latency. The outcome of a request that reached a listener is counted by the
listener wrapper when it has run (``bot.listeners.errors.polite``: ok, refused or error); every
other request (denied by the guard, a repeated delivery, unhandled, or failed before a listener)
is counted here.
"""

from __future__ import annotations

import functools
import time

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.http_retry import RetryHandler, RetryState
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse

from bot.observability.metrics import (
    OUTCOME_KEY,
    record_ack,
    record_outcome,
    record_slack_delivery,
    request_kind,
)


def instrument_dispatch(app: App) -> None:
    dispatch = app.dispatch

    @functools.wraps(dispatch)
    def timed(req: BoltRequest) -> BoltResponse:
        started = time.perf_counter()
        kind = request_kind(req.body)
        outcome: str | None = "error"
        try:
            response = dispatch(req)
            decided = req.context.get(OUTCOME_KEY)
            if decided is not None:
                outcome = decided
            elif response.status >= 500:
                outcome = "error"
            elif response.status == 404:
                outcome = "unhandled"
            else:
                outcome = None  # a listener ran: its wrapper counts the outcome
            return response
        finally:
            record_ack(kind, time.perf_counter() - started)
            if outcome is not None:
                record_outcome(kind, outcome)

    app.dispatch = timed  # type: ignore[method-assign]


class CountedRetries(RetryHandler):
    """Wraps one of slack_sdk's retry handlers: same decisions, and each retry it makes is
    counted as a Web API delivery retried."""

    def __init__(self, inner: RetryHandler) -> None:
        super().__init__(
            max_retry_count=inner.max_retry_count, interval_calculator=inner.interval_calculator
        )
        self._inner = inner

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        return self._inner.can_retry(state=state, request=request, response=response, error=error)

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        record_slack_delivery("web_api", "retried")
        self._inner.prepare_for_next_attempt(
            state=state, request=request, response=response, error=error
        )
