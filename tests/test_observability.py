"""Health, readiness and metrics: the routes as both serving modes answer them (here through
Socket Mode's own small server on a free port), and JSON log lines."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bot.bootstrap import configure_logging
from bot.config import ConfigError
from bot.job_queue.kinds import JobKind
from bot.job_queue.queue import JobOutcome, NewJob, schedule_jobs
from bot.job_queue.scheduler import FixedClock, Scheduler
from bot.operations.routes import Observability, start_observability
from bot.operations.server import serve_in_background
from bot.services.oversight.drift_plan import ensure_drift_checks
from bot.services.response.incidents import raise_incident
from storage.db import session_scope
from storage.models import KeyPurpose, utcnow
from tests.e2e import ALICE, TEAM, bot_client, register_directly, wait_until
from tests.factories import TRADE, WITHDRAW, make_due, random_api_key
from tests.slack_requests import slash_command


@pytest.fixture
def observe():
    """``observe(services, **kw)``: ``start_observability`` for a test; stopped at its end."""
    started: list[Observability] = []

    def start(services, *, slack_connected=None, scheduler_lag=lambda: None) -> Observability:
        observability = start_observability(
            services, slack_connected=slack_connected, scheduler_lag=scheduler_lag
        )
        started.append(observability)
        return observability

    yield start
    for observability in started:
        observability.close()


@pytest.fixture
def served(stack, observe):
    """The probes and /metrics on a server of their own on a free port (as Socket Mode serves
    its probes), for this stack's services."""
    state = {"slack": True, "lag": 1.0}
    observability = observe(
        stack.services, slack_connected=lambda: state["slack"], scheduler_lag=lambda: state["lag"]
    )
    routes = {**observability.probes, **observability.metrics}
    server = serve_in_background(routes, host="127.0.0.1", port=0)
    try:
        yield f"http://127.0.0.1:{server.port}", state
    finally:
        server.stop()


def _samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = requests.get(url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_liveness_keeps_its_json_shape(served):
    url, _ = served
    response = requests.get(url + "/healthz", timeout=5)
    assert response.status_code == 200
    body = response.json()
    assert body.pop("checked_seconds_ago") >= 0
    assert body == {"ok": True, "database": "ok"}


def test_readiness_names_each_check_and_fails_on_any(served, stack):
    url, state = served
    ready = requests.get(url + "/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json() | {"checked_seconds_ago": 0} == {
        "checked_seconds_ago": 0,
        "ok": True,
        "database": "ok",
        "master_keys": "ok",
        "scheduler": "ok",
        "slack": "ok",
    }
    state["slack"] = False
    down = requests.get(url + "/readyz", timeout=5)
    assert down.status_code == 503
    assert down.json()["slack"] == "disconnected" and down.json()["ok"] is False
    state["slack"] = True
    state["lag"] = stack.settings.readiness_max_scheduler_lag_seconds + 60
    behind = requests.get(url + "/readyz", timeout=5)
    assert behind.status_code == 503 and behind.json()["scheduler"].endswith("s behind")


def test_readiness_without_scheduler_or_socket_mode(stack, observe):
    probes = observe(stack.services).probes
    status, body, content_type = probes["/readyz"]()
    assert status == 200 and content_type.startswith("application/json")
    assert json.loads(body) | {"checked_seconds_ago": 0} == {
        "checked_seconds_ago": 0,
        "ok": True,
        "database": "ok",
        "master_keys": "ok",
        "scheduler": "not running here",
    }


def test_readiness_fails_when_the_database_is_gone(stack, tmp_path, observe):
    gone = sa.create_engine(f"sqlite:///{tmp_path / 'no such directory' / 'bot.db'}")
    services = dataclasses.replace(stack.services, engine=gone)
    try:
        observability = observe(services, scheduler_lag=lambda: 0.0)
        status, body, _ = observability.probes["/readyz"]()
        health, health_body, _ = observability.probes["/healthz"]()
        _, metrics, _ = observability.metrics["/metrics"]()
    finally:
        services.close()
    assert status == 503
    assert json.loads(body) | {"ok": False, "checked_seconds_ago": 0} == {
        "ok": False,
        "database": "down",
        "master_keys": "cannot open",
        "scheduler": "ok",
        "checked_seconds_ago": 0,
    }
    assert health == 503
    assert json.loads(health_body) | {"checked_seconds_ago": 0} == {
        "ok": False,
        "database": "down",
        "checked_seconds_ago": 0,
    }
    assert b"apikey_bot_database_up 0.0" in metrics
    assert b"apikey_bot_keys{" not in metrics


def test_other_paths_and_methods_are_refused(served):
    url, _ = served
    assert requests.get(url + "/slack/events", timeout=5).status_code == 404
    refused = requests.post(url + "/metrics", data=b"x", timeout=5)
    assert refused.status_code == 405 and refused.headers["Allow"] == "GET, HEAD"


def test_metrics_count_commands_acks_binance_calls_and_keys(served, stack):
    url, _ = served
    before = _samples(url)
    register_directly(stack, "trader", permissions=TRADE)
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    client = bot_client(stack)
    response_url = stack.slack.response_url()
    assert client.post(slash_command("help", response_url=response_url)).status_code == 200
    assert client.post(slash_command("list", response_url=response_url)).status_code == 200
    ok = ("apikey_bot_slack_requests_total", {"kind": "command", "outcome": "ok"})

    def counted():
        after = _samples(url)
        done = _value(after, ok[0], **ok[1]) - _value(before, ok[0], **ok[1])
        return after if done == 2 else None

    after = wait_until(counted)
    acks = _value(after, "apikey_bot_slack_ack_seconds_count", kind="command")
    assert acks - _value(before, "apikey_bot_slack_ack_seconds_count", kind="command") == 2
    endpoint = "/sapi/v1/account/apiRestrictions"
    calls = _value(after, "apikey_bot_binance_calls_total", endpoint=endpoint, outcome="ok")
    assert (
        calls - _value(before, "apikey_bot_binance_calls_total", endpoint=endpoint, outcome="ok")
        >= 2
    )
    # Each limit its own series: apiRestrictions counts against its own /sapi IP budget.
    sapi = f"sapi_ip {endpoint}"
    assert _value(after, "apikey_bot_binance_weight_used", limit=sapi) >= 2
    assert _value(after, "apikey_bot_binance_weight_limit", limit=sapi) == 12_000
    assert (
        _value(after, "apikey_bot_binance_weight_limit", limit="api")
        == stack.services.gateway.budget.limit
    )
    # read from the database at scrape time (cached for 15 s: the first scrape was before)
    assert _value(before, "apikey_bot_database_up") == 1


def test_database_figures(stack, observe):
    register_directly(stack, "trader", permissions=TRADE)
    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    raise_incident(
        engine=stack.services.engine,
        team_id=TEAM,
        label="vault",
        actor=ALICE,
        channel=None,
        now=utcnow(),
    )
    metrics = observe(stack.services, scheduler_lag=lambda: 3.5).metrics
    _, body, _ = metrics["/metrics"]()
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    assert _value(samples, "apikey_bot_incidents_open") == 1
    assert _value(samples, "apikey_bot_pages_open") == 1
    assert _value(samples, "apikey_bot_keys", tier="trade") == 1
    assert _value(samples, "apikey_bot_keys", tier="withdraw") == 1
    assert _value(samples, "apikey_bot_keys", tier="read") == 0
    assert (
        _value(
            samples, "apikey_bot_keys_by_worst_finding", finding="compromised", severity="critical"
        )
        == 1
    )
    assert _value(samples, "apikey_bot_scheduler_lag_seconds") == 3.5
    assert _value(samples, "apikey_bot_credential_deliveries", state="pending") == 0


def test_scheduler_lag_counts_late_jobs_from_its_start(stack):
    engine = stack.services.engine
    start = utcnow()
    clock = FixedClock(start)
    scheduler = Scheduler(engine, {"ping": lambda job, now: _done()}, clock=clock, worker_id="w")
    try:
        scheduler.tick()  # nothing due: on time
        assert scheduler.lag_seconds() < 1
        with session_scope(engine) as session:
            schedule_jobs(
                session,
                [
                    NewJob(
                        team_id=TEAM,
                        kind="ping",
                        dedupe_key="old",
                        due_at=start - timedelta(days=2),
                    ),
                    NewJob(
                        team_id=TEAM,
                        kind="ping",
                        dedupe_key="late",
                        due_at=start + timedelta(minutes=1),
                    ),
                ],
            )
        clock.advance(timedelta(minutes=6))
        scheduler.tick()
        # the job due before this scheduler started counts from its start (6 min), not 2 days
        assert 359 <= scheduler.lag_seconds() <= 361
        scheduler.tick()
        assert scheduler.lag_seconds() < 1
    finally:
        scheduler.close()


def _done():
    return JobOutcome()


def test_json_log_lines_are_redacted(tmp_path):
    stream = io.StringIO()
    handler = configure_logging("INFO", handler=logging.StreamHandler(stream), log_format="json")
    secret = random_api_key()
    try:
        log = logging.getLogger("bot.test_json")
        log.info("a line with %s and\nanother line", secret)
        try:
            raise ValueError(f"boom {secret}")
        except ValueError:
            log.exception("it failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"time", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "bot.test_json"
    assert first["message"].endswith("and\nanother line")
    assert second["message"] == "it failed" and "ValueError" in second["exception"]
    assert secret not in stream.getvalue()


def test_commands_outside_the_allowed_channels_count_as_denied(make_stack, observe):
    stack = make_stack(allowed_channel_ids="C0ALLOWED")
    metrics = observe(stack.services).metrics

    def denied() -> float:
        _, body, _ = metrics["/metrics"]()
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "apikey_bot_slack_requests_total" and sample.labels == {
                    "kind": "command",
                    "outcome": "denied",
                }:
                    return sample.value
        return 0.0

    before = denied()
    reply = bot_client(stack).post(
        slash_command("list", response_url=stack.slack.response_url(), channel_id="C0ELSEWHERE")
    )
    assert "can only be used in" in reply.text
    assert denied() == before + 1


def test_a_port_in_use_is_one_clear_line(served, stack, observe):
    url, _ = served
    port = int(url.rsplit(":", 1)[1])
    observability = observe(stack.services)
    with pytest.raises(ConfigError, match=rf"PORT: cannot serve health checks on 127.0.0.1:{port}"):
        serve_in_background(observability.probes, host="127.0.0.1", port=port)
    with pytest.raises(ConfigError, match=rf"METRICS_PORT: cannot serve metrics on .*:{port}"):
        serve_in_background(
            observability.metrics, host="127.0.0.1", port=port, setting="METRICS_PORT"
        )


def _scrape(stack) -> dict:
    _, body, _ = stack.observability.metrics["/metrics"]()
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


SLACK_DELIVERIES = "apikey_bot_slack_deliveries_total"


def test_slack_retries_and_failed_deliveries_are_counted(make_stack):
    stack = make_stack(alert_channel="C0ALERTS")
    before = _scrape(stack)
    # the Web API client's own retry of a 5xx
    stack.slack.inject_fault("chat.postMessage", status=500, count=1)
    stack.app.client.chat_postMessage(channel="C0ALERTS", text="hello")
    # a scheduled job whose message Slack refuses: the job fails and is retried later
    _, sim_key = register_directly(stack, "reader", purpose=KeyPurpose.READ_ONLY)
    engine = stack.services.engine
    clock = FixedClock(utcnow() + timedelta(hours=1))
    ensure_drift_checks(engine, interval=timedelta(0), now=clock.now())
    make_due(engine, kind=JobKind.DRIFT_CHECK, at=clock.now())
    stack.simulator.set_permissions(sim_key.api_key, enableWithdrawals=True)  # a change to report
    stack.slack.inject_fault("chat.postMessage", status=200, error="channel_not_found")
    stack.tick(clock)
    after = _scrape(stack)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew(SLACK_DELIVERIES, route="web_api", outcome="retried") == 1
    assert grew(SLACK_DELIVERIES, route="scheduled", outcome="failed") == 1
    assert grew("apikey_bot_scheduler_jobs_failed_total", kind="drift_check") == 1


def test_http_mode_serves_readiness_beside_slack_and_metrics_apart(stack):
    """The production server (waitress) serves /readyz on the port Slack posts to, and
    /metrics on a port of its own, counting what went through /slack/events."""
    from tests.e2e import ALICE, bot_client

    url = stack.slack.response_url(command=True)
    assert bot_client(stack).command("help", user_id=ALICE, response_url=url).status_code == 200
    ready = requests.get(stack.url + "/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["database"] == "ok", ready.text
    assert requests.get(stack.url + "/metrics", timeout=10).status_code == 404
    metrics = requests.get(stack.metrics_url + "/metrics", timeout=10)
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "apikey_bot_slack_requests_total" in metrics.text
    assert requests.post(stack.metrics_url + "/metrics", timeout=10).status_code == 405
