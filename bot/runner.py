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

import sqlalchemy as sa

from bot.binance import BinanceGateway
from bot.bootstrap import Storage, open_storage
from bot.config import ConfigError, Settings
from bot.jobs.handlers import build_scheduler
from bot.services.audit_trail import ensure_checkpoint_job
from bot.services.context import Services
from bot.services.drift_plan import ensure_drift_checks
from bot.slack.app import build_app, make_web_client
from bot.slack.gate import SlackGate, gate_for
from bot.slack.http_server import make_server

log = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt parameter

MISSING_SLACK = """\
apikey-bot: Slack credentials are missing: {missing}.
  To connect to your workspace, create the app from manifest.yml (api.slack.com/apps ->
  Create New App -> From a manifest), install it, then set in the environment or in .env:
    SLACK_BOT_TOKEN=xoxb-...        (OAuth & Permissions -> Bot User OAuth Token)
    SLACK_SIGNING_SECRET=...        (Basic Information -> Signing Secret; HTTP mode)
    SLACK_APP_TOKEN=xapp-...        (optional: Basic Information -> App-Level Tokens,
                                     scope connections:write; turns on Socket Mode)
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
    return Services(
        settings=settings, engine=storage.engine, ring=storage.key_ring, gateway=gateway
    )


def run_bot(settings: Settings) -> int:
    missing = settings.missing_slack_settings()
    if missing:
        print(MISSING_SLACK.format(missing=", ".join(missing)), file=sys.stderr, end="")
        return 2
    # Hand the interpreter lock over more often than every 5 ms: an ack waiting behind
    # report rendering gets its turn sooner (Slack wants every ack within 3 s).
    sys.setswitchinterval(0.001)
    limit_malloc_arenas()
    storage = open_storage(settings)
    services = build_services(settings, storage)
    app = build_app(settings, services)
    stop_scheduler = start_scheduler(services, app.client)
    try:
        if settings.socket_mode and settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            log.info("connecting to Slack in Socket Mode")
            SocketModeHandler(app, settings.slack_app_token.get_secret_value()).start()
        else:
            serve_http(app, services, host=settings.host, port=settings.port)
    finally:
        stop_scheduler()
    return 0


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


def start_scheduler(services: Services, client) -> Callable[[], None]:
    """Run the reminder / probe loop in a thread of this replica; returns its stop function."""
    if not services.settings.scheduler_enabled:
        return lambda: None
    scheduler = build_scheduler(
        services, client, lease=timedelta(seconds=services.settings.scheduler_lease_seconds)
    )
    plan_periodic_checks(services)
    stop = threading.Event()
    thread = threading.Thread(
        target=scheduler.run_forever, args=(stop,), name="scheduler", daemon=True
    )
    thread.start()

    def stop_it() -> None:
        stop.set()
        thread.join(timeout=30)
        scheduler.close()

    return stop_it


def plan_periodic_checks(services: Services) -> None:
    """The daily drift check of every team and the daily audit checkpoint (idempotent:
    replicas share one plan)."""
    ensure_drift_checks(
        services.engine,
        interval=timedelta(hours=services.settings.drift_check_hours),
        now=services.clock(),
    )
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
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        scheduler.run_forever(stop)
    finally:
        scheduler.close()
        services.close()
    return 0


def gate_of(app, settings: Settings) -> SlackGate:
    """HTTP mode's gate: Slack's signature first, then Bolt (config demands the secret)."""
    if settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET is required in HTTP mode")
    return gate_for(
        app,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        slack_api_url=settings.slack_api_url,
    )


def database_is_up(services: Services) -> bool:
    with services.engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
    return True


def serve_http(app, services: Services, *, host: str, port: int) -> None:
    server = make_server(
        gate_of(app, services.settings),
        host=host,
        port=port,
        health_check=lambda: database_is_up(services),
    )
    stop = threading.Event()

    def shutdown(*_args) -> None:
        if not stop.is_set():
            stop.set()
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    log.info(
        "serving Slack on http://%s:%d/slack/events (health: /healthz)", host, server.server_port
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        services.close()
        log.info("stopped")
