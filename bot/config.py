"""Settings: the ONLY place that reads the environment (and an optional ``.env`` file).

A missing or malformed setting stops start-up with one line naming the setting. Values of
secret settings are never echoed, not even in validation errors.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.sinks import SinkKind
from bot.sinks.aws import DEFAULT_NAME_PATTERN as DEFAULT_SECRET_NAME_PATTERN
from bot.sinks.aws import check_name_pattern
from bot.vocabulary import ApprovalKind
from storage.crypto import KeyRingError
from storage.kms import check_key_ref, region_of

DEFAULT_DATABASE_URL = "sqlite:///apikey-bot.db"
# The key file of a first run with no master key configured (MASTER_KEYS_FILE unset).
DEFAULT_MASTER_KEYS_FILE = Path("apikey-bot-master.key")
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_BINANCE_API_URL = "https://api.binance.com"
# PagerDuty's Events API v2 endpoint (developer.pagerduty.com, "Send an Alert Event").
DEFAULT_PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

MIN_METRICS_TOKEN_CHARS = 16


class MetricsPlacement(StrEnum):
    OWN_PORT = "own port"  # METRICS_HOST:METRICS_PORT
    BESIDE_SLACK = "beside slack"  # on PORT, behind METRICS_TOKEN
    OFF = "off"


CommaList = Annotated[tuple[str, ...], NoDecode]
IntList = Annotated[tuple[int, ...], NoDecode]


_SLACK_ID = re.compile(r"[A-Z][A-Z0-9]{1,20}")
_CHANNEL_ID = (
    "a Slack channel id (C… or G…, not its #name; in Slack: the channel's details → "
    "Copy channel ID)"
)


def _check_slack_id(value: str, prefixes: str, what: str) -> str:
    """``value`` if it is a Slack id starting with one of ``prefixes``; else ValueError."""
    if not _SLACK_ID.fullmatch(value) or value[0] not in prefixes:
        shown = value if len(value) <= 40 else value[:39] + "…"
        raise ValueError(f"“{shown}” is not {what}")
    return value


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
    # Set: the key ring's file, which must exist (a first one: `apikey-bot keys init`).
    # Unset: DEFAULT_MASTER_KEYS_FILE, read when it exists, made on a first run.
    master_keys_file: Path | None = None
    # AWS KMS (envelope encryption): the key id, key ARN, alias name or alias ARN. The AWS
    # credentials are boto3's own (environment, profile, instance or task role), never ours.
    master_kms_key_id: str | None = None
    aws_region: str | None = Field(
        default=None, validation_alias=AliasChoices("aws_region", "aws_default_region")
    )
    aws_endpoint_url: str | None = None  # a VPC endpoint, or a local server in the tests

    # Secret sinks: where keys' credentials are delivered (README: Delivering credentials).
    sink_file_dir: Path | None = None  # the file sink's directory (a volume the service mounts)
    sink_aws_secrets_manager: bool = False  # the AWS Secrets Manager sink (needs AWS_REGION)
    sink_aws_secret_name: str = DEFAULT_SECRET_NAME_PATTERN
    sink_aws_kms_key_id: str | None = None  # the KMS key of the secrets (default: AWS's own)
    # The sink of every newly registered key ("file" or "aws"); unset: none until chosen.
    sink_default: SinkKind | None = None

    # Binance
    binance_api_url: str = DEFAULT_BINANCE_API_URL
    binance_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    binance_max_workers: int = Field(default=32, ge=1, le=64)
    binance_weight_limit: int = Field(default=6000, ge=10)
    # The governor (README: The governor). The public IP addresses this bot's requests leave
    # from: a governor key and every key the governor creates are restricted to (or include)
    # them, so the bot can check and, in an emergency, quarantine a key.
    bot_egress_ips: CommaList = ()
    # What happens to a governed key reported compromised: deleted in Binance at once, or
    # quarantined (its IP list cut to BOT_EGRESS_IPS; a false alarm gives the old list back).
    contain_on_report: Literal["delete", "quarantine"] = "delete"
    # How long a governed key's old and new credentials both work during a rotation.
    rotation_overlap_hours: float = Field(default=1.0, gt=0, le=24 * 7)

    # Team governance
    admin_user_ids: CommaList = ()
    # A Slack user group whose members are admins too (needs the usergroups:read scope).
    admin_usergroup_id: str | None = None
    # Channels where /apikey may be used (DMs with the bot always work); empty: anywhere.
    allowed_channel_ids: CommaList = ()
    alert_channel: str | None = None
    # Four eyes (README: Approvals): the changes held until another person approves them
    # (comma-separated ApprovalKind values, "all" or "none"), how many distinct approvers
    # each needs, how long a request waits, and who may approve (unset: the admins).
    approval_required_for: Annotated[tuple[ApprovalKind, ...], NoDecode] = tuple(ApprovalKind)
    approval_quorum: int = Field(default=1, ge=1, le=10)
    approval_ttl_hours: float = Field(default=24.0, gt=0, le=24 * 30)
    approver_user_ids: CommaList = ()
    approver_usergroup_id: str | None = None
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
    # The daily activity review reports withdrawals at or above these amounts, per coin
    # ("COIN:amount,…"; no prices are fetched, so each coin has its own; a coin not listed is
    # reviewed for new addresses only). Empty: new addresses only.
    activity_review_large_withdrawals: Annotated[str, NoDecode] = "USDT:10000,USDC:10000"

    # Audit forwarding (off unless a URL is set): https://… (JSON POSTs), syslog://host:port
    # (RFC 5424 over UDP) or syslog+tcp://host:port (RFC 5424, octet-counted, over TCP).
    audit_forward_url: str | None = None
    audit_forward_token: SecretStr | None = None  # sent as "Authorization: Bearer …" (HTTPS)
    audit_forward_batch: int = Field(default=100, ge=1, le=1000)
    audit_forward_interval_seconds: float = Field(default=1.0, gt=0, le=300)
    audit_forward_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # How often the audit chain's head is posted to ALERT_CHANNEL as a checkpoint.
    audit_checkpoint_hours: float = Field(default=24.0, gt=0, le=24 * 30)

    # Serving
    host: str = "0.0.0.0"  # noqa: S104 - the HTTP mode serves Slack, behind a load balancer
    port: int = Field(default=3000, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per log line
    # Readiness (GET /readyz) fails while the scheduler is further behind than this.
    readiness_max_scheduler_lag_seconds: float = Field(default=600.0, gt=0, le=86400)
    # The probes answer from checks run in the background this often, each given this long
    # (no retries): a probe never waits on the database or KMS (README: Health and metrics).
    readiness_check_interval_seconds: float = Field(default=10.0, gt=0, le=3600)
    readiness_check_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    # Slow or numerous clients (README: What an attacker on the network meets): a request's
    # headers and body must arrive within the deadline; connections from one address beyond
    # the cap are refused (0: no cap, for a load balancer whose address every client shares).
    http_request_deadline_seconds: float = Field(default=10.0, gt=0, le=300)
    http_max_connections_per_client: int = Field(default=32, ge=0, le=100_000)
    # GET /metrics: on a port of its own (METRICS_HOST:METRICS_PORT), and/or behind a bearer
    # token; with a token and no port, beside Slack on PORT; with neither, not served.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_token: SecretStr | None = None

    # Paging (README: Paging): critical events to PagerDuty's Events API v2 and/or a webhook.
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: str = DEFAULT_PAGERDUTY_EVENTS_URL
    paging_webhook_url: str | None = None
    paging_webhook_token: SecretStr | None = None  # sent as "Authorization: Bearer ..."

    @field_validator(
        "admin_user_ids",
        "approver_user_ids",
        "allowed_channel_ids",
        "rotation_reminder_lead_days",
        "bot_egress_ips",
        mode="before",
    )
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("approval_required_for", mode="before")
    @classmethod
    def _approval_kinds(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        words = [part.strip().lower() for part in value.split(",") if part.strip()]
        if words == ["all"]:
            return tuple(ApprovalKind)
        if words in (["none"], []):
            return ()
        known = {kind.value for kind in ApprovalKind}
        for word in words:
            if word not in known:
                raise ValueError(
                    f"“{word[:40]}” is not a kind of change: use all, none or some of "
                    + ", ".join(sorted(known))
                )
        return tuple(ApprovalKind(word) for word in dict.fromkeys(words))

    @field_validator("admin_user_ids", "approver_user_ids")
    @classmethod
    def _user_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for user_id in value:
            _check_slack_id(
                user_id,
                "UW",
                "a Slack user id (U… or W…; in Slack: the person's profile → ⋮ → Copy member ID)",
            )
        return value

    @field_validator("bot_egress_ips")
    @classmethod
    def _ip_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for address in value:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                shown = address if len(address) <= 40 else address[:39] + "…"
                raise ValueError(
                    f"“{shown}” is not an IP address (comma-separated, e.g. 203.0.113.7)"
                ) from None
        return tuple(dict.fromkeys(value))

    @field_validator("allowed_channel_ids")
    @classmethod
    def _channel_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for channel in value:
            _check_slack_id(channel, "CG", _CHANNEL_ID)
        return value

    @field_validator("alert_channel")
    @classmethod
    def _alert_channel(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _check_slack_id(value.strip(), "CG", _CHANNEL_ID)

    @field_validator("admin_usergroup_id", "approver_usergroup_id")
    @classmethod
    def _usergroup_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _check_slack_id(value.strip(), "S", "a Slack user group id (S…)")

    @field_validator("slack_team_id")
    @classmethod
    def _team_id(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _check_slack_id(value.strip(), "TE", "a Slack workspace id (T…)")

    @field_validator("rotation_reminder_lead_days")
    @classmethod
    def _positive_leads(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if any(day < 1 or day > 365 for day in value):
            raise ValueError("each lead must be a number of days from 1 to 365")
        return tuple(sorted(set(value), reverse=True))

    @field_validator("activity_review_large_withdrawals")
    @classmethod
    def _coin_amounts(cls, value: str) -> str:
        parse_coin_amounts(value)  # raises ValueError with the reason
        return value

    @property
    def large_withdrawal_thresholds(self) -> dict[str, Decimal]:
        return parse_coin_amounts(self.activity_review_large_withdrawals)

    @field_validator("slack_api_url", "binance_api_url", "aws_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("pagerduty_events_url", "paging_webhook_url")
    @classmethod
    def _paging_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """https only: a page names a key and what is wrong with it. Plain http only to this
        machine (a local relay, or the tests' stand-in)."""
        if value is None or not value.strip():
            return (
                DEFAULT_PAGERDUTY_EVENTS_URL if info.field_name == "pagerduty_events_url" else None
            )
        value = value.strip()
        parts = urlsplit(value)
        local = parts.scheme == "http" and (parts.hostname or "") in (
            "127.0.0.1",
            "localhost",
            "::1",
        )
        if not parts.netloc or not (parts.scheme == "https" or local):
            raise ValueError("must be an https:// URL (http:// only to 127.0.0.1 or localhost)")
        return value

    @field_validator("pagerduty_routing_key", "paging_webhook_token")
    @classmethod
    def _blank_is_unset(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        return SecretStr(value.get_secret_value().strip())

    @field_validator("metrics_port", mode="before")
    @classmethod
    def _blank_port_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        token = value.get_secret_value().strip()
        if len(token) < MIN_METRICS_TOKEN_CHARS or any(c.isspace() for c in token):
            raise ValueError(
                f"must be at least {MIN_METRICS_TOKEN_CHARS} characters, without spaces "
                "(for example: openssl rand -hex 24)"
            )
        return SecretStr(token)

    @property
    def metrics_placement(self) -> MetricsPlacement:
        """Where GET /metrics is served: on its own port, beside Slack on PORT (only behind a
        token), or nowhere."""
        if self.metrics_port is not None:
            return MetricsPlacement.OWN_PORT
        if self.metrics_token is not None:
            return MetricsPlacement.BESIDE_SLACK
        return MetricsPlacement.OFF

    @field_validator("sink_aws_secret_name")
    @classmethod
    def _secret_name_pattern(cls, value: str) -> str:
        return check_name_pattern(value)

    @field_validator("audit_forward_url")
    @classmethod
    def _forward_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return check_forward_url(value.strip())

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

    @field_validator("master_keys_file", mode="before")
    @classmethod
    def _blank_path_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def key_file(self) -> Path:
        """Where the master key ring's file is (MASTER_KEYS_FILE, else the default)."""
        return self.master_keys_file or DEFAULT_MASTER_KEYS_FILE

    @property
    def kms_region(self) -> str | None:
        """The region of MASTER_KMS_KEY_ID: AWS_REGION, else the one its ARN names."""
        if self.master_kms_key_id is None:
            return None
        return self.aws_region or region_of(self.master_kms_key_id)

    @property
    def sinks(self) -> tuple[SinkKind, ...]:
        """The secret sinks configured, the ones a key's credentials can be delivered to."""
        kinds = []
        if self.sink_file_dir is not None:
            kinds.append(SinkKind.FILE)
        if self.sink_aws_secrets_manager:
            kinds.append(SinkKind.AWS_SECRETS_MANAGER)
        return tuple(kinds)

    @property
    def paging_enabled(self) -> bool:
        return self.pagerduty_routing_key is not None or self.paging_webhook_url is not None

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def missing_slack_settings(self) -> list[str]:
        """The Slack settings still needed to run the bot in the chosen mode."""
        missing = []
        if self.slack_bot_token is None:
            missing.append("SLACK_BOT_TOKEN")
        if self.slack_signing_secret is None and not self.socket_mode:
            # manifest.yml sets the app up in Socket Mode: the app token comes first.
            missing.append("SLACK_APP_TOKEN (Socket Mode) or SLACK_SIGNING_SECRET (HTTP mode)")
        return missing


FORWARD_SCHEMES = ("https", "http", "syslog", "syslog+tcp")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def check_forward_url(url: str) -> str:
    """An audit forwarding destination: ``https://host[:port]/path`` (``http://`` only to this
    machine: audit events leave it encrypted), ``syslog://host:port`` (UDP) or
    ``syslog+tcp://host:port``. Credentials belong in AUDIT_FORWARD_TOKEN, not in the URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("must be an https://, syslog:// or syslog+tcp:// URL") from None
    if parts.scheme not in FORWARD_SCHEMES or not parts.hostname:
        raise ValueError("must be an https://, syslog:// or syslog+tcp:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not hold credentials: set AUDIT_FORWARD_TOKEN instead")
    if parts.scheme == "http" and parts.hostname not in _LOCAL_HOSTS:
        raise ValueError("http:// is only allowed to this machine (localhost): use https://")
    if parts.scheme.startswith("syslog") and (parts.path not in ("", "/") or parts.query):
        raise ValueError("a syslog destination is syslog://host:port, nothing after the port")
    if port == 0:
        raise ValueError("the port must be from 1 to 65535")
    return url


_COIN = re.compile(r"[A-Z0-9]{1,20}")


def parse_coin_amounts(text: str) -> dict[str, Decimal]:
    """ "USDT:10000, BTC:0.5" -> {"USDT": 10000, "BTC": 0.5}; a clear ValueError otherwise."""
    amounts: dict[str, Decimal] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        coin, sep, amount = part.partition(":")
        coin = coin.strip().upper()
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            value = Decimal("NaN")
        if not sep or not _COIN.fullmatch(coin) or not value.is_finite() or value <= 0:
            raise ValueError(
                "must be COIN:amount pairs separated by commas, such as USDT:10000,BTC:0.5 "
                "(amounts above zero)"
            )
        amounts[coin] = value
    return amounts


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning any validation problem into one ConfigError line."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"configuration error: {name}: {message}") from None
    if settings.metrics_port is not None and settings.metrics_port == settings.port:
        raise ConfigError(
            "configuration error: METRICS_PORT: must differ from PORT (metrics are kept off "
            "the port Slack posts to)"
        )
    if settings.master_kms_key_id is not None and settings.kms_region is None:
        raise ConfigError(
            "configuration error: AWS_REGION: required with MASTER_KMS_KEY_ID (unless that is "
            "an ARN, which names its region)"
        )
    if settings.sink_aws_secrets_manager and settings.aws_region is None:
        raise ConfigError("configuration error: AWS_REGION: required with SINK_AWS_SECRETS_MANAGER")
    if settings.sink_default is not None and settings.sink_default not in settings.sinks:
        needed = (
            "SINK_FILE_DIR"
            if settings.sink_default == SinkKind.FILE
            else "SINK_AWS_SECRETS_MANAGER"
        )
        raise ConfigError(
            f"configuration error: SINK_DEFAULT: the {settings.sink_default.value} sink is not "
            f"configured (set {needed})"
        )
    return settings
