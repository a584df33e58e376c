"""Health, readiness and metrics as an attacker and an operator meet them over HTTP: probes
that never wait on KMS, the database or Slack in the request, and /metrics kept off the port
Slack posts to.

KMS is moto's standalone server on 127.0.0.1, reached through a small TCP relay of our own that
can be told to hang: from then on it accepts connections and reads requests but never answers,
as an AWS endpoint does behind a broken network path.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
import requests
import sqlalchemy as sa

from bot.config import ConfigError, load_settings
from storage.crypto import KeyRing
from storage.kms import kms_master_key
from tests.e2e import ALICE, all_text, free_port, running_bot, wait_until
from tests.slack_requests import SIGNING_SECRET, BotClient

REGION = "eu-west-1"
METRICS_TOKEN = "metrics-token-0123456789abcdef"  # fake, tests only


# --- a KMS that can hang ----------------------------------------------------------------------


class HangingRelay:
    """A TCP relay to ``upstream``: passes bytes both ways until ``hang()``; from then on it
    still accepts connections and reads what is sent, but nothing goes through and nothing is
    answered, until ``resume()``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self._upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._hanging = threading.Event()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def start(self) -> HangingRelay:
        threading.Thread(target=self._accept, name="relay", daemon=True).start()
        return self

    def hang(self) -> None:
        self._hanging.set()

    def resume(self) -> None:
        self._hanging.clear()

    def stop(self) -> None:
        self._closed.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()

    def _keep(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._keep(client)
            try:
                upstream = self._keep(socket.create_connection(self._upstream, timeout=5))
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self._hanging.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def kms_alias(moto_url, monkeypatch, tmp_path) -> str:
    """A fresh KMS key behind a fresh alias, with dummy credentials and none of the machine's
    own AWS configuration."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_KMS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
    admin = boto3.client("kms", region_name=REGION, endpoint_url=moto_url)
    key_id = admin.create_key(Description="apikey-bot probes")["KeyMetadata"]["KeyId"]
    alias = f"alias/apikey-bot-{uuid.uuid4().hex[:10]}"
    admin.create_alias(AliasName=alias, TargetKeyId=key_id)
    return alias


def _reseal_canary(stack, *, alias: str, moto_url: str) -> None:
    """Seal the KMS key's canary again with a fresh data key, as another replica's start-up
    could: the bot has not seen that data key, so opening the canary must ask KMS (as it must
    once the bot's 5-minute data-key cache has expired)."""
    ring = KeyRing([kms_master_key(key_ref=alias, region=REGION, endpoint_url=moto_url)])
    key_id = ring.active.key_id
    context = f"canary:{key_id}"  # storage.master_keys's canary context
    engine = stack.services.engine
    with engine.begin() as connection:
        sealed = connection.execute(
            sa.text("SELECT sealed FROM crypto_canaries WHERE key_id = :k"), {"k": key_id}
        ).scalar_one()
        fresh = ring.seal(ring.open(sealed, context=context), context=context)
        connection.execute(
            sa.text("UPDATE crypto_canaries SET sealed = :s WHERE key_id = :k"),
            {"s": fresh.blob, "k": key_id},
        )


def _timed_get(url: str, timeout: float = 5.0) -> tuple[float, requests.Response]:
    started = time.monotonic()
    response = requests.get(url, timeout=timeout)
    return time.monotonic() - started, response


def test_readiness_answers_at_once_while_kms_hangs(make_stack, moto_url, kms_alias):
    """Before: with KMS hanging, each /readyz held a worker thread while boto retried under a
    lock, a failure was never remembered, and 20 anonymous calls left no worker for Slack."""
    host, port = moto_url.removeprefix("http://").split(":")
    relay = HangingRelay((host, int(port))).start()
    try:
        stack = make_stack(
            master_kms_key_id=kms_alias,
            aws_region=REGION,
            aws_endpoint_url=relay.url,
            readiness_check_interval_seconds=1,
            readiness_check_timeout_seconds=1,
        )
        _reseal_canary(stack, alias=kms_alias, moto_url=moto_url)
        relay.hang()
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda _: _timed_get(stack.url + "/readyz"), range(20)))
        slowest = max(took for took, _ in answers)
        assert slowest < 1.5, f"a /readyz took {slowest:.1f}s"
        client = BotClient(stack.url, secret=SIGNING_SECRET, slack=stack.slack, timeout=5)
        started = time.monotonic()
        reply = client.command("help", user_id=ALICE)
        assert reply.status_code == 200 and "register" in all_text(reply.json())
        assert time.monotonic() - started < 3.0  # Slack's ack deadline

        # The background check notices within its timeout, and says how old its answer is.
        def unready() -> dict | None:
            took, response = _timed_get(stack.url + "/readyz")
            assert took < 1.5
            body = response.json()
            return body if response.status_code == 503 else None

        body = wait_until(unready, timeout=10, interval=0.2)
        assert body["master_keys"] == "cannot open" and body["database"] == "ok"
        assert isinstance(body["checked_seconds_ago"], int | float)
        assert 0 <= body["checked_seconds_ago"] < 10
        health = requests.get(stack.url + "/healthz", timeout=2)
        assert health.status_code == 200 and "checked_seconds_ago" in health.json()

        relay.resume()  # KMS answers again: ready again, without a restart
        wait_until(
            lambda: requests.get(stack.url + "/readyz", timeout=2).status_code == 200,
            timeout=15,
            interval=0.2,
        )
    finally:
        relay.stop()  # frees whatever still waits on it before the stack stops


# --- /metrics off the Slack port --------------------------------------------------------------


def test_metrics_are_not_served_on_the_slack_port(stack):
    """Before: GET /metrics on the public Slack port told anyone how many keys can withdraw."""
    public = requests.get(stack.url + "/metrics", timeout=5)
    assert public.status_code == 404
    assert "apikey_bot" not in public.text
    assert stack.metrics_url != stack.url
    metrics = requests.get(stack.metrics_url + "/metrics", timeout=5)
    assert metrics.status_code == 200 and "apikey_bot_keys" in metrics.text
    # The metrics listener serves metrics only.
    assert requests.post(stack.metrics_url + "/slack/events", timeout=5).status_code == 404
    # The probes stay where the load balancer looks for them.
    assert requests.get(stack.url + "/readyz", timeout=5).status_code == 200


def test_metrics_beside_slack_need_the_bearer_token(make_stack, caplog):
    caplog.set_level(logging.DEBUG)
    stack = make_stack(metrics_token=METRICS_TOKEN)
    assert stack.metrics_url == stack.url  # no port of their own: beside Slack, with the token
    url = stack.url + "/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        refused = requests.get(url, headers=headers, timeout=5)
        assert refused.status_code == 401, headers
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        assert "apikey_bot" not in refused.text
    allowed = requests.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5)
    assert allowed.status_code == 200 and "apikey_bot_keys" in allowed.text
    assert requests.get(stack.url + "/healthz", timeout=5).status_code == 200  # no token needed
    assert METRICS_TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"port": 3000, "metrics_port": 3000}, "METRICS_PORT"),
        ({"metrics_token": "short"}, "METRICS_TOKEN"),
        ({"http_max_connections_per_client": -1}, "HTTP_MAX_CONNECTIONS_PER_CLIENT"),
        ({"http_request_deadline_seconds": 0}, "HTTP_REQUEST_DEADLINE_SECONDS"),
        ({"readiness_check_timeout_seconds": 0}, "READINESS_CHECK_TIMEOUT_SECONDS"),
    ],
)
def test_bad_serving_settings_are_one_line_naming_them(settings, named):
    with pytest.raises(ConfigError) as refused:
        load_settings(_env_file=None, **settings)
    message = str(refused.value)
    assert message.startswith(f"configuration error: {named}:"), message
    assert "short" not in message and "\n" not in message


def test_the_bot_serves_metrics_on_their_own_port(tmp_path):
    """`python -m bot` in HTTP mode with METRICS_PORT: /metrics there, and not on PORT."""
    metrics_port = free_port()
    with running_bot(tmp_path, METRICS_PORT=str(metrics_port)) as bot:
        assert requests.get(bot.url + "/metrics", timeout=5).status_code == 404
        metrics = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
        assert metrics.status_code == 200 and "apikey_bot_" in metrics.text
    output = bot.output
    assert bot.proc.returncode == 0, output
    assert f"metrics on http://127.0.0.1:{metrics_port}/metrics" in output
    assert "Traceback" not in output
