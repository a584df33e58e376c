"""Helpers for end-to-end tests: a running local stack and register-modal submissions."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bot.ids import Callback
from bot.sandbox.binance_simulator import BinanceSimulator
from bot.sandbox.requests import FormValues, register_form_values
from bot.sandbox.slack_standin import SlackStandIn
from bot.sandbox.stack import LocalStack
from bot.services.custody.keys import RegistrationForm, register_key
from storage.models import KeyPurpose, KeyType, utcnow
from tests.slack_requests import SIGNING_SECRET, BotClient, view_submission

TEAM = "T0TEST"
ALICE = "U0ALICE"
BOB = "U0BOB"


def register_values(
    *,
    label: str,
    api_key: str,
    secret: str,
    account: str = "main",
    key_type: str = "HMAC",
    purpose: str = "read_only",
    owner: str = ALICE,
    delivery: str | None = None,
    confirm: bool = False,
    service_ips: str | None = None,
    extras: tuple[str, ...] = (),
) -> FormValues:
    """The register modal's state, with the test workspace's defaults (account main, Alice)."""
    return register_form_values(
        service_ips=service_ips,
        extras=extras,
        label=label,
        account=account,
        owner=owner,
        purpose=purpose,
        key_type=key_type,
        api_key=api_key,
        secret=secret,
        delivery=delivery,
        confirm=confirm,
    )


def submit_registration(
    client: BotClient, *, user_id: str = ALICE, channel: str = "C0GENERAL", **values
):
    body = view_submission(
        Callback.REGISTER.value,
        register_values(**values),
        user_id=user_id,
        private_metadata=json.dumps({"channel": channel}),
    )
    return client.post(body)


def register_sim_key(stack: LocalStack, client: BotClient, sim_key, *, label: str, **kw):
    """Register a simulator key through the real modal path; returns the HTTP response."""
    return submit_registration(
        client,
        label=label,
        api_key=sim_key.api_key,
        secret=sim_key.secret,
        key_type=sim_key.key_type,
        **kw,
    )


def bot_client(stack: LocalStack) -> BotClient:
    """Signed requests to the stack's bot; ``command`` and ``action`` mint a ``response_url``
    on the stack's Slack stand-in when none is given (tests use the ``client`` fixture)."""
    return BotClient(stack.url, secret=SIGNING_SECRET, slack=stack.slack)


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def all_text(payload) -> str:
    """Every string in a Slack payload, joined (to search rendered messages)."""
    return json.dumps(payload, ensure_ascii=False)


def register_directly(
    stack: LocalStack,
    label: str,
    *,
    owner: str = ALICE,
    now=None,
    permissions: dict | None = None,
    key_type: str = "HMAC",
    account: str = "main",
    purpose: KeyPurpose = KeyPurpose.TRADING,
    confirm: bool = True,
    ip_restrict: bool = True,
    extra_fields: dict | None = None,
):
    """Register a new simulator key through the service (Binance is asked, as in the modal).
    ``confirm``: the owner ticks "I accept the extra permissions" (registration refuses a key
    beyond its purpose without it; tests of that refusal pass False)."""
    sim_key = stack.simulator.add_key(
        account=account,
        key_type=key_type,
        permissions=permissions,
        ip_restrict=ip_restrict,
        extra_fields=extra_fields,
    )
    registered = register_key(
        engine=stack.services.engine,
        ring=stack.services.ring,
        gateway=stack.services.gateway,
        settings=stack.services.settings,
        form=RegistrationForm(
            team_id=TEAM,
            actor=owner,
            label=label,
            account_alias=account,
            owner_user_id=owner,
            purpose=purpose,
            key_type=KeyType(key_type),
            api_key=sim_key.api_key,
            secret=sim_key.secret,
            confirm_beyond_purpose=confirm,
        ),
        now=now or utcnow(),
    )
    return registered, sim_key


def audit_verdict(stack: LocalStack, user_id: str, *, timeout: float = 30.0) -> tuple[str, str]:
    """`/apikey audit verify` through the running bot: the ack's text, and the verdict that
    arrives afterwards at the command's response_url."""
    url = stack.slack.response_url()
    ack = BotClient(stack.url, secret=SIGNING_SECRET).command(
        "audit verify", user_id=user_id, response_url=url
    )
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params["_response_url"] == url, timeout=timeout
    )
    return all_text(ack.json()), all_text(reply.params)


def _local_port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


def free_port() -> int:
    """A TCP port nothing listens on now, for a process that must be told its port.

    Chosen below the ephemeral range: a port from it (what binding port 0 gives) can be taken
    by any server or client socket of the other test processes between this check and the
    child's bind ("Address already in use"); one below it is taken only by someone who names
    it."""
    low = _local_port_range()[0]
    for _ in range(100):
        port = random.randrange(max(1024, low - 12000), low)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError("no free port below the ephemeral range")


# Settings of the machine running the tests that must not reach a bot started by a test.
_OPERATOR_SETTINGS = ("SLACK_", "MASTER_", "DATABASE_", "BINANCE_", "METRICS_", "AWS_", "SINK_")


@dataclass
class BotProcess:
    """A bot started with ``python -m bot`` in HTTP mode (see ``running_bot``)."""

    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:<PORT>
    simulator: BinanceSimulator
    slack: SlackStandIn
    log: Path  # everything it printed, stdout and stderr

    @property
    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running_bot(
    workdir: Path, *, python_options: tuple[str, ...] = (), **settings: str
) -> Iterator[BotProcess]:
    """``python -m bot`` in HTTP mode as an operator runs it, in ``workdir`` (its SQLite
    database there), with a Binance simulator and a Slack stand-in of its own; healthy when
    this yields. ``settings`` are extra environment variables (``METRICS_PORT=...``); the
    machine's own bot settings are left out. On leaving, the bot gets SIGTERM and is waited
    for: ``proc.returncode`` and ``output`` then tell how it stopped.

    What it prints goes to a file (``log``), never a pipe, so a chatty run (``-X importtime``)
    cannot block on a full pipe."""
    port = free_port()
    with BinanceSimulator() as simulator, SlackStandIn() as slack:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_OPERATOR_SETTINGS)}
        env.update(
            DATABASE_URL=f"sqlite:///{workdir / 'bot.db'}",
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.url,
            BINANCE_API_URL=simulator.url,
            PORT=str(port),
            HOST="127.0.0.1",
        )
        env.update(settings)
        log = workdir.parent / f"{workdir.name}-bot-output.txt"
        with log.open("wb") as printed:
            proc = subprocess.Popen(
                [sys.executable, *python_options, "-m", "bot"],
                cwd=workdir,
                env=env,
                stdout=printed,
                stderr=subprocess.STDOUT,
            )
        bot = BotProcess(
            proc=proc, url=f"http://127.0.0.1:{port}", simulator=simulator, slack=slack, log=log
        )
        try:
            _wait_healthy_or_fail(bot)
            yield bot
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"the bot did not stop on SIGTERM: {bot.output[-2000:]}")


def _wait_healthy_or_fail(bot: BotProcess, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if bot.proc.poll() is not None:
            pytest.fail(f"the bot exited during start-up: {bot.output[-2000:]}")
        try:
            if requests.get(bot.url + "/healthz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    pytest.fail(f"the bot did not become healthy: {bot.output[-2000:]}")
