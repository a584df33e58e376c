"""Running the bot for real: Socket Mode when an app token is set, else HTTP mode.

The production entry point never falls back to the sandbox: without Slack credentials it
says what to set and how to start the sandbox instead, and exits.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from urllib.error import URLError

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.app import build_app, make_web_client
from bot.binance import BinanceGateway
from bot.binance.governor import GovernorGateway
from bot.bootstrap import Storage, open_storage
from bot.config import ConfigError, Settings
from bot.job_queue.scheduler import Scheduler
from bot.jobs.audit_forwarder import start_audit_forwarder
from bot.jobs.handlers import build_scheduler
from bot.operations.routes import start_observability
from bot.operations.server import (
    metrics_tokens,
    port_routes,
    serve_in_background,
    serve_metrics,
)
from bot.services.audit_trail import ensure_checkpoint_job
from bot.services.context import Services
from bot.services.governor.calls import GovernorCallRecorder
from bot.services.oversight.activity_plan import ensure_activity_reviews
from bot.services.oversight.drift_plan import ensure_drift_checks
from bot.slack.connections import ConnectionLimits
from bot.slack.gate import SlackGate, gate_for
from bot.slack.http_server import make_server

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt parameter

MISSING_SLACK = """\
apikey-bot: Slack credentials are missing: {missing}.
  To connect to your workspace, create the app from manifest.yml (api.slack.com/apps ->
  Create New App -> From a manifest), install it, then set in the environment or in .env:
    SLACK_BOT_TOKEN=xoxb-...        (OAuth & Permissions -> Bot User OAuth Token)
    SLACK_APP_TOKEN=xapp-...        (Socket Mode, as manifest.yml sets the app up: Basic
                                     Information -> App-Level Tokens, scope connections:write)
  or, for HTTP mode behind a public URL (socket_mode_enabled: false in the manifest):
    SLACK_SIGNING_SECRET=...        (Basic Information -> Signing Secret)
  To try the bot without Slack or Binance, start the offline sandbox instead:
    .venv/bin/apikey-bot sandbox
"""


def build_services(settings: Settings, storage: Storage) -> Services:
    gateway = BinanceGateway(
        base_url=settings.binance_api_url,
        timeout=settings.binance_timeout_seconds,
        max_workers=settings.binance_max_workers,
        weight_limit=settings.binance_weight_limit,
    )
    governor = GovernorGateway(
        base_url=settings.binance_api_url,
        timeout=settings.binance_timeout_seconds,
        limits=gateway.limits,
        on_call=GovernorCallRecorder(storage.engine),
    )
    return Services(
        settings=settings,
        engine=storage.engine,
        ring=storage.key_ring,
        gateway=gateway,
        governor=governor,
    )


def run_bot(settings: Settings) -> int:
    missing = settings.missing_slack_settings()
    if missing:
        print(MISSING_SLACK.format(missing=", ".join(missing)), file=sys.stderr, end="")
        return 2
    problem = slack_problem(settings)
    if problem is not None:  # before anything is opened or created
        print(f"apikey-bot: {problem}", file=sys.stderr)
        return 2
    # Hand the interpreter lock over more often than every 5 ms: an ack waiting behind
    # report rendering gets its turn sooner (Slack wants every ack within 3 s).
    sys.setswitchinterval(0.001)
    limit_malloc_arenas()
    storage = open_storage(settings)
    services = build_services(settings, storage)
    app = build_app(settings, services)
    stop_scheduler = start_scheduler(services, app.client)
    stop_forwarder = start_audit_forwarder(settings, storage.engine)
    try:
        if settings.socket_mode and settings.slack_app_token is not None:
            serve_socket_mode(
                app,
                services,
                app_token=settings.slack_app_token.get_secret_value(),
                scheduler_lag=stop_scheduler.lag_seconds,
            )
        else:
            serve_http(app, services, scheduler_lag=stop_scheduler.lag_seconds)
    finally:
        stop_forwarder()
        stop_scheduler()
    return 0


def connection_limits(settings: Settings) -> ConnectionLimits:
    """The HTTP server's guards against slow or numerous clients, as configured."""
    return ConnectionLimits(
        request_deadline_seconds=settings.http_request_deadline_seconds,
        per_client=settings.http_max_connections_per_client,
    )


def serve_socket_mode(
    app: App, services: Services, *, app_token: str, scheduler_lag: Callable[[], float | None]
) -> None:
    """Socket Mode: Slack over the app's WebSocket; the probes on PORT, /metrics where the
    settings put it."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    settings = services.settings
    log.info("connecting to Slack in Socket Mode")
    handler = SocketModeHandler(app, app_token)
    limits = connection_limits(settings)
    with start_observability(
        services, slack_connected=handler.client.is_connected, scheduler_lag=scheduler_lag
    ) as observability:
        routes = port_routes(observability, settings)
        health = serve_in_background(
            routes,
            host=settings.host,
            port=settings.port,
            limits=limits,
            bearer_tokens=metrics_tokens(settings),
        )
        log.info(
            "health checks on http://%s:%d (%s)",
            settings.host,
            health.port,
            ", ".join(sorted(routes)),
        )
        metrics = None
        try:
            metrics = serve_metrics(observability, settings, limits=limits)
            handler.start()
        finally:
            if metrics is not None:
                metrics.stop()
            health.stop()


def slack_problem(settings: Settings) -> str | None:
    """Why the bot cannot talk to Slack with these settings, in one line; None when it can.

    Asks Slack once with each token (auth.test with the bot token; apps.connections.open with
    the app token in Socket Mode), so a wrong, revoked or misplaced token, or a Slack that
    cannot be reached, stops start-up with what to fix instead of a traceback."""
    client = make_web_client(settings)
    client.retry_handlers.clear()  # one answer is enough to know
    # slack_sdk logs a failed request at ERROR before raising it: the one line below says it.
    sdk_log = logging.getLogger("slack_sdk.web.base_client")
    previous_level = sdk_log.level
    sdk_log.setLevel(logging.CRITICAL)
    try:
        return _slack_problem(client, settings)
    finally:
        sdk_log.setLevel(previous_level)


def _slack_problem(client: WebClient, settings: Settings) -> str | None:
    try:
        client.auth_test()
    except SlackApiError as exc:
        return (
            f"Slack refused SLACK_BOT_TOKEN ({_slack_error(exc)}): copy the Bot User OAuth "
            "Token (xoxb-…) from OAuth & Permissions, and reinstall the app if it was revoked."
        )
    except (SlackClientError, OSError, URLError) as exc:
        return (
            f"Slack could not be reached at {settings.slack_api_url} ({type(exc).__name__}): "
            "check the network, a proxy, or SLACK_API_URL."
        )
    if settings.socket_mode and settings.slack_app_token is not None:
        app_client = WebClient(base_url=settings.slack_api_url, timeout=15)
        try:
            app_client.apps_connections_open(app_token=settings.slack_app_token.get_secret_value())
        except SlackApiError as exc:
            return (
                f"Slack refused SLACK_APP_TOKEN ({_slack_error(exc)}): create an app-level "
                "token (xapp-…) with the connections:write scope under Basic Information, "
                "and check that Socket Mode is on (manifest.yml turns it on)."
            )
        except (SlackClientError, OSError, URLError) as exc:
            return f"Slack's Socket Mode could not be reached ({type(exc).__name__})."
    return None


def _slack_error(exc: SlackApiError) -> str:
    response = getattr(exc, "response", None)
    error = response.get("error") if response is not None else None
    return str(error or "refused")


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX would) before the worker threads start.

    With one arena per thread, memory freed after a team-wide check stays spread over dozens
    of arenas and is never handed back: measured with 10,000 keys (bench/memory.py) the peak
    drops by about 20 MB and stops creeping up from one check to the next. No effect elsewhere.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, arenas)
    except (OSError, AttributeError):
        log.debug("malloc arenas not capped (not glibc)")


class SchedulerThread:
    """The scheduler loop running in a thread of this replica: call it to stop it;
    ``lag_seconds`` for readiness and metrics (None where this replica runs no scheduler)."""

    def __init__(self, scheduler: Scheduler | None) -> None:
        self._scheduler = scheduler
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if scheduler is not None:
            self._thread = threading.Thread(
                target=scheduler.run_forever, args=(self._stop,), name="scheduler", daemon=True
            )
            self._thread.start()

    def lag_seconds(self) -> float | None:
        return None if self._scheduler is None else self._scheduler.lag_seconds()

    def __call__(self) -> None:
        if self._scheduler is None or self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=30)
        self._scheduler.close()


def start_scheduler(services: Services, client: WebClient) -> SchedulerThread:
    """Run the reminder / probe loop in a thread of this replica; calling the answer stops it."""
    if not services.settings.scheduler_enabled:
        return SchedulerThread(None)
    scheduler = build_scheduler(
        services, client, lease=timedelta(seconds=services.settings.scheduler_lease_seconds)
    )
    plan_periodic_checks(services)
    return SchedulerThread(scheduler)


def plan_periodic_checks(services: Services) -> None:
    """The daily drift check and activity review of every team, and the daily audit
    checkpoint (idempotent: replicas share one plan)."""
    ensure_drift_checks(
        services.engine,
        interval=timedelta(hours=services.settings.drift_check_hours),
        now=services.clock(),
    )
    ensure_activity_reviews(services.engine, now=services.clock())
    ensure_checkpoint_job(
        services.engine,
        interval=timedelta(hours=services.settings.audit_checkpoint_hours),
        now=services.clock(),
    )


def run_scheduler_only(settings: Settings) -> int:
    """`apikey-bot scheduler`: a replica that only sends reminders and runs probes."""
    if settings.slack_bot_token is None:
        print("apikey-bot: SLACK_BOT_TOKEN is needed to post reminders", file=sys.stderr)
        return 2
    limit_malloc_arenas()
    storage = open_storage(settings)
    services = build_services(settings, storage)
    scheduler = build_scheduler(
        services,
        make_web_client(settings),
        lease=timedelta(seconds=settings.scheduler_lease_seconds),
    )
    plan_periodic_checks(services)
    stop_forwarder = start_audit_forwarder(settings, storage.engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        scheduler.run_forever(stop)
    finally:
        stop_forwarder()
        scheduler.close()
        services.close()
    return 0


def gate_of(app: App, settings: Settings) -> SlackGate:
    """HTTP mode's gate: Slack's signature first, then Bolt (config demands the secret)."""
    if settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is required in HTTP mode")
    return gate_for(
        app,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        slack_api_url=settings.slack_api_url,
    )


def serve_http(
    app: App,
    services: Services,
    *,
    scheduler_lag: Callable[[], float | None] = lambda: None,
) -> None:
    """Slack's events, with /healthz and /readyz beside them on PORT; /metrics on a port of
    its own, or beside them behind METRICS_TOKEN."""
    settings = services.settings
    limits = connection_limits(settings)
    observability = start_observability(services, slack_connected=None, scheduler_lag=scheduler_lag)
    try:
        server = make_server(
            gate_of(app, settings),
            host=settings.host,
            port=settings.port,
            routes=port_routes(observability, settings),
            limits=limits,
            bearer_tokens=metrics_tokens(settings),
        )
    except OSError as exc:
        observability.close()
        raise ConfigError(
            f"configuration error: PORT: cannot serve on {settings.host}:{settings.port} "
            f"({exc.strerror or type(exc).__name__})"
        ) from None
    try:
        metrics = serve_metrics(observability, settings, limits=limits)
    except ConfigError:
        server.server_close()
        observability.close()
        raise
    stop = threading.Event()

    def shutdown(*_args: object) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info(
        "serving Slack on http://%s:%d/slack/events (/healthz, /readyz beside it)",
        settings.host,
        server.server_port,
    )
    # manifest.yml sets the app up in Socket Mode: in HTTP mode Slack calls only if the app's
    # Request URLs point here. Said once, so a missing SLACK_APP_TOKEN is not a silent puzzle.
    log.info(
        "HTTP mode: Slack's Request URLs must point to this server (manifest.yml: "
        "socket_mode_enabled: false); for Socket Mode set SLACK_APP_TOKEN instead"
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        if metrics is not None:
            metrics.stop()
        observability.close()
        services.close()
        log.info("stopped")
