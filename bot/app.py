"""build_app(): the Slack app, with the services handed to listeners through Bolt's context."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_bolt import App, BoltContext
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.config import Settings
from bot.listeners import register_listeners
from bot.observability.slack import CountedRetries, instrument_dispatch
from bot.services.context import Services
from bot.slack.access import AccessDirectory, make_guard
from bot.slack.approvers import warn_if_too_few_approvers
from bot.slack.dedupe import make_once_only
from bot.slack.response_urls import ResponseUrlPolicy


def make_web_client(settings: Settings) -> WebClient:
    """Slack Web API client: honours Retry-After on 429 and retries 5xx / connection errors."""
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    client = WebClient(token=token, base_url=settings.slack_api_url, timeout=15)
    client.retry_handlers.extend(
        [
            CountedRetries(RateLimitErrorRetryHandler(max_retry_count=3)),
            CountedRetries(ServerErrorRetryHandler(max_retry_count=2)),
            CountedRetries(ConnectionErrorRetryHandler(max_retry_count=2)),
        ]
    )
    return client


class _DropMessage(logging.Filter):
    def __init__(self, message: str) -> None:
        super().__init__()
        self._message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self._message

    def __eq__(self, other: object) -> bool:  # added once per logger, however many apps
        return isinstance(other, _DropMessage) and other._message == self._message

    def __hash__(self) -> int:
        return hash(self._message)


def build_app(settings: Settings, services: Services, *, client: WebClient | None = None) -> App:
    signing_secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    )
    framework_log = logging.getLogger("bot.slack")
    # Bolt reads SLACK_BOT_TOKEN from the environment even when given a client, then warns
    # that it ignores it: true, expected, and noise at every start.
    framework_log.addFilter(_DropMessage(warning_client_prioritized_and_token_skipped()))
    app = App(
        client=client or make_web_client(settings),
        signing_secret=signing_secret,
        # Socket Mode connections are authenticated by the app token instead.
        request_verification_enabled=not settings.socket_mode,
        process_before_response=False,
        # Acks run here; slow work goes to services.background, so this pool stays free.
        # Counted with the background work: a listener may still run after its ack's answer.
        listener_executor=services.in_flight.executor(
            max_workers=32, thread_name_prefix="listener"
        ),
        logger=framework_log,
    )

    services.access = AccessDirectory(settings, app.client)
    warn_if_too_few_approvers(settings)

    response_urls = ResponseUrlPolicy(settings.slack_api_url)

    @app.middleware
    def provide_services(context: BoltContext, next: Callable[[], None]) -> None:
        response_urls.scrub(context)  # HTTP mode's gate did already; Socket Mode's did not
        context["services"] = services
        next()

    app.middleware(make_once_only(services))
    app.middleware(make_guard(services))

    register_listeners(app)
    instrument_dispatch(app)  # ack latency and outcomes (bot.observability)
    return app
