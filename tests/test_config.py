"""bot.config: one clear line per bad setting, never the secret value."""

from __future__ import annotations

import pytest

from bot.config import ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith(("SLACK_", "DATABASE_", "MASTER_", "BINANCE_", "ADMIN_", "PORT")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_usable_without_any_environment():
    settings = load_settings()
    assert settings.database_url == "sqlite:///apikey-bot.db"
    assert settings.binance_api_url == "https://api.binance.com"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.missing_slack_settings() == [
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)",
    ]


def test_env_file_is_read(tmp_path):
    (tmp_path / ".env").write_text("ADMIN_USER_IDS=U1, U2\nBINANCE_API_URL=http://127.0.0.1:9/\n")
    settings = load_settings()
    assert settings.admin_user_ids == ("U1", "U2")
    assert settings.binance_api_url == "http://127.0.0.1:9"


def test_socket_mode_needs_no_signing_secret(monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1")
    settings = load_settings()
    assert settings.socket_mode and settings.missing_slack_settings() == []


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("PORT", "eighty", "configuration error: PORT:"),
        ("DATABASE_URL", "mysql://x", "configuration error: DATABASE_URL:"),
        ("BINANCE_API_URL", "api.binance.com", "configuration error: BINANCE_API_URL:"),
        ("SLACK_BOT_TOKEN", "hunter2-very-secret", "configuration error: SLACK_BOT_TOKEN:"),
        ("SLACK_APP_TOKEN", "xoxb-not-an-app-token", "configuration error: SLACK_APP_TOKEN:"),
    ],
)
def test_malformed_setting_is_one_line_naming_it_without_its_value(
    monkeypatch, name, value, expected
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as excinfo:
        load_settings()
    message = str(excinfo.value)
    assert message.startswith(expected)
    assert "\n" not in message
    assert value not in message


def test_secret_settings_do_not_show_in_repr(monkeypatch):
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "very-secret-signing")
    monkeypatch.setenv("MASTER_KEYS", "k1:" + "A" * 44)
    text = repr(Settings()) + str(Settings())
    assert "very-secret-signing" not in text and "A" * 44 not in text


def test_plain_postgres_url_gets_the_psycopg_driver(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"
