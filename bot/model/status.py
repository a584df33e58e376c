"""A status report: what Binance said about each key, with its findings (stored briefly so its
pages can be browsed; never key material)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.binance import permissions as binance
from bot.model.delivery import DeliveryView
from bot.model.findings import Finding, Severity, worst
from bot.vocabulary import KeyPurpose


@dataclass(frozen=True)
class KeyReport:
    key_id: str
    label: str
    account_alias: str
    owner_user_id: str | None
    purpose: KeyPurpose
    key_type: str
    masked: str
    created_at: datetime
    checked: bool  # Binance answered
    permissions: dict[str, Any] | None  # KeyPermissions.to_dict() when checked
    findings: list[Finding]
    status: str = "active"
    # The viewer is neither the owner nor an admin: show the summary, not the details.
    redacted: bool = False
    redacted_tier: str | None = None
    # Where its credentials are delivered (None: nowhere, or not for this viewer's eyes).
    delivery: DeliveryView | None = None

    @property
    def severity(self) -> Severity:
        return worst(self.findings)

    @property
    def tier(self) -> binance.Tier | None:
        if self.redacted_tier is not None:
            return binance.Tier[self.redacted_tier]
        if self.permissions is None:
            return None
        return binance.KeyPermissions.from_dict(self.permissions).tier

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "label": self.label,
            "account_alias": self.account_alias,
            "owner_user_id": self.owner_user_id,
            "purpose": self.purpose.value,
            "key_type": self.key_type,
            "masked": self.masked,
            "created_at": self.created_at.isoformat(),
            "checked": self.checked,
            "permissions": self.permissions,
            "findings": [f.to_dict() for f in self.findings],
            "status": self.status,
            "redacted": self.redacted,
            "redacted_tier": self.redacted_tier,
            "delivery": self.delivery.to_dict() if self.delivery else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> KeyReport:
        return cls(
            key_id=data["key_id"],
            label=data["label"],
            account_alias=data["account_alias"],
            owner_user_id=data["owner_user_id"],
            purpose=KeyPurpose(data["purpose"]),
            key_type=data["key_type"],
            masked=data["masked"],
            created_at=datetime.fromisoformat(data["created_at"]),
            checked=data["checked"],
            permissions=data["permissions"],
            findings=[Finding.from_dict(f) for f in data["findings"]],
            status=data.get("status", "active"),
            redacted=data.get("redacted", False),
            redacted_tier=data.get("redacted_tier"),
            delivery=DeliveryView.from_dict(data.get("delivery")),
        )


@dataclass(frozen=True)
class StatusReport:
    report_id: str
    scope: str  # what was asked for, for the header: "all keys", "keys of <@U1>", "“bot”"
    created_at: datetime
    keys: list[KeyReport] = field(default_factory=list)
    scope_user_id: str | None = None  # whose keys were asked for (`status @user` / `mine`)
    # One key asked for by name (`status <label>`, a menu's Details): shown in full; a team,
    # a person's keys or `mine` are shown one line a key.
    detailed: bool = False
    # Governed sub-accounts with no key the bot knows (asked for all keys only).
    unmanaged: list[str] = field(default_factory=list)

    def count(self, severity: Severity) -> int:
        return sum(1 for k in self.keys if k.severity == severity)

    @property
    def summary(self) -> str:
        n = len(self.keys)
        parts = [f"{n} key{'s' if n != 1 else ''}"]
        details = []
        for severity, singular, plural in (
            (Severity.CRITICAL, "critical", "critical"),
            (Severity.WARNING, "warning", "warnings"),
            (Severity.UNKNOWN, "unknown", "unknown"),
        ):
            count = self.count(severity)
            if count:
                details.append(f"{count} {singular if count == 1 else plural}")
        if not details:
            details.append("all fine" if n else "nothing to check")
        return parts[0] + ": " + ", ".join(details)

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "scope": self.scope,
            "scope_user_id": self.scope_user_id,
            "detailed": self.detailed,
            "created_at": self.created_at.isoformat(),
            "keys": [k.to_dict() for k in self.keys],
            "unmanaged": list(self.unmanaged),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StatusReport:
        return cls(
            report_id=data["report_id"],
            scope=data["scope"],
            scope_user_id=data.get("scope_user_id"),
            detailed=data.get("detailed", False),
            created_at=datetime.fromisoformat(data["created_at"]),
            keys=[KeyReport.from_dict(k) for k in data["keys"]],
            unmanaged=list(data.get("unmanaged") or []),
        )
