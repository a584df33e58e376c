"""Each key's sink destination is its own, and a crashed write leaves no secret behind.

An attacker's view (issue 21): a plain member must not make the bot write *his* key where
another key's service reads its credentials: a label equal to another key's file name, or a
``/`` in a label or an account alias that shifts where the AWS secret name splits. Names are
one-to-one; a key delivered before keeps the name it has; a delivery to a destination another
live key holds is refused, never written. And the temporary file of a write cut short by a
crash (``.<name>.XXXXXXXX.tmp``, holding the secret) is removed before and after each write,
at start-up and when the key is removed.

Through signed Slack requests and the command line, against the Binance simulator, the Slack
stand-in, real files and moto's standalone AWS server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from hashlib import sha256
from pathlib import Path

import requests
from sqlmodel import Session, col, select

from bot.ids import Action
from bot.job_queue.scheduler import FixedClock
from storage.models import ApiKey, AuditEvent, CredentialDelivery, utcnow
from tests.e2e import (
    BOB,
    bot_client,
    register_directly,
    register_sim_key,
    running_bot,
    wait_until,
)
from tests.factories import TRADE
from tests.test_credential_delivery import (  # noqa: F401 - the fixture `aws`: moto behind its proxy
    ADMIN,
    _aws_stack,
    _command,
    _secrets,
    aws,
)
from tests.test_entrypoint import _env
from tests.test_rotation import _submit_rotation

# --- helpers --------------------------------------------------------------------------------


def _key(stack, label: str) -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).one()


def _deliveries(stack, label: str) -> list[CredentialDelivery]:
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


def _registered(answer) -> None:
    assert answer.status_code == 200 and "errors" not in answer.text, answer.text


def _delivered_before_the_upgrade(stack, label: str, *, sink: str, destination: str, days: int):
    """The key's history as an earlier version of the bot left it: delivered to
    ``destination`` ``days`` ago (its name then came from the label alone)."""
    key = _key(stack, label)
    at = utcnow() - timedelta(days=days)
    with Session(stack.services.engine) as session:
        row = session.get(ApiKey, key.id)
        assert row is not None
        row.delivery_sink = sink
        session.add(row)
        session.add(
            CredentialDelivery(
                team_id=key.team_id,
                key_id=key.id,
                version=1,
                sink=sink,
                destination=destination,
                reason="registration",
                state="delivered",
                api_key_masked=key.api_key_masked,
                created_at=at,
                delivered_at=at,
                attempts=1,
                sink_version="earlier",
            )
        )
        session.commit()


def _legacy_stem(label: str) -> str:
    """The file name an earlier version gave a label with a space (README, before issue 21)."""
    return label.replace(" ", "_") + "-" + sha256(label.encode()).hexdigest()[:8]


def _plant_leftover(directory: Path, stem: str, *, age_minutes: int = 30) -> Path:
    """A temporary file as a crash between the write and the rename leaves it: mode 0600,
    the whole document (a secret in it), named as the sink names its temporary files."""
    leftover = directory / f".{stem}.k3x9q_2a.tmp"
    leftover.write_text('{"secret": "CRASHED-WRITE-SECRET"}\n')
    leftover.chmod(0o600)
    past = time.time() - age_minutes * 60
    os.utime(leftover, (past, past))
    return leftover


# --- one destination per key: files -----------------------------------------------------------


def test_a_label_equal_to_another_keys_file_name_gets_a_file_of_its_own(make_stack, tmp_path):
    sink_dir = tmp_path / "credentials"
    sink_dir.mkdir()
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(sink_dir), sink_default="file")
    client = bot_client(stack)
    victim = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    _registered(register_sim_key(stack, client, victim, label="hot wallet", purpose="trading"))
    clock = FixedClock(utcnow())
    stack.tick(clock)
    (theirs,) = _deliveries(stack, "hot wallet")
    victim_file = Path(theirs.destination)
    assert theirs.state == "delivered" and victim_file.parent == sink_dir

    # Bob, a plain member, registers his own key under a label equal to that file's name.
    mine = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    _registered(
        register_sim_key(
            stack, client, mine, label=victim_file.stem, purpose="trading", owner=BOB, user_id=BOB
        )
    )
    stack.tick(FixedClock(utcnow()))
    (his,) = _deliveries(stack, victim_file.stem)
    assert his.destination != str(victim_file)
    assert json.loads(victim_file.read_text())["api_key"] == victim.api_key
    assert his.state == "delivered"
    assert json.loads(Path(his.destination).read_text())["api_key"] == mine.api_key


def test_a_key_keeps_its_earlier_file_and_a_label_equal_to_it_is_refused(
    make_stack, tmp_path, database_url
):
    sink_dir = tmp_path / "credentials"
    sink_dir.mkdir()
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(sink_dir), database_url=database_url)
    client = bot_client(stack)
    registered, _old = register_directly(stack, "hot wallet", permissions=TRADE)
    legacy = sink_dir / f"{_legacy_stem('hot wallet')}.json"
    _delivered_before_the_upgrade(
        stack, "hot wallet", sink="file", destination=str(legacy), days=30
    )

    # The victim's service reads that file: a rotation writes the new key there again.
    new = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    response = _submit_rotation(client, stack, registered.key_id, new)
    assert response.json().get("response_action") == "update", response.text
    clock = FixedClock(utcnow())
    stack.tick(clock)
    assert _deliveries(stack, "hot wallet")[-1].state == "delivered"
    assert _deliveries(stack, "hot wallet")[-1].destination == str(legacy)
    assert json.loads(legacy.read_text())["api_key"] == new.api_key

    # Bob registers a key labelled with the old file's name, to be delivered to a file.
    mine = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    _registered(
        register_sim_key(
            stack,
            client,
            mine,
            label=legacy.stem,
            purpose="trading",
            owner=BOB,
            user_id=BOB,
            delivery="file",
        )
    )
    stack.tick(FixedClock(utcnow()))
    assert json.loads(legacy.read_text())["api_key"] == new.api_key  # never written
    (his,) = _deliveries(stack, legacy.stem)
    assert his.state == "pending" and "another key" in (his.last_error or "")
    (refused,) = _events(stack, "credentials.delivery_refused")
    assert refused.actor == "bot" and refused.detail["destination"] == str(legacy)
    status = _command(stack, client, f"status {legacy.stem}", user=BOB)
    assert "another key" in status and mine.secret not in status

    # Choosing the sink again says why, politely, and changes nothing.
    _command(stack, client, f"deliver {legacy.stem} to nowhere", user=BOB)
    again = _command(stack, client, f"deliver {legacy.stem} to file", user=BOB)
    assert "another key" in again and "Nothing was changed" in again, again
    assert "Traceback" not in again
    assert _key(stack, legacy.stem).delivery_sink is None
    assert [d.state for d in _deliveries(stack, legacy.stem)] == ["cancelled"]

    # Removing the victim frees its file; what it wrote stays there (README).
    url = stack.slack.response_url()
    bot_client(stack).action(Action.REMOVE_CONFIRM, registered.key_id, response_url=url)
    stack.wait_idle()
    assert json.loads(legacy.read_text())["api_key"] == new.api_key
    chosen = _command(stack, client, f"deliver {legacy.stem} to file", user=BOB)
    assert "will be delivered to file" in chosen, chosen
    stack.tick(FixedClock(utcnow()))
    assert json.loads(legacy.read_text())["api_key"] == mine.api_key


# --- one destination per key: AWS Secrets Manager ---------------------------------------------


def test_a_slash_in_an_account_or_a_label_never_shares_an_aws_secret(
    make_stack,
    aws,  # noqa: F811 - the imported fixture
    moto_url,
):
    stack = _aws_stack(make_stack, aws, sink_default="aws")
    client = bot_client(stack)
    victim = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    _registered(
        register_sim_key(
            stack, client, victim, label="market-maker", account="main/prod", purpose="trading"
        )
    )
    mine = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
    _registered(
        register_sim_key(
            stack,
            client,
            mine,
            label="prod/market-maker",
            account="main",
            purpose="trading",
            owner=BOB,
            user_id=BOB,
        )
    )
    stack.tick(FixedClock(utcnow()))
    (theirs,) = _deliveries(stack, "market-maker")
    (his,) = _deliveries(stack, "prod/market-maker")
    assert theirs.state == his.state == "delivered"
    assert theirs.destination != his.destination
    secrets = _secrets(moto_url)
    stored = json.loads(secrets.get_secret_value(SecretId=theirs.destination)["SecretString"])
    assert stored["api_key"] == victim.api_key
    stored = json.loads(secrets.get_secret_value(SecretId=his.destination)["SecretString"])
    assert stored["api_key"] == mine.api_key


def test_a_secret_two_keys_shared_before_stays_with_the_first(
    make_stack,
    aws,  # noqa: F811 - the imported fixture
    moto_url,
    database_url,
):
    stack = _aws_stack(make_stack, aws, database_url=database_url)
    client = bot_client(stack)
    pattern = stack.services.settings.sink_aws_secret_name
    shared = pattern.format(account="main/prod", label="market-maker")
    victim, _old = register_directly(stack, "market-maker", account="main/prod", permissions=TRADE)
    attacker, _his_old = register_directly(
        stack, "prod/market-maker", account="main", owner=BOB, permissions=TRADE
    )
    # An earlier version gave both keys that one name: the victim's first, then Bob's.
    _delivered_before_the_upgrade(stack, "market-maker", sink="aws", destination=shared, days=30)
    _delivered_before_the_upgrade(
        stack, "prod/market-maker", sink="aws", destination=shared, days=2
    )

    new = stack.simulator.add_key(account="main/prod", permissions=TRADE, ip_restrict=True)
    response = _submit_rotation(client, stack, victim.key_id, new)
    assert response.json().get("response_action") == "update", response.text
    clock = FixedClock(utcnow())
    stack.tick(clock)
    latest = _deliveries(stack, "market-maker")[-1]
    assert latest.state == "delivered" and latest.destination == shared  # kept its name
    secrets = _secrets(moto_url)
    assert json.loads(secrets.get_secret_value(SecretId=shared)["SecretString"])["api_key"] == (
        new.api_key
    )

    his_new = stack.simulator.add_key(account="main", permissions=TRADE, ip_restrict=True)
    response = _submit_rotation(client, stack, attacker.key_id, his_new, user_id=BOB)
    assert response.json().get("response_action") == "update", response.text
    stack.tick(FixedClock(utcnow()))
    his = _deliveries(stack, "prod/market-maker")[-1]
    assert his.state == "pending" and "another key" in (his.last_error or "")
    current = json.loads(secrets.get_secret_value(SecretId=shared)["SecretString"])
    assert current["api_key"] == new.api_key  # not Bob's
    assert len(_events(stack, "credentials.delivery_refused")) == 1


def test_a_secret_name_pattern_that_could_split_two_ways_stops_start_up(tmp_path):
    env = _env(
        tmp_path,
        SINK_AWS_SECRETS_MANAGER="true",
        AWS_REGION="eu-west-1",
        SINK_AWS_SECRET_NAME="apikey-bot/{account}-{label}",
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "SINK_AWS_SECRET_NAME" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "bot.db").exists()


# --- what a crash between the write and the rename leaves behind -----------------------------


def test_a_write_removes_the_leftover_of_a_crashed_write(make_stack, tmp_path):
    sink_dir = tmp_path / "credentials"
    sink_dir.mkdir()
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(sink_dir), sink_default="file")
    client = bot_client(stack)
    registered, _old = register_directly(stack, "bot", permissions=TRADE)
    clock = FixedClock(utcnow())
    scheduler = stack.scheduler(clock)  # a replica already running
    try:
        scheduler.tick()
        assert json.loads((sink_dir / "bot.json").read_text())["version"] == 1
        leftover = _plant_leftover(sink_dir, "bot")
        neighbour = _plant_leftover(sink_dir, "bot.x")  # another key's name: not this one's
        notes = sink_dir / "README.txt"
        notes.write_text("mounted by the trading service\n")
        new = stack.simulator.add_key(permissions=TRADE, ip_restrict=True)
        response = _submit_rotation(client, stack, registered.key_id, new)
        assert response.json().get("response_action") == "update", response.text
        clock.advance(timedelta(minutes=1))
        scheduler.tick()
    finally:
        scheduler.close()
    assert json.loads((sink_dir / "bot.json").read_text())["api_key"] == new.api_key
    assert not leftover.exists()
    assert neighbour.exists() and notes.exists()


def test_start_up_removes_the_leftovers_of_crashed_writes(tmp_path):
    sink_dir = tmp_path / "credentials"
    sink_dir.mkdir()
    leftover = _plant_leftover(sink_dir, "bot")
    other = _plant_leftover(sink_dir, "hot_wallet-6ed3f95c")
    kept = sink_dir / "bot.json"
    kept.write_text('{"version": 1}\n')
    with running_bot(tmp_path, SINK_FILE_DIR=str(sink_dir)) as bot:
        wait_until(lambda: not leftover.exists() and not other.exists())
        assert requests.get(bot.url + "/healthz", timeout=5).ok
    output = bot.output
    assert bot.proc.returncode == 0, output
    assert not leftover.exists() and not other.exists()
    assert kept.read_text() == '{"version": 1}\n'  # a delivered document is never swept
    assert "CRASHED-WRITE-SECRET" not in output and "Traceback" not in output


def test_removing_a_key_removes_the_leftover_of_its_crashed_write(make_stack, tmp_path):
    sink_dir = tmp_path / "credentials"
    sink_dir.mkdir()
    stack = make_stack(admin_user_ids=ADMIN, sink_file_dir=str(sink_dir), sink_default="file")
    registered, _old = register_directly(stack, "bot", permissions=TRADE)
    clock = FixedClock(utcnow())
    scheduler = stack.scheduler(clock)  # a replica already running
    try:
        scheduler.tick()
        leftover = _plant_leftover(sink_dir, "bot")
        url = stack.slack.response_url()
        bot_client(stack).action(Action.REMOVE_CONFIRM, registered.key_id, response_url=url)
        stack.wait_idle()
        assert _key(stack, "bot").status == "removed"
        clock.advance(timedelta(minutes=1))
        scheduler.tick()
    finally:
        scheduler.close()
    assert not leftover.exists()
    assert json.loads((sink_dir / "bot.json").read_text())["version"] == 1  # kept, as README
