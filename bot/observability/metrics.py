"""The bot's own Prometheus instruments, in its own registry (never prometheus_client's global
one: a library's collectors, or a second bot in the same process, never mix into it).

Every name starts with ``apikey_bot_``. Counters and histograms recorded in the process live
here; what is read at scrape time (Binance weight, database counts, scheduler lag) comes from
the collectors in ``bot.operations.collectors``, registered per routes instance.
This module imports nothing of the bot but the Binance transport (whose calls it counts), so
jobs, listeners and Slack plumbing may record into it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from slack_sdk.errors import SlackApiError

from bot.binance import transport

PREFIX = "apikey_bot_"

# No "_created" series beside each counter: twice the lines for a figure nobody graphs.
disable_created_metrics()

INSTRUMENTS = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    PREFIX + "slack_requests",
    "Slack requests handled, by kind (command, action, view, event, other) and outcome: ok, "
    "refused (bad input or not allowed: the person was told why), denied (another workspace, "
    "or a channel where the bot may not be used), repeated (a delivery Slack retried, dropped), "
    "unhandled (no listener for it), error (a failure of ours).",
    ["kind", "outcome"],
    registry=INSTRUMENTS,
)
# Slack wants an ack within 3 s: the buckets are finest around that bound.
ACK_SECONDS = Histogram(
    PREFIX + "slack_ack_seconds",
    "Time from a Slack request reaching the bot to its ack being ready, by kind.",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0),
    registry=INSTRUMENTS,
)
BINANCE_CALLS = Counter(
    PREFIX + "binance_calls",
    "Requests the Binance gateway sent, by endpoint path and outcome (ok, http_4xx, "
    "http_429, http_418, http_403, http_5xx, timeout, connection, bad_response, refused).",
    ["endpoint", "outcome"],
    registry=INSTRUMENTS,
)
JOBS_FAILED = Counter(
    PREFIX + "scheduler_jobs_failed",
    "Scheduled jobs whose attempt failed (each is retried with backoff), by kind.",
    ["kind"],
    registry=INSTRUMENTS,
)
JOBS_DONE = Counter(
    PREFIX + "scheduler_jobs_done",
    "Scheduled jobs finished, by kind.",
    ["kind"],
    registry=INSTRUMENTS,
)
SLACK_DELIVERIES = Counter(
    PREFIX + "slack_deliveries",
    "Messages to Slack that needed another try (retried) or did not get through (failed), "
    "by route: response_url, web_api (the Web API client's own retries) or scheduled (a job "
    "retried later).",
    ["route", "outcome"],
    registry=INSTRUMENTS,
)
PAGES = Counter(
    PREFIX + "pages",
    "Paging events sent to PagerDuty or the webhook, by destination, action (trigger, "
    "resolve) and outcome (sent, retried, failed).",
    ["destination", "action", "outcome"],
    registry=INSTRUMENTS,
)

HTTP_REFUSED = Counter(
    PREFIX + "http_connections_refused",
    "Connections the HTTP server answered and closed to protect itself, by reason: "
    "request_deadline (a request not whole within HTTP_REQUEST_DEADLINE_SECONDS), client_cap "
    "(over HTTP_MAX_CONNECTIONS_PER_CLIENT from one address), connection_limit (closed to make "
    "room for a new connection).",
    ["reason"],
    registry=INSTRUMENTS,
)


def record_refused_connection(reason: str) -> None:
    HTTP_REFUSED.labels(reason=reason).inc()


def record_binance_call(endpoint: str, outcome: str) -> None:
    BINANCE_CALLS.labels(endpoint=endpoint, outcome=outcome).inc()


transport.CALL_OBSERVERS.append(record_binance_call)  # once: a module is imported once


def record_job(kind: str, *, failed: bool) -> None:
    (JOBS_FAILED if failed else JOBS_DONE).labels(kind=kind).inc()


def record_slack_delivery(route: str, outcome: str) -> None:
    SLACK_DELIVERIES.labels(route=route, outcome=outcome).inc()


def record_page(destination: str, action: str, outcome: str) -> None:
    PAGES.labels(destination=destination, action=action, outcome=outcome).inc()


def record_job_error(exc: BaseException) -> None:
    """A job's attempt raised: when Slack refused its message, that is a failed delivery
    (the job retries it later)."""
    if isinstance(exc, SlackApiError):
        SLACK_DELIVERIES.labels(route="scheduled", outcome="failed").inc()


def request_kind(body: object) -> str:
    """command, action, view, event or other, from a Slack request's parsed body."""
    if not isinstance(body, dict):
        return "other"
    if body.get("command"):
        return "command"
    kind = body.get("type")
    if kind in (
        "block_actions",
        "interactive_message",
        "block_suggestion",
        "shortcut",
        "message_action",
    ):
        return "action"
    if kind in ("view_submission", "view_closed"):
        return "view"
    if kind == "event_callback":
        return "event"
    return "other"


# Set in a request's Bolt context by a middleware that answered it without a listener: the
# guard (DENIED) or the repeated-delivery filter (REPEATED). A request that reaches a listener
# is counted by the listener's wrapper once it has run (bot.listeners.errors.polite).
OUTCOME_KEY = "apikey_bot_outcome"
DENIED = "denied"
REPEATED = "repeated"


def record_outcome(kind: str, outcome: str) -> None:
    REQUESTS.labels(kind=kind, outcome=outcome).inc()


def record_ack(kind: str, seconds: float) -> None:
    ACK_SECONDS.labels(kind=kind).observe(seconds)
