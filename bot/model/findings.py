"""Least-privilege findings as people read them: severity, kind, names of purposes and
permissions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from storage.models import KeyPurpose

PURPOSE_NAMES = {
    KeyPurpose.READ_ONLY: "read-only analysis",
    KeyPurpose.TRADING: "trading bot",
    KeyPurpose.WITHDRAWALS: "withdrawals",
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
    NO_IP_WHITELIST = "no_ip_whitelist"
    TRADING_EXPIRING = "trading_expiring"
    BEYOND_PURPOSE = "beyond_purpose"
    PERMISSIONS_CHANGED = "permissions_changed"
    KEY_REJECTED = "key_rejected"
    UNREACHABLE = "binance_unreachable"
    HMAC_KEY = "hmac_key"


KIND_ORDER = {kind: i for i, kind in enumerate(FindingKind)}


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    severity: Severity
    text: str

    def to_dict(self) -> dict:
        return {"kind": self.kind.value, "severity": int(self.severity), "text": self.text}

    @classmethod
    def from_dict(cls, data: dict) -> Finding:
        return cls(FindingKind(data["kind"]), Severity(data["severity"]), data["text"])


def worst(findings: list[Finding]) -> Severity:
    return max((f.severity for f in findings), default=Severity.OK)
