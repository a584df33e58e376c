"""A whole bot on this machine: the Binance simulator, the Slack stand-in and the bot itself
serving HTTP on 127.0.0.1. Used by the end-to-end tests, the benchmarks and the sandbox.

Nothing here reaches the internet: Binance and Slack are the local stand-ins.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slack_bolt import App

from bot.app import build_app
from bot.bootstrap import open_storage
from bot.config import MetricsPlacement, Settings, load_settings
from bot.job_queue.scheduler import Clock, Scheduler, TickReport
from bot.jobs.handlers import build_scheduler
from bot.operations.routes import Observability, start_observability
from bot.operations.server import (
    BackgroundServer,
    metrics_tokens,
    port_routes,
    serve_in_background,
)
from bot.runner import build_services, connection_limits, gate_of
from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.slack_standin import SlackStandIn
from bot.services.context import Services
from bot.slack.http_server import HttpServer, make_server
from storage.crypto import generate_master_key

SANDBOX_SIGNING_SECRET = "sandbox-signing-secret-not-a-real-one"  # noqa: S105 - local only
SANDBOX_BOT_TOKEN = "xoxb-sandbox"  # noqa: S105 - local only


@dataclass
class LocalStack:
    simulator: BinanceSimulator
    slack: SlackStandIn
    settings: Settings
    services: Services
    app: App
    url: str  # the bot's base URL, e.g. http://127.0.0.1:54321
    metrics_url: str  # where GET /metrics is: a port of its own, or ``url`` with METRICS_TOKEN
    observability: Observability
    _server: HttpServer
    _metrics_server: BackgroundServer | None
    _thread: threading.Thread
    _owns_simulator: bool
    _owns_slack: bool

    def scheduler(self, clock: Clock, **kwargs: Any) -> Scheduler:
        """A scheduler for this bot, ticked by hand (tests, sandbox) with the given clock."""
        return build_scheduler(self.services, self.app.client, clock=clock, **kwargs)

    def tick(self, clock: Clock, *, times: int = 1, worker_id: str = "test") -> TickReport:
        """Run the work due by ``clock`` ``times`` over with a scheduler made for it (tests);
        returns the last tick's report."""
        scheduler = self.scheduler(clock, worker_id=worker_id)
        try:
            report = scheduler.tick()
            for _ in range(times - 1):
                report = scheduler.tick()
            return report
        finally:
            scheduler.close()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """True once the bot has finished everything the requests answered so far started.

        Call it after the requests' answers arrived: an ack is answered before its listener ends
        (and a listener hands slow work on), so both pools are counted (``Services.in_flight``).
        The simulator and the Slack stand-in need no watching: the bot waits for each of its
        calls to them, and both record a request before they answer it.
        """
        return self.services.wait_idle(timeout)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self._metrics_server is not None:
            self._metrics_server.stop()
        self.observability.close()
        # Listeners still running after their ack (and the work they handed on) finish here,
        # while the Slack stand-in still answers: none of it spills into whatever runs next.
        self.services.wait_idle(timeout=10)
        self.services.close()
        self.services.engine.dispose()
        if self._owns_slack:
            self.slack.stop()
        if self._owns_simulator:
            self.simulator.stop()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_stack(
    *,
    workdir: Path,
    database_url: str | None = None,
    simulator: BinanceSimulator | None = None,
    slack: SlackStandIn | None = None,
    signing_secret: str = SANDBOX_SIGNING_SECRET,
    master_keys: str | None = None,
    binance_timeout_seconds: float = 3.0,
    port: int = 0,
    **settings_overrides: object,
) -> LocalStack:
    """Start whatever is not given (simulator, Slack stand-in) and the bot, all on 127.0.0.1."""
    owns_simulator = simulator is None
    owns_slack = slack is None
    simulator = simulator or BinanceSimulator().start()
    slack = slack or SlackStandIn(bot_token=SANDBOX_BOT_TOKEN).start()
    settings = load_settings(
        _env_file=None,
        slack_bot_token=slack.bot_token if hasattr(slack, "bot_token") else SANDBOX_BOT_TOKEN,
        slack_signing_secret=signing_secret,
        slack_api_url=slack.url,
        database_url=database_url or f"sqlite:///{workdir / 'apikey-bot.db'}",
        binance_api_url=simulator.url,
        binance_timeout_seconds=binance_timeout_seconds,
        master_keys=master_keys or generate_master_key("k1").encoded(),
        master_keys_file=workdir / "apikey-bot-master.key",
        host="127.0.0.1",
        port=port or 3000,
        **settings_overrides,
    )
    storage = open_storage(settings)
    services = build_services(settings, storage)
    app = build_app(settings, services)
    observability = start_observability(services, slack_connected=None, scheduler_lag=lambda: None)
    limits = connection_limits(settings)
    tokens = metrics_tokens(settings)
    server = make_server(
        gate_of(app, settings),
        host="127.0.0.1",
        port=port,
        routes=port_routes(observability, settings),
        limits=limits,
        bearer_tokens=tokens,
    )
    thread = threading.Thread(target=server.serve_forever, name="bot-http", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    # /metrics on a port of its own (a free one), unless the settings put it beside Slack
    # behind a token; in the sandbox, also when production would leave it off.
    metrics_server = None
    metrics_url = url
    if settings.metrics_placement is not MetricsPlacement.BESIDE_SLACK:
        metrics_server = serve_in_background(
            observability.metrics,
            host="127.0.0.1",
            port=0,
            limits=limits,
            bearer_tokens=tokens,
            setting="METRICS_PORT",
        )
        metrics_url = f"http://127.0.0.1:{metrics_server.port}"
    return LocalStack(
        simulator=simulator,
        slack=slack,
        settings=settings,
        services=services,
        app=app,
        url=url,
        metrics_url=metrics_url,
        observability=observability,
        _server=server,
        _metrics_server=metrics_server,
        _thread=thread,
        _owns_simulator=owns_simulator,
        _owns_slack=owns_slack,
    )
