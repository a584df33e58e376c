"""Settings: the ONLY place that reads the environment (and an optional ``.env`` file).

A missing or malformed setting stops start-up with one line naming the setting. Values of
secret settings are never echoed, not even in validation errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.crypto import KeyRingError
from storage.kms import check_key_ref, region_of

DEFAULT_DATABASE_URL = "sqlite:///apikey-bot.db"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_BINANCE_API_URL = "https://api.binance.com"

CommaList = Annotated[tuple[str, ...], NoDecode]
IntList = Annotated[tuple[int, ...], NoDecode]


class ConfigError(Exception):
    """One clear line naming the setting that is missing or malformed. Never holds its value."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    # Slack
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL
    slack_team_id: str | None = None

    # Storage and encryption
    database_url: str = DEFAULT_DATABASE_URL
    master_keys: SecretStr | None = None
    master_key_active: str | None = None
    master_keys_file: Path = Path("apikey-bot-master.key")
    # AWS KMS (envelope encryption): the key id, key ARN, alias name or alias ARN. The AWS
    # credentials are boto3's own (environment, profile, instance or task role), never ours.
    master_kms_key_id: str | None = None
    aws_region: str | None = Field(
        default=None, validation_alias=AliasChoices("aws_region", "aws_default_region")
    )
    aws_endpoint_url: str | None = None  # a VPC endpoint, or a local server in the tests

    # Binance
    binance_api_url: str = DEFAULT_BINANCE_API_URL
    binance_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    binance_max_workers: int = Field(default=32, ge=1, le=64)
    binance_weight_limit: int = Field(default=6000, ge=10)

    # Team governance
    admin_user_ids: CommaList = ()
    # A Slack user group whose members are admins too (needs the usergroups:read scope).
    admin_usergroup_id: str | None = None
    # Channels where /apikey may be used (DMs with the bot always work); empty: anywhere.
    allowed_channel_ids: CommaList = ()
    alert_channel: str | None = None
    default_rotation_days: int = Field(default=90, ge=1, le=3650)
    # Days before the due date on which the owner gets a direct message.
    rotation_reminder_lead_days: IntList = (14, 7, 1)
    # Days after the due date on which the reminder escalates to the admins, then the channel.
    rotation_escalate_admins_after_days: int = Field(default=3, ge=0, le=365)
    rotation_escalate_channel_after_days: int = Field(default=7, ge=0, le=365)
    rotation_grace_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    rotation_probe_minutes: float = Field(default=10.0, gt=0, le=24 * 60)
    scheduler_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    scheduler_lease_seconds: float = Field(default=300.0, gt=0, le=86400)
    scheduler_enabled: bool = True
    drift_check_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    # How often the audit chain's head is posted to ALERT_CHANNEL as a checkpoint.
    audit_checkpoint_hours: float = Field(default=24.0, gt=0, le=24 * 30)

    # Serving
    host: str = "0.0.0.0"  # noqa: S104 - the HTTP mode serves Slack, behind a load balancer
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: str = "INFO"

    @field_validator(
        "admin_user_ids", "allowed_channel_ids", "rotation_reminder_lead_days", mode="before"
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("rotation_reminder_lead_days")
    @classmethod
    def _positive_leads(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(day < 1 or day > 365 for day in value):
            raise ValueError("each lead must be a number of days from 1 to 365")
        return tuple(sorted(set(value), reverse=True))

    @field_validator("slack_api_url", "binance_api_url", "aws_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("master_kms_key_id")
    @classmethod
    def _kms_key_ref(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            return check_key_ref(value)
        except KeyRingError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("aws_region")
    @classmethod
    def _aws_region(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not re.fullmatch(r"[a-z]{2}(-[a-z]+)+-\d{1,2}", value.strip()):
            raise ValueError("must be an AWS region such as eu-west-1")
        return value.strip()

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @field_validator("binance_api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("must be a bot token starting with xoxb-")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("must be an app-level token starting with xapp-")
        return value

    @property
    def kms_region(self) -> str | None:
        """The region of MASTER_KMS_KEY_ID: AWS_REGION, else the one its ARN names."""
        if self.master_kms_key_id is None:
            return None
        return self.aws_region or region_of(self.master_kms_key_id)

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def missing_slack_settings(self) -> list[str]:
        """The Slack settings still needed to run the bot in the chosen mode."""
        missing = []
        if self.slack_bot_token is None:
            missing.append("SLACK_BOT_TOKEN")
        if self.slack_signing_secret is None and not self.socket_mode:
            missing.append("SLACK_SIGNING_SECRET")
        return missing


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning any validation problem into one ConfigError line."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"configuration error: {name}: {message}") from None
    if settings.master_kms_key_id is not None and settings.kms_region is None:
        raise ConfigError(
            "configuration error: AWS_REGION: required with MASTER_KMS_KEY_ID (unless that is "
            "an ARN, which names its region)"
        )
    return settings
