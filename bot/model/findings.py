"""Least-privilege findings as people read them: severity, kind, names of purposes and
permissions."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from bot.binance.permissions import KeyPermissions
from bot.vocabulary import KeyPurpose

PURPOSE_NAMES = {
    KeyPurpose.READ_ONLY: "read-only analysis",
    KeyPurpose.TRADING: "trading bot",
    KeyPurpose.WITHDRAWALS: "withdrawals",
    KeyPurpose.GOVERNOR: "governor of sub-account keys",
}


# Human names of Binance's permission flags, in the order people read them.
PERMISSION_NAMES = {
    "enableReading": "Read",
    "enableSpotAndMarginTrading": "Spot & margin trading",
    "enableMargin": "Margin",
    "enableFutures": "Futures",
    "enableVanillaOptions": "Options",
    "enablePortfolioMarginTrading": "Portfolio margin",
    "enableFixApiTrade": "FIX trading",
    "enableFixReadOnly": "FIX read-only",
    "enableWithdrawals": "Withdrawals",
    "enableInternalTransfer": "Internal transfer",
    "permitsUniversalTransfer": "Universal transfer",
}

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z]|[0-9]|$)|[A-Z]?[a-z]+|[0-9]+")
_PREFIXES = ("enable", "permits")


def permission_name(flag: str) -> str:
    """A permission flag as people read it: the known ones by their usual names, one Binance
    added later humanised from its field name (``enableCopyTrading`` -> "Copy trading",
    ``permitsAPIStaking`` -> "API staking")."""
    known = PERMISSION_NAMES.get(flag)
    if known is not None:
        return known
    rest = flag
    for prefix in _PREFIXES:
        if rest.startswith(prefix) and len(rest) > len(prefix):
            rest = rest[len(prefix) :]
            break
    words = _WORD.findall(rest) or [rest]
    words = [w if w.isupper() and len(w) > 1 else w.lower() for w in words]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def new_permission_flags(permissions: Mapping[str, object] | None) -> tuple[str, ...]:
    """In a stored observation (Binance's field names): the permission flags this code does
    not know, sorted (see ``KeyPermissions.new_flags``)."""
    if not permissions:
        return ()
    return KeyPermissions.from_dict(permissions).new_flags


class Severity(IntEnum):
    """Higher is worse. UNKNOWN sits above OK: a key we could not check is never "fine"."""

    OK = 0
    INFO = 1
    UNKNOWN = 2
    WARNING = 3
    CRITICAL = 4


class FindingKind(StrEnum):
    COMPROMISED = "compromised"
    WITHDRAWALS_ENABLED = "withdrawals_enabled"
    NO_WITHDRAW_WHITELIST = "no_withdraw_whitelist"
    TRANSFER_RIGHTS = "transfer_rights"
    UNKNOWN_PERMISSION = "unknown_permission"  # a flag Binance added that the bot cannot judge
    NO_IP_WHITELIST = "no_ip_whitelist"
    TRADING_EXPIRING = "trading_expiring"
    BEYOND_PURPOSE = "beyond_purpose"
    PERMISSIONS_CHANGED = "permissions_changed"
    KEY_REJECTED = "key_rejected"
    UNREACHABLE = "binance_unreachable"
    HMAC_KEY = "hmac_key"
    DELIVERY_PENDING = "delivery_pending"  # the newest credentials have not reached the sink


KIND_ORDER = {kind: i for i, kind in enumerate(FindingKind)}


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    severity: Severity
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "severity": int(self.severity), "text": self.text}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Finding:
        return cls(FindingKind(data["kind"]), Severity(data["severity"]), data["text"])


def worst(findings: list[Finding]) -> Severity:
    return max((f.severity for f in findings), default=Severity.OK)
