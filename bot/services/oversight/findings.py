"""Least-privilege findings for one key (pure): what Binance says vs. what the key is for.

Order matters to users: the worst problems first. Within a severity, findings keep the order
of ``FindingKind`` (withdrawals, transfers, IP whitelist, expiry, purpose, changes, rejected,
unreachable).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.binance import (
    BinanceError,
    KeyPermissions,
    KeyRejected,
    RateLimited,
    Tier,
)
from bot.binance.permissions import TRADE_FLAGS
from bot.model.findings import (
    KIND_ORDER,
    PERMISSION_NAMES,
    PURPOSE_NAMES,
    Finding,
    FindingKind,
    Severity,
    permission_name,
)
from storage.models import KeyPurpose, KeyType

TRADING_EXPIRY_WARNING = timedelta(days=14)

# Binance recommends Ed25519 keys and calls HMAC keys not recommended: their secret is shared
# with Binance and, to register one, passes through people and Slack
# (https://developers.binance.com/docs/binance-spot-api-docs/faqs/api_key_types).
HMAC_FINDING = Finding(
    FindingKind.HMAC_KEY,
    Severity.INFO,
    "HMAC key: Binance recommends Ed25519 and calls HMAC keys not recommended. Replace it with "
    "a key pair the bot generates (`/apikey register`, the default key type).",
)

PURPOSE_MAX_TIER = {
    KeyPurpose.READ_ONLY: Tier.READ,
    KeyPurpose.TRADING: Tier.TRADE,
    KeyPurpose.WITHDRAWALS: Tier.WITHDRAW,
    KeyPurpose.GOVERNOR: Tier.TRADE,
}
# A governor needs Read and Spot & Margin trading (Binance marks the sub-account key endpoints
# TRADE: developers.binance.com/docs/sub_account/api-management/Create-Sub-account-API-Key-V2);
# the other trading permissions would let a thief with it trade more on the master account.
GOVERNOR_FLAGS = ("enableReading", "enableSpotAndMarginTrading")


def assess(
    *,
    purpose: KeyPurpose,
    now: datetime,
    permissions: KeyPermissions | None = None,
    error: BinanceError | None = None,
    previous: dict[str, Any] | None = None,
    compromised: bool = False,
    key_type: KeyType | None = None,
    withdraw_whitelist: bool | None = None,
    whitelist_error: str | None = None,
) -> list[Finding]:
    """Every least-privilege finding for a key, worst first (a key reported compromised is
    never "fine", whatever Binance says it may do).

    ``withdraw_whitelist``: whether any saved withdrawal address of the key's account is
    whitelisted (None: not known); ``whitelist_error``: why it could not be read just now."""
    if error is not None:
        findings = [_error_finding(error)]
    elif permissions is None:
        findings = [Finding(FindingKind.UNREACHABLE, Severity.UNKNOWN, "Not checked yet.")]
    else:
        findings = _permission_findings(permissions, purpose, now, previous)
        if permissions.tier >= Tier.WITHDRAW:
            findings += whitelist_findings(withdraw_whitelist, whitelist_error)
    if key_type == KeyType.HMAC and permissions is not None:
        findings.append(HMAC_FINDING)
    if compromised:
        findings.append(
            Finding(
                FindingKind.COMPROMISED,
                Severity.CRITICAL,
                "Reported compromised: delete this key in Binance API Management and follow the "
                "incident checklist (`/apikey incidents`).",
            )
        )
    return sorted(findings, key=lambda f: (-f.severity, KIND_ORDER[f.kind]))


# Exactly what was checked: Binance's address list has ``whiteStatus`` per saved address, and
# no field for the account's whitelist switch (bot.services.oversight.withdrawal_controls).
NO_WHITELIST_TEXT = (
    "No saved withdrawal address is whitelisted on this key's account (Binance's address "
    "list; whether the account's withdrawal whitelist is turned on is not in its API). Unless "
    "it is, funds can be withdrawn with this key to any address: in Binance's address "
    "management, turn the withdrawal whitelist on and whitelist the addresses it may use."
)


def whitelist_findings(whitelist: bool | None, error: str | None) -> list[Finding]:
    """For a Withdraw-tier key: no saved withdrawal address whitelisted, or not known."""
    if whitelist is False and error is None:
        return [Finding(FindingKind.NO_WITHDRAW_WHITELIST, Severity.CRITICAL, NO_WHITELIST_TEXT)]
    if error is not None:
        return [
            Finding(
                FindingKind.NO_WITHDRAW_WHITELIST,
                Severity.UNKNOWN,
                f"Could not read the account's saved withdrawal addresses: {error}",
            )
        ]
    return []


def _error_finding(error: BinanceError) -> Finding:
    if isinstance(error, KeyRejected):
        return Finding(
            FindingKind.KEY_REJECTED,
            Severity.CRITICAL,
            "Binance rejected this key. Either it was deleted, or this bot's IP address is not "
            "on the key's IP whitelist, or it lacks the permission: Binance does not say which.",
        )
    if isinstance(error, RateLimited):  # not a failure: the minute's limit is used up
        return Finding(
            FindingKind.UNREACHABLE,
            Severity.UNKNOWN,
            f"Not checked yet: {error.user_message} Until then its permissions are unknown.",
        )
    return Finding(
        FindingKind.UNREACHABLE,
        Severity.UNKNOWN,
        f"Could not check with Binance: {error.user_message} Its permissions are unknown.",
    )


def _permission_findings(
    perms: KeyPermissions, purpose: KeyPurpose, now: datetime, previous: dict[str, Any] | None
) -> list[Finding]:
    findings: list[Finding] = []
    beyond = perms.tier > PURPOSE_MAX_TIER[purpose]
    if perms.tier >= Tier.WITHDRAW:
        findings.append(
            Finding(
                FindingKind.WITHDRAWALS_ENABLED,
                Severity.CRITICAL if purpose != KeyPurpose.WITHDRAWALS else Severity.WARNING,
                "Withdrawals are enabled: a leak of this key can move funds off Binance.",
            )
        )
    if perms.transfer_rights:
        names = ", ".join(PERMISSION_NAMES.get(n, n) for n in perms.transfer_rights)
        findings.append(
            Finding(
                FindingKind.TRANSFER_RIGHTS,
                Severity.CRITICAL if purpose != KeyPurpose.WITHDRAWALS else Severity.WARNING,
                f"Transfer rights are enabled ({names}): they move funds between accounts.",
            )
        )
    if perms.new_flags_on:
        names = ", ".join(permission_name(n) for n in perms.new_flags_on)
        findings.append(
            Finding(
                FindingKind.UNKNOWN_PERMISSION,
                Severity.WARNING,
                f"Binance reports a permission the bot does not know yet, switched on ({names}): "
                "treated as possibly risky. Check what it allows in Binance API Management and "
                "switch it off unless the key needs it.",
            )
        )
    if perms.ip_restrict is False:
        text = "No IP whitelist: anyone holding the key can use it from anywhere."
        if purpose == KeyPurpose.GOVERNOR:
            text += (
                " A governor creates and deletes every sub-account's keys: restrict it to the "
                "bot's own IP addresses (BOT_EGRESS_IPS)."
            )
        elif perms.tier >= Tier.TRADE:
            text += " Binance also removes spot & margin trading from such keys after 30 days."
        severity = Severity.CRITICAL if purpose == KeyPurpose.GOVERNOR else Severity.WARNING
        findings.append(Finding(FindingKind.NO_IP_WHITELIST, severity, text))
    elif perms.ip_restrict is None:
        findings.append(
            Finding(
                FindingKind.NO_IP_WHITELIST,
                Severity.UNKNOWN,
                "Binance did not say whether the key has an IP whitelist.",
            )
        )
    expires = perms.trading_expires_at
    if expires is not None and perms.tier >= Tier.TRADE:
        if expires <= now:
            text = f"Trading permission expired on {expires:%Y-%m-%d} (no IP whitelist)."
            findings.append(Finding(FindingKind.TRADING_EXPIRING, Severity.WARNING, text))
        elif expires - now <= TRADING_EXPIRY_WARNING:
            # Calendar days, as the date shown: Dec 12 is "in 10 days" all through Dec 2.
            days = (expires.astimezone(UTC).date() - now.astimezone(UTC).date()).days
            when = {0: "today", 1: "tomorrow"}.get(days, f"in {days} days")
            text = (
                f"Trading permission expires {when} ({expires:%Y-%m-%d}): add an IP whitelist "
                "to keep it."
            )
            findings.append(Finding(FindingKind.TRADING_EXPIRING, Severity.WARNING, text))
    extra = _governor_extra_flags(perms) if purpose == KeyPurpose.GOVERNOR else []
    if extra and not beyond:
        names = ", ".join(permission_name(n) for n in extra)
        findings.append(
            Finding(
                FindingKind.BEYOND_PURPOSE,
                Severity.WARNING,
                f"A governor needs Read and Spot & margin trading only; this key can also "
                f"trade {names} on the master account: switch those off in Binance.",
            )
        )
    if beyond:
        findings.append(
            Finding(
                FindingKind.BEYOND_PURPOSE,
                Severity.CRITICAL if perms.tier >= Tier.WITHDRAW else Severity.WARNING,
                f"Permissions go beyond the declared purpose ({PURPOSE_NAMES[purpose]}): "
                f"Binance reports the {perms.tier.name.title()} tier.",
            )
        )
    changes = permission_changes(previous, perms.to_dict()) if previous else []
    if changes:
        findings.append(
            Finding(
                FindingKind.PERMISSIONS_CHANGED,
                Severity.WARNING,
                "Permissions changed since the last check: " + "; ".join(changes) + ".",
            )
        )
    return findings


def permission_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Human descriptions of the flags that changed between two stored observations (the
    flags Binance added later included, by name)."""
    changes = []
    new_flags = sorted(
        {*KeyPermissions.from_dict(before).new_flags, *KeyPermissions.from_dict(after).new_flags}
    )
    for flag in [*PERMISSION_NAMES, *new_flags]:
        old, new = before.get(flag), after.get(flag)
        if old is None or new is None or old == new:
            continue
        changes.append(f"{permission_name(flag)} {'enabled' if new else 'disabled'}")
    old_ip, new_ip = before.get("ipRestrict"), after.get("ipRestrict")
    if old_ip is not None and new_ip is not None and old_ip != new_ip:
        changes.append("IP whitelist " + ("added" if new_ip else "removed"))
    return changes


def purpose_excess(perms: KeyPermissions, purpose: KeyPurpose) -> list[str]:
    """How a key's permissions go beyond what its declared purpose needs (empty: they do not):
    a higher tier, transfer rights (only withdrawals move funds on purpose) and permissions
    Binance added that nobody here can judge. Registration and rotation ask the owner to
    confirm these."""
    if purpose == KeyPurpose.WITHDRAWALS:
        return []  # it may do everything Binance offers on purpose
    reasons = []
    if perms.tier > PURPOSE_MAX_TIER[purpose]:
        reasons.append(
            f"its {perms.tier.name.title()} tier exceeds the declared purpose "
            f"({PURPOSE_NAMES[purpose]})"
        )
    if perms.transfer_rights:
        names = ", ".join(permission_name(n) for n in perms.transfer_rights)
        reasons.append(f"it has transfer rights ({names}) its purpose does not need")
    if purpose == KeyPurpose.GOVERNOR:
        extra = _governor_extra_flags(perms)
        if extra:
            names = ", ".join(permission_name(n) for n in extra)
            reasons.append(f"a governor needs Read and Spot & margin trading only, not {names}")
    if perms.new_flags_on:
        names = ", ".join(permission_name(n) for n in perms.new_flags_on)
        reasons.append(f"it has permissions the bot does not know yet ({names})")
    return reasons


def _governor_extra_flags(perms: KeyPermissions) -> list[str]:
    """The trading permissions a governor key has beyond the two it needs."""
    return [n for n in TRADE_FLAGS if perms.flag(n) and n not in GOVERNOR_FLAGS]


def governor_refusals(perms: KeyPermissions) -> list[str]:
    """Why a key cannot serve as a governor (empty: it can). A governor creates and deletes
    every sub-account's keys, so it must not move funds and must be tied to the bot's own
    addresses; and Binance marks the sub-account key endpoints TRADE, so it needs that."""
    reasons = []
    if perms.tier >= Tier.WITHDRAW:
        reasons.append("withdrawals are enabled (a governor must never move funds)")
    if perms.transfer_rights:
        names = ", ".join(permission_name(n) for n in perms.transfer_rights)
        reasons.append(f"transfer rights are enabled ({names})")
    if perms.ip_restrict is not True:
        reasons.append("it is not restricted to trusted IP addresses (the bot's own)")
    if not perms.flag("enableSpotAndMarginTrading"):
        reasons.append(
            "Spot & margin trading is off, and Binance requires it (TRADE) for managing "
            "sub-account keys"
        )
    return reasons
