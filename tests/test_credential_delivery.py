"""Delivering credentials to the service that uses them: the file sink and AWS Secrets Manager.

AWS is moto's standalone server on 127.0.0.1, reached through a small recording proxy that can
also play a sink that is down or an answer lost after the write; the file sink writes real
files. Covered: registration and rotation through signed Slack requests, a rotation completed
only when the sink confirmed the new version and Binance rejects the old key, failures (down,
access denied, lost answer, partial write, missing directory) that lose nothing and duplicate
nothing, what status and App Home say, and the private key reaching nothing but the sink.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest
import requests
import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.bootstrap import configure_logging
from bot.job_queue.scheduler import FixedClock
from bot.sinks import DeliveredCredentials, SinkError, SinkFailure
from bot.sinks.files import FileSink
from storage.models import (
    ApiKey,
    AuditEvent,
    CredentialDelivery,
    KeyStatus,
    Rotation,
    utcnow,
)
from tests.e2e import ALICE, BOB, all_text, bot_client, register_directly, register_sim_key
from tests.factories import TRADE
from tests.test_rotation import _submit_rotation
from tests.test_secret_leak_scan import Canary, find_leaks

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"
REGION = "eu-west-1"
SECRET_WRITES = ("secretsmanager.PutSecretValue", "secretsmanager.CreateSecret")


# --- AWS Secrets Manager: moto behind a recording proxy ----------------------------------------


@dataclass
class AwsProxy:
    """Forwards to moto and records every request. ``mode``: "up"; "down" (the connection is
    closed unanswered, as a sink that is down); "lose_answer" (the request reaches AWS, then
    the connection closes before the answer: written, but never confirmed to the bot)."""

    upstream: str
    mode: str = "up"
    requests: list[tuple[str, bytes]] = field(default_factory=list)
    url: str = ""
    lose_next: int = 0

    def target_count(self, target: str) -> int:
        return sum(1 for t, _ in self.requests if t == target)


@pytest.fixture
def aws(moto_url, aws_env) -> Iterator[AwsProxy]:
    proxy = AwsProxy(upstream=moto_url)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "")
            proxy.requests.append((target, body))
            if proxy.mode == "down":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            answer = requests.post(
                proxy.upstream + self.path, data=body, headers=headers, timeout=10
            )
            written = answer.status_code == 200 and target in SECRET_WRITES
            if proxy.mode == "lose_answer" and written and proxy.lose_next > 0:
                proxy.lose_next -= 1
                self.close_connection = True
                self.connection.shutdown(2)
                return
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in {"content-length", "connection", "transfer-encoding"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()


def _secrets(moto_url: str):
    return boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_url)


def _aws_stack(make_stack, aws: AwsProxy, **settings):
    pattern = f"apikey-bot-{uuid.uuid4().hex[:8]}/{{account}}/{{label}}"
    return make_stack(
        admin_user_ids=ADMIN,
        alert_channel=ALERTS,
        sink_aws_secrets_manager=True,
        sink_aws_secret_name=pattern,
        aws_region=REGION,
        aws_endpoint_url=aws.url,
        **settings,
    )


# --- helpers --------------------------------------------------------------------------------


def _key(stack, label="bot") -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).one()


def _deliveries(stack, label="bot") -> list[CredentialDelivery]:
    key = _key(stack, label)
    with Session(stack.services.engine) as session:
        return list(
            session.exec(
                select(CredentialDelivery)
                .where(CredentialDelivery.key_id == key.id)
                .order_by(col(CredentialDelivery.version))
            )
        )


def _events(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)))


def _command(stack, client, text: str, *, user=ALICE) -> str:
    """A slash command through the signed HTTP path; its answer as text (ack or response)."""
    before = len(stack.slack.calls)
    answer = client.command(text, user_id=user, response_url=stack.slack.response_url())
    assert answer.status_code == 200
    stack.wait_idle()
    later = [json.dumps(c.params) for c in stack.slack.calls[before:]]
    return answer.text + "".join(later)


def _choose(stack, client, label: str, sink: str, *, user=ALICE) -> str:
    return _command(stack, client, f"deliver {label} to {sink}", user=user)


# --- the file sink through the bot ------------------------------------------------------------


def test_a_registered_key_is_delivered_to_its_file_once_with_mode_0600(make_stack, tmp_path):
    sink_dir = tmp_path / "credentials"
    sink_dir.mkdir()
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(sink_dir), sink_default="file")
    client = bot_client(stack)
    sim_key = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    answer = register_sim_key(stack, client, sim_key, label="bot", purpose="trading")
    assert answer.status_code == 200 and "errors" not in answer.text, answer.text
    clock = FixedClock(utcnow())
    stack.tick(clock)
    target = sink_dir / "bot.json"
    document = json.loads(target.read_text())
    assert document["api_key"] == sim_key.api_key and document["secret"] == sim_key.secret
    assert document["key_type"] == "HMAC" and document["version"] == 1
    assert document["format"] == "apikey-bot/credentials@1" and "private_key_pem" not in document
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in sink_dir.iterdir()] == ["bot.json"]  # no temporary file left
    (delivered,) = _events(stack, "credentials.delivered")
    assert delivered.detail["version"] == 1 and delivered.detail["sink"] == "file"
    assert sim_key.secret not in json.dumps(delivered.detail)
    stack.tick(clock)  # nothing more to write
    assert len(_events(stack, "credentials.delivered")) == 1

    where = _command(stack, client, "deliver bot")
    assert "Delivered to file" in where and str(target) in where and "version 1" in where
    status = _command(stack, client, "status bot")
    assert "Delivered to file" in status and "version 1, written" in status
    assert sim_key.secret not in status


def test_a_missing_directory_keeps_the_delivery_pending_and_shows_it(make_stack, tmp_path):
    sink_dir = tmp_path / "not-mounted"
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(sink_dir), sink_default="file")
    client = bot_client(stack)
    register_directly(stack, "bot")
    clock = FixedClock(utcnow())
    stack.tick(clock)
    stack.tick(clock)  # not due again yet: the failure is retried with backoff
    (delivery,) = _deliveries(stack)
    assert delivery.state == "pending" and delivery.attempts == 1
    assert delivery.first_failed_at is not None and "does not exist" in delivery.last_error
    assert len(_events(stack, "credentials.delivery_failed")) == 1
    status = _command(stack, client, "status bot")
    assert "Delivery failed since" in status and "does not exist" in status
    home = stack.services  # App Home is built from the same picture
    from bot.services.access import Actor
    from bot.services.home import picture_for

    picture = picture_for(
        home.engine, Actor(user_id=ALICE, team_id="T0TEST", is_admin=False), utcnow()
    )
    (own,) = picture.own_keys
    assert any("Delivery failed since" in f.text for f in own.findings)

    clock.advance(timedelta(minutes=3))
    stack.tick(clock)  # still down: one audit event for the whole outage
    assert len(_events(stack, "credentials.delivery_failed")) == 1
    sink_dir.mkdir()  # the volume is mounted
    clock.advance(timedelta(minutes=5))
    stack.tick(clock)
    (delivery,) = _deliveries(stack)
    assert delivery.state == "delivered" and delivery.attempts == 3
    assert json.loads((sink_dir / "bot.json").read_text())["version"] == 1


def test_choosing_a_sink_is_for_the_owner_or_an_admin_and_says_what_is_wrong(make_stack, tmp_path):
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(tmp_path))
    client = bot_client(stack)
    register_directly(stack, "bot")
    assert "kept by the bot only" in _command(stack, client, "deliver bot")
    assert "not a place I can deliver to" in _choose(stack, client, "bot", "s3")
    assert "The AWS Secrets Manager sink is not configured" in _choose(stack, client, "bot", "aws")
    denied = _choose(stack, client, "bot", "file", user=BOB)
    assert "owner" in denied.lower() or "admin" in denied.lower()
    assert _key(stack).delivery_sink is None and _deliveries(stack) == []
    assert "No registered key" in _choose(stack, client, "nope", "file")
    chosen = _choose(stack, client, "bot", "file", user=ADMIN)
    assert "will be delivered to file" in chosen
    assert _key(stack).delivery_sink == "file" and len(_deliveries(stack)) == 1
    (event,) = _events(stack, "credentials.sink_chosen")
    assert event.actor == ADMIN and event.detail["sink"] == "file"
    assert "delivered nowhere" not in _choose(stack, client, "bot", "nowhere")
    assert _key(stack).delivery_sink is None
    assert [d.state for d in _deliveries(stack)] == ["cancelled"]


# --- AWS Secrets Manager through the bot -----------------------------------------------------


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    """What the bot logs at DEBUG, through its own logging set-up (bootstrap)."""
    stream = io.StringIO()
    handler = configure_logging("DEBUG", handler=logging.StreamHandler(stream))
    try:
        yield stream
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(logging.WARNING)


def test_rotation_completes_only_when_the_new_version_is_in_aws_and_the_old_key_is_dead(
    make_stack, aws, moto_url, debug_log, database_url
):
    stack = _aws_stack(make_stack, aws, database_url=database_url)
    client = bot_client(stack)
    registered, old = register_directly(stack, "bot", key_type="ED25519", permissions=TRADE)
    assert "will be delivered to AWS Secrets Manager" in _choose(stack, client, "bot", "aws")
    clock = FixedClock(utcnow())
    stack.tick(clock)
    name = _deliveries(stack)[0].destination
    secrets = _secrets(moto_url)
    first = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    assert first["api_key"] == old.api_key and first["private_key_pem"] == old.secret.strip()
    assert first["key_type"] == "ED25519" and first["version"] == 1

    # Rotate while Secrets Manager is down; the owner deletes the old key in Binance.
    aws.mode = "down"
    new = stack.simulator.add_key(key_type="ED25519", permissions=TRADE, ip_restrict=True)
    response = _submit_rotation(client, stack, registered.key_id, new)
    assert response.json().get("response_action") == "update", response.text
    assert "being written to AWS Secrets Manager" in response.text
    stack.simulator.delete_key(old.api_key)
    clock.advance(timedelta(minutes=1))
    stack.tick(clock)  # the delivery fails; the probe finds the old key dead
    assert _key(stack).status == KeyStatus.ROTATING.value  # not complete: not delivered
    assert len(_events(stack, "key.rotate_waiting_for_delivery")) == 1
    assert not _events(stack, "key.rotate_complete")
    status = _command(stack, client, "status bot")
    assert "Delivery failed since" in status and "did not answer" in status
    assert json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])["version"] == 1

    aws.mode = "up"
    clock.advance(timedelta(minutes=5))
    stack.tick(clock)  # delivered: the rotation completes
    stack.tick(clock)  # its announcement
    current = json.loads(secrets.get_secret_value(SecretId=name)["SecretString"])
    assert current["api_key"] == new.api_key and current["private_key_pem"] == new.secret.strip()
    assert current["version"] == 2
    versions = secrets.list_secret_version_ids(SecretId=name)["Versions"]
    assert len(versions) == 2  # one per delivered version, none duplicated
    assert _key(stack).status == KeyStatus.ACTIVE.value
    with Session(stack.services.engine) as session:
        assert session.exec(select(Rotation)).one().state == "complete"
    assert len(_events(stack, "key.rotate_complete")) == 1
    announced = [
        c for c in stack.slack.calls_to("chat.postMessage") if "Rotation of" in all_text(c.params)
    ]
    assert len(announced) == 1
    assert "new credentials are in AWS Secrets Manager" in all_text(announced[0].params)
    status = _command(stack, client, "status bot")
    assert "Delivered to AWS Secrets Manager" in status and "version 2, written" in status

    # The private keys reached the sink's writes and nothing else: not Slack, not the logs,
    # not Binance, not the database in clear, not the other requests to AWS.
    stack.wait_idle()
    canaries = [Canary("old private key", old.secret), Canary("new private key", new.secret)]
    places = {f"slack {i}": json.dumps(c.params) for i, c in enumerate(stack.slack.calls)}
    places["log"] = debug_log.getvalue()
    assert "DEBUG" in places["log"]
    places["binance"] = repr(stack.simulator.request_log)
    for i, (target, body) in enumerate(aws.requests):
        if target not in SECRET_WRITES:
            places[f"aws {i} {target}"] = body.decode(errors="replace")
    with stack.services.engine.connect() as connection:
        for table in sa.inspect(stack.services.engine).get_table_names():
            rows = connection.execute(sa.text(f'SELECT * FROM "{table}"')).all()
            places[f"table {table}"] = repr(rows)
    assert find_leaks(canaries, places) == []
    writes = [body for target, body in aws.requests if target in SECRET_WRITES]
    assert any(b"PRIVATE KEY" in body for body in writes)


def test_an_answer_lost_after_the_write_is_retried_without_a_second_version(
    make_stack, aws, moto_url
):
    stack = _aws_stack(make_stack, aws, sink_default="aws")
    register_directly(stack, "bot")
    clock = FixedClock(utcnow())
    aws.mode, aws.lose_next = "lose_answer", 10  # every write reaches AWS, no answer returns
    stack.tick(clock)
    (delivery,) = _deliveries(stack)
    assert delivery.state == "pending" and delivery.first_failed_at is not None
    name = delivery.destination
    assert len(_secrets(moto_url).list_secret_version_ids(SecretId=name)["Versions"]) == 1
    aws.mode = "up"
    clock.advance(timedelta(minutes=3))
    stack.tick(clock)
    (delivery,) = _deliveries(stack)
    assert delivery.state == "delivered"
    versions = _secrets(moto_url).list_secret_version_ids(SecretId=name)["Versions"]
    assert len(versions) == 1 and versions[0]["VersionId"] == delivery.sink_version
    assert aws.target_count("secretsmanager.CreateSecret") >= 2  # it was really retried


def test_access_denied_by_aws_is_shown_audited_once_and_retried(
    make_stack, aws, moto_url, monkeypatch
):
    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
    user = f"bot-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    access = iam.create_access_key(UserName=user)["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", access["SecretAccessKey"])
    stack = _aws_stack(make_stack, aws, sink_default="aws")
    register_directly(stack, "bot")
    clock = FixedClock(utcnow())
    requests.post(f"{moto_url}/moto-api/reset-auth", data=b"0", timeout=5).raise_for_status()
    try:
        stack.tick(clock)
        clock.advance(timedelta(minutes=3))
        stack.tick(clock)
    finally:
        requests.post(f"{moto_url}/moto-api/reset-auth", data=b"inf", timeout=5)
    (delivery,) = _deliveries(stack)
    assert delivery.state == "pending" and delivery.attempts == 2
    assert "AWS refused to write" in delivery.last_error  # moto: a bare 403, AWS: AccessDenied…
    (failed,) = _events(stack, "credentials.delivery_failed")
    assert failed.detail["destination"] == delivery.destination
    clock.advance(timedelta(minutes=5))
    stack.tick(clock)  # the policy is fixed: delivered
    assert _deliveries(stack)[0].state == "delivered"


def test_only_the_newest_credentials_are_written_when_rotations_pile_up(
    make_stack, aws, moto_url, database_url
):
    stack = _aws_stack(make_stack, aws, sink_default="aws", database_url=database_url)
    client = bot_client(stack)
    registered, _old = register_directly(stack, "bot", permissions=TRADE)
    aws.mode = "down"
    clock = FixedClock(utcnow())
    stack.tick(clock)
    new = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    response = _submit_rotation(client, stack, registered.key_id, new)
    assert response.json().get("response_action") == "update", response.text
    states = [d.state for d in _deliveries(stack)]
    assert states == ["superseded", "pending"]
    aws.mode = "up"
    clock.advance(timedelta(minutes=5))
    stack.tick(clock)
    name = _deliveries(stack)[-1].destination
    current = json.loads(_secrets(moto_url).get_secret_value(SecretId=name)["SecretString"])
    assert current["api_key"] == new.api_key and current["version"] == 2
    assert len(_secrets(moto_url).list_secret_version_ids(SecretId=name)["Versions"]) == 1


# --- the file sink's own guarantees, in a process of its own -------------------------------

_WRITE_SCRIPT = """
import json, os, resource, signal, sys
from datetime import datetime, timezone
from pathlib import Path
from bot.sinks import DeliveredCredentials, SinkError
from bot.sinks.files import FileSink

directory, limit, user = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
if limit:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
if user >= 0:
    os.setuid(user)
credentials = DeliveredCredentials(
    label="bot", account="main", key_type="ED25519", api_key="A" * 64,
    secret="-----BEGIN PRIVATE KEY-----\\n" + "B" * 2000 + "\\n-----END PRIVATE KEY-----\\n",
    version=2, updated_at=datetime.now(timezone.utc),
)
try:
    FileSink(directory).write(
        credentials, destination=str(directory / "bot.json"), idempotency_token="t" * 32
    )
except SinkError as exc:
    print(json.dumps({"failure": exc.failure.value, "reason": exc.reason}))
else:
    print(json.dumps({"failure": None}))
"""


def _write_in_process(directory: Path, *, limit: int = 0, user: int = -1) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _WRITE_SCRIPT, str(directory), str(limit), str(user)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _old_version(directory: Path) -> bytes:
    from datetime import UTC, datetime

    old = DeliveredCredentials(
        label="bot",
        account="main",
        key_type="ED25519",
        api_key="C" * 64,
        secret="old",
        version=1,
        updated_at=datetime.now(UTC),
    )
    FileSink(directory).write(
        old, destination=str(directory / "bot.json"), idempotency_token="o" * 32
    )
    return (directory / "bot.json").read_bytes()


def test_a_partial_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path):
    before = _old_version(tmp_path)
    answer = _write_in_process(tmp_path, limit=700)  # the disk fills up mid-write
    assert answer["failure"] == SinkFailure.FAILED.value
    assert "EFBIG" in answer["reason"] and "old file is kept" in answer["reason"]
    assert (tmp_path / "bot.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["bot.json"]
    assert _write_in_process(tmp_path)["failure"] is None  # room again: written whole
    assert json.loads((tmp_path / "bot.json").read_text())["version"] == 2


def test_a_directory_the_bot_may_not_write_is_access_denied():
    # Under /tmp itself (world-traversable), so that another user can reach it.
    directory = Path(tempfile.mkdtemp(prefix="apikey-bot-sink-"))
    try:
        before = _old_version(directory)
        directory.chmod(0o755 if os.geteuid() == 0 else 0o500)
        # As root, modes do not stop a write: the sink writes as the user nobody.
        answer = _write_in_process(directory, user=65534 if os.geteuid() == 0 else -1)
        assert answer["failure"] == SinkFailure.DENIED.value, answer
        assert (directory / "bot.json").read_bytes() == before
    finally:
        directory.chmod(0o700)
        shutil.rmtree(directory)


def test_writing_the_same_delivery_again_changes_nothing(tmp_path):
    from datetime import UTC, datetime

    credentials = DeliveredCredentials(
        label="a/b c",
        account="main",
        key_type="HMAC",
        api_key="A" * 64,
        secret="S" * 64,
        version=3,
        updated_at=datetime.now(UTC),
    )
    sink = FileSink(tmp_path)
    destination = sink.destination(label=credentials.label, account=credentials.account)
    first = sink.write(credentials, destination=destination, idempotency_token="x" * 32)
    second = sink.write(credentials, destination=destination, idempotency_token="x" * 32)
    assert first == second
    (written,) = tmp_path.iterdir()
    assert written.name.startswith("a_b_c-") and written.suffix == ".json"  # no path escape
    assert "S" * 64 not in repr(credentials)
    for elsewhere in (str(tmp_path / "sub" / "bot.json"), str(tmp_path / ".." / "bot.json")):
        with pytest.raises(SinkError) as outside:  # only a file of its own directory
            sink.write(credentials, destination=elsewhere, idempotency_token="x" * 32)
        assert outside.value.failure == SinkFailure.FAILED
    gone = FileSink(tmp_path / "gone")
    with pytest.raises(SinkError) as missing:
        gone.write(
            credentials,
            destination=gone.destination(label="bot", account="main"),
            idempotency_token="x" * 32,
        )
    assert missing.value.failure == SinkFailure.UNREACHABLE


# --- the choice in the register form -------------------------------------------------------


def test_the_register_form_offers_the_configured_sinks_with_the_default_chosen(
    make_stack, tmp_path
):
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(tmp_path), sink_default="file")
    client = bot_client(stack)
    answer = client.command(
        "register",
        user_id=ALICE,
        trigger_id="1.2.register",
        response_url=stack.slack.response_url(),
    )
    assert answer.status_code == 200
    (opened,) = stack.slack.wait_for("views.open")
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    (block,) = [b for b in view["blocks"] if b.get("block_id") == "register_delivery"]
    values = [o["value"] for o in block["element"]["options"]]
    assert values == ["nowhere", "file"]  # AWS is not configured: not offered
    assert block["element"]["initial_option"]["value"] == "file"


def test_a_bot_without_sinks_asks_nothing_about_delivery(stack):
    client = bot_client(stack)
    client.command(
        "register",
        user_id=ALICE,
        trigger_id="1.2.register",
        response_url=stack.slack.response_url(),
    )
    (opened,) = stack.slack.wait_for("views.open")
    assert "register_delivery" not in all_text(opened.params)


def test_a_generated_pair_chosen_for_a_file_is_delivered_when_it_completes(make_stack, tmp_path):
    from tests.test_key_pairs import _button_value, _enter_key, _generate, _instructions, _pending

    sink_dir = tmp_path / "out"
    sink_dir.mkdir()
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(sink_dir))
    client = bot_client(stack)
    assert _generate(client, label="gen-bot", delivery="file").status_code == 200
    message = _instructions(stack, "gen-bot")
    pending = _pending(stack, "gen-bot")
    assert pending.delivery == "file"
    private_pem = stack.services.ring.open_text(
        pending.private_key_sealed, context=pending.private_key_context()
    )
    sim_key = stack.simulator.add_self_generated_key(
        pending.public_key_pem, permissions=TRADE, ip_restrict=True
    )
    assert _enter_key(stack, client, _button_value(message), sim_key.api_key).status_code == 200
    stack.wait_idle()
    assert _key(stack, "gen-bot").delivery_sink == "file"
    stack.tick(FixedClock(utcnow()))
    document = json.loads((sink_dir / "gen-bot.json").read_text())
    assert document["api_key"] == sim_key.api_key
    assert document["private_key_pem"] == private_pem.strip()
    assert document["key_type"] == "ED25519"


def test_a_pasted_key_for_nowhere_or_an_unconfigured_sink(make_stack, tmp_path):
    from tests.e2e import submit_registration

    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(tmp_path), sink_default="file")
    client = bot_client(stack)
    forged = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    answer = submit_registration(
        client,
        label="forged",
        api_key=forged.api_key,
        secret=forged.secret,
        purpose="trading",
        delivery="aws",  # not configured here: a stale or forged form
    )
    assert "not configured" in answer.json()["errors"]["register_delivery"]
    with Session(stack.services.engine) as session:
        assert session.exec(select(ApiKey)).all() == []
    kept = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    answer = register_sim_key(
        stack, client, kept, label="kept", purpose="trading", delivery="nowhere"
    )
    assert answer.status_code == 200 and "errors" not in answer.text, answer.text
    stack.wait_idle()
    assert _key(stack, "kept").delivery_sink is None and _deliveries(stack, "kept") == []
