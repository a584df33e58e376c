"""`python -m bot` as an operator runs it: start-up checks, HTTP mode, shutdown."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot.sandbox.slack_standin import SlackStandIn
from storage.crypto import generate_master_key
from tests.e2e import free_port, running_bot
from tests.slack_requests import SIGNING_SECRET, BotClient, slash_command


def _env(tmp_path, **extra) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "MASTER_", "DATABASE_", "BINANCE_"))
    }
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}", **extra})
    return env


def _run(args, tmp_path, env, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_without_slack_credentials_it_says_what_to_set_and_how_to_try_the_sandbox(tmp_path):
    done = _run([], tmp_path, _env(tmp_path))
    assert done.returncode == 2
    assert "SLACK_BOT_TOKEN" in done.stderr and "SLACK_SIGNING_SECRET" in done.stderr
    assert "apikey-bot sandbox" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "bot.db").exists()  # it did not start anything


def test_malformed_setting_stops_start_up_with_one_line(tmp_path):
    done = _run([], tmp_path, _env(tmp_path, PORT="eighty", SLACK_SIGNING_SECRET="s3cr3t-value"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "PORT" in done.stderr and "s3cr3t-value" not in done.stderr


def test_wrong_master_key_stops_start_up_and_changes_nothing(tmp_path):
    k1 = generate_master_key("k1")
    env = _env(tmp_path, MASTER_KEYS=k1.encoded())
    assert _run(["keys", "reencrypt"], tmp_path, env).returncode == 0  # a database sealed by k1
    before = (tmp_path / "bot.db").read_bytes()
    assert "master keys OK: k1" in _run(["check"], tmp_path, env).stdout
    wrong = _env(tmp_path, MASTER_KEYS=generate_master_key("k1").encoded())
    done = _run(["check"], tmp_path, wrong)
    assert done.returncode == 2
    assert "does not open" in done.stderr and "Traceback" not in done.stderr
    missing = _run(["check"], tmp_path, _env(tmp_path))
    assert missing.returncode == 2 and "Refusing to create" in missing.stderr
    assert not (tmp_path / "apikey-bot-master.key").exists()
    assert (tmp_path / "bot.db").read_bytes() == before


def test_check_changes_nothing_and_says_when_there_is_nothing_to_check(tmp_path):
    empty = _run(["check"], tmp_path, _env(tmp_path))
    assert empty.returncode == 0 and "nothing to check" in empty.stderr, empty.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, no key file
    assert _run(["migrate"], tmp_path, _env(tmp_path)).returncode == 0
    before = (tmp_path / "bot.db").read_bytes()
    unsealed = _run(["check"], tmp_path, _env(tmp_path))
    assert unsealed.returncode == 0 and "no master key is configured" in unsealed.stderr
    assert not (tmp_path / "apikey-bot-master.key").exists()
    k1 = generate_master_key("k1").encoded()
    checked = _run(["check"], tmp_path, _env(tmp_path, MASTER_KEYS=k1))
    assert checked.returncode == 0 and "master keys OK: k1" in checked.stdout
    assert (tmp_path / "bot.db").read_bytes() == before  # not even a canary written


def test_http_mode_serves_slack_and_health_then_stops_on_sigterm(tmp_path):
    with running_bot(tmp_path) as bot:
        client = BotClient(bot.url, secret=SIGNING_SECRET)
        reply = client.post(slash_command("help", response_url=bot.slack.response_url()))
        assert reply.status_code == 200 and "/apikey register" in reply.text
        forged = client.post(
            slash_command("help", response_url=bot.slack.response_url()), signature="v0=00"
        )
        assert forged.status_code == 401
    output = bot.output
    assert bot.proc.returncode == 0, output
    assert "Back it up" in output  # fresh install: the new key file was announced loudly
    assert "will be unused" not in output  # no spurious warning at start-up
    assert (tmp_path / "apikey-bot-master.key").stat().st_mode & 0o777 == 0o600
    assert "Traceback" not in output


def _start_fails(tmp_path, **settings) -> subprocess.CompletedProcess:
    done = _run([], tmp_path, _env(tmp_path, **settings), timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr  # one line
    assert not (tmp_path / "bot.db").exists()  # nothing opened or created
    assert not (tmp_path / "apikey-bot-master.key").exists()
    return done


def test_a_wrong_bot_token_stops_start_up_with_one_line_and_creates_nothing(tmp_path):
    with SlackStandIn() as slack:
        done = _start_fails(
            tmp_path,
            SLACK_BOT_TOKEN="xoxb-revoked",
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=slack.url,
        )
    assert "Slack refused SLACK_BOT_TOKEN (invalid_auth)" in done.stderr
    assert "xoxb-revoked" not in done.stderr


def test_an_unreachable_slack_stops_start_up_with_one_line(tmp_path):
    done = _start_fails(
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=f"http://127.0.0.1:{free_port()}/api/",
    )
    assert "Slack could not be reached" in done.stderr


def test_a_wrong_app_token_stops_socket_mode_with_one_line(tmp_path):
    with SlackStandIn() as slack:
        done = _start_fails(
            tmp_path,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_APP_TOKEN="xapp-1-wrong",
            SLACK_API_URL=slack.url,
        )
    assert "Slack refused SLACK_APP_TOKEN (invalid_auth)" in done.stderr


def test_a_bot_token_without_a_mode_asks_for_the_app_token_first(tmp_path):
    done = _run([], tmp_path, _env(tmp_path, SLACK_BOT_TOKEN="xoxb-test"))
    assert done.returncode == 2
    assert "SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)" in done.stderr
    assert not (tmp_path / "bot.db").exists()


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("ADMIN_USER_IDS", "alice", "is not a Slack user id"),
        ("ALERT_CHANNEL", "#alerts", "is not a Slack channel id"),
        ("ALLOWED_CHANNEL_IDS", "C0OK,general", "is not a Slack channel id"),
        ("ADMIN_USERGROUP_ID", "admins", "is not a Slack user group id"),
    ],
)
def test_slack_ids_in_settings_are_checked(tmp_path, name, value, says):
    done = _run([], tmp_path, _env(tmp_path, **{name: value}))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0, done.stderr
    assert name in done.stderr and says in done.stderr


def test_audit_verify_in_an_empty_directory_creates_nothing(tmp_path):
    done = _run(["audit", "verify"], tmp_path, _env(tmp_path))
    assert done.returncode == 0 and "nothing to check" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []
