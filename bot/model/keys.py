"""A registered key as lists and summaries show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.binance import permissions as binance
from bot.model.findings import Finding
from bot.vocabulary import KeyPurpose, KeyStatus, KeyType

# Where a person creates, restricts and deletes API keys (no API does that: see DESIGN).
BINANCE_API_MANAGEMENT = "https://www.binance.com/en/my/settings/api-management"

__all__ = [
    "BINANCE_API_MANAGEMENT",
    "MAX_ALIAS_LENGTH",
    "KeyPurpose",
    "KeyStatus",
    "KeySummary",
    "KeyType",
    "RegisteredKey",
]


MAX_ALIAS_LENGTH = 80


@dataclass(frozen=True)
class RegisteredKey:
    key_id: str
    label: str
    masked: str
    account_alias: str
    owner_user_id: str
    purpose: KeyPurpose
    key_type: KeyType
    permissions: binance.KeyPermissions
    findings: list[Finding]


@dataclass(frozen=True)
class KeySummary:
    """What `list` shows: no Binance call, last known facts only."""

    key_id: str
    label: str
    owner_user_id: str | None
    purpose: KeyPurpose
    key_type: KeyType
    status: KeyStatus
    masked: str
    account_alias: str
    created_at: datetime
    last_tier: binance.Tier | None
    checked_at: datetime | None
    # Switched-on permissions Binance added that the bot does not know (Binance's names).
    new_permissions_on: tuple[str, ...] = ()
