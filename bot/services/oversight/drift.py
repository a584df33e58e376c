"""The drift monitor: a scheduled check of every key against what Binance said last time.

One digest per run and team, listing only what CHANGED since the last observation: a
permission added (withdrawals and transfers first; one Binance added that the bot does not
know yet, by name, as possibly risky), a permission removed, the IP whitelist
removed, trading permission about to expire or expired, a key newly rejected by Binance, a key
newly beyond its declared purpose. Binance failures are "could not check", never changes.
Nothing is posted when nothing changed.

Checking and remembering are two steps: the job posts the digest first and only then records
what Binance said, so a digest Slack refused is computed and posted again on the retry (a
change recorded before its digest was delivered would never be reported).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.model.drift import Change, Digest
from bot.model.findings import PERMISSION_NAMES, PURPOSE_NAMES, Severity, permission_name
from bot.services.custody.keys import open_credentials
from bot.services.oversight.findings import NO_WHITELIST_TEXT, PURPOSE_MAX_TIER
from bot.services.oversight.unmanaged import unmanaged_sub_accounts
from bot.services.oversight.withdrawal_controls import WhitelistReading, read_whitelists
from bot.services.response.paging import open_page, resolve_page, withdrawals_page_key
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import CryptoError, KeyRing
from storage.db import session_scope
from storage.models import RETIRED_STATUSES, ApiKey, BinanceAccount, KeyPurpose

EXPIRY_WINDOW = timedelta(days=14)
# A team with more keys than one minute of Binance request weight allows (~4,800) is checked at
# that pace: each check may wait this long for weight rather than be reported "could not check".
PACED_WAIT_SECONDS = 90.0
_MONEY_FLAGS = ("enableWithdrawals", "enableInternalTransfer", "permitsUniversalTransfer")


def check_team(
    *, engine: Engine, ring: KeyRing, gateway: binance.BinanceGateway, team_id: str, now: datetime
) -> Digest:
    """Ask Binance about every key of the team and compare with the last observation.
    Writes nothing: ``remember_check`` records the observations once the digest is out."""
    digest = Digest(team_id=team_id)
    with Session(engine) as session:
        keys = list(
            session.exec(
                select(ApiKey).where(
                    ApiKey.team_id == team_id,
                    col(ApiKey.status).not_in(RETIRED_STATUSES),
                    col(ApiKey.secret_sealed).is_not(None),
                )
            ).all()
        )
    creds, checkable = [], []
    for key in keys:
        try:
            creds.append(open_credentials(ring, key))
            checkable.append(key)
        except (CryptoError, Exception):
            digest.could_not_check.append((key.label, "its stored secret could not be opened"))
    results = gateway.check_many(creds, patience=PACED_WAIT_SECONDS)
    updates = digest.observed
    for key, result in zip(checkable, results, strict=True):
        digest.checked += 1
        if result.permissions is not None:
            new = result.permissions.to_dict()
            digest.changes.extend(_changes(key, result.permissions, now))
            updates[key.id] = (new, "ok")
        elif isinstance(result.error, binance.KeyRejected):
            if key.last_check_result != "rejected":
                digest.changes.append(
                    Change(
                        key.label,
                        key.owner_user_id,
                        Severity.CRITICAL,
                        "Binance now rejects this key: deleted, or this bot's IP is no longer on "
                        "its whitelist, or a permission was removed (Binance does not say which).",
                    )
                )
            updates[key.id] = (None, "rejected")
        else:
            # CheckResult holds exactly one of permissions and error
            reason = result.error.user_message if result.error else "Binance did not answer"
            digest.could_not_check.append((key.label, reason))
            updates[key.id] = (None, "unknown")
    answered = [
        (key, c, r.permissions)
        for key, c, r in zip(checkable, creds, results, strict=True)
        if r.permissions is not None
    ]
    _whitelist_changes(engine, digest, answered, read_whitelists(gateway, answered))
    digest.changes.sort(key=lambda c: (-c.severity, c.label.lower()))
    with Session(engine) as session:
        digest.unmanaged = unmanaged_sub_accounts(session, team_id)
    return digest


def _whitelist_changes(
    engine: Engine,
    digest: Digest,
    answered: list[tuple[ApiKey, binance.Credentials, binance.KeyPermissions]],
    readings: dict[str, WhitelistReading],
) -> None:
    """A Withdraw-tier key on an account none of whose saved withdrawal addresses is
    whitelisted now (first seen so, or since the last check): critical, once; an address
    whitelisted again: told once too. The account's whitelist switch is not in Binance's API:
    nothing says it is on or off (bot.services.oversight.withdrawal_controls)."""
    if not readings:
        return
    with Session(engine) as session:
        before = {
            a.id: a.withdraw_whitelist
            for a in session.exec(
                select(BinanceAccount).where(col(BinanceAccount.id).in_(list(readings)))
            ).all()
        }
    for key, _creds, perms in answered:
        reading = readings.get(key.account_id)
        if reading is None or perms.tier < binance.Tier.WITHDRAW:
            continue
        if reading.any_whitelisted is None:
            digest.could_not_check.append(
                (key.label, f"Its account's saved withdrawal addresses: {reading.error}")
            )
            continue
        was = before.get(key.account_id)
        if reading.any_whitelisted is False and was is not False:
            digest.changes.append(
                Change(key.label, key.owner_user_id, Severity.CRITICAL, NO_WHITELIST_TEXT)
            )
        elif reading.any_whitelisted is True and was is False:
            digest.changes.append(
                Change(
                    key.label,
                    key.owner_user_id,
                    Severity.INFO,
                    "A saved withdrawal address of the account is whitelisted now.",
                )
            )
    digest.whitelists.update(
        {
            account_id: r.any_whitelisted
            for account_id, r in readings.items()
            if r.any_whitelisted is not None
        }
    )


def _changes(key: ApiKey, perms: binance.KeyPermissions, now: datetime) -> list[Change]:
    found: list[Change] = []

    def add(severity: Severity, text: str) -> None:
        found.append(Change(key.label, key.owner_user_id, severity, text))

    before = key.permissions_json
    if before is not None:
        old = binance.KeyPermissions.from_dict(before)
        for name, label in PERMISSION_NAMES.items():
            was, now_on = old.flag(name), perms.flag(name)
            if was is None or now_on is None or was == now_on:
                continue
            if now_on:
                money = name in _MONEY_FLAGS
                add(
                    Severity.CRITICAL if money else Severity.WARNING,
                    f"{label} permission was turned on.",
                )
            else:
                add(Severity.INFO, f"{label} permission was turned off.")
        # Permissions Binance added that the bot does not know: possibly risky, so reported as
        # a warning when they appear switched on or are switched on.
        for name in sorted({*old.new_flags, *perms.new_flags}):
            was, now_on = old.flag(name), perms.flag(name)
            label = f"{permission_name(name)} (a permission the bot does not know yet)"
            if now_on is True and was is not True:
                verb = "was enabled" if was is False else "appeared, switched on"
                add(Severity.WARNING, f"{label} {verb}.")
            elif was is True and now_on is False:
                add(Severity.INFO, f"{label} permission was turned off.")
        if old.ip_restrict is True and perms.ip_restrict is False:
            add(Severity.WARNING, "The IP whitelist was removed.")
        purpose = KeyPurpose(key.purpose)
        limit = PURPOSE_MAX_TIER[purpose]
        if perms.tier > limit >= old.tier:
            add(
                Severity.CRITICAL,
                f"It now has the {perms.tier.name.title()} tier, beyond its declared purpose "
                f"({PURPOSE_NAMES[purpose]}).",
            )
    if key.last_check_result == "rejected":
        add(Severity.INFO, "Binance accepts this key again.")
    expires = perms.trading_expires_at
    if expires is not None and perms.tier >= binance.Tier.TRADE:
        # Compared with what was observed last time, so each state is reported once.
        last = key.permissions_checked_at
        seen = binance.KeyPermissions.from_dict(before).trading_expires_at if before else None
        # reported already: the same expiry, seen at the last check (``last``)
        seen_at = last if seen == expires else None
        if expires <= now and not (seen_at is not None and expires <= seen_at):
            add(
                Severity.WARNING,
                f"Trading permission expired on {expires:%Y-%m-%d} (no IP whitelist).",
            )
        elif now < expires <= now + EXPIRY_WINDOW and not (
            seen_at is not None and expires <= seen_at + EXPIRY_WINDOW
        ):
            add(
                Severity.WARNING,
                f"Trading permission expires on {expires:%Y-%m-%d}: add an IP whitelist.",
            )
    return found


def _page_withdrawals(
    session: Session, key: ApiKey, permissions: dict[str, Any], now: datetime
) -> None:
    """Withdrawals newly enabled on a key: page; seen disabled again: resolve that page."""
    before = (
        binance.KeyPermissions.from_dict(key.permissions_json) if key.permissions_json else None
    )
    after = binance.KeyPermissions.from_dict(permissions).flag("enableWithdrawals")
    if after is True and before is not None and before.flag("enableWithdrawals") is False:
        open_page(
            session,
            team_id=key.team_id,
            dedup_key=withdrawals_page_key(key.id),
            reason="withdrawals_enabled",
            summary=(
                f"Withdrawals were enabled on Binance API key “{key.label}” "
                f"({key.api_key_masked}): if nobody meant to, disable them or delete the key."
            ),
            key_id=key.id,
            now=now,
        )
    elif after is False:
        resolve_page(session, dedup_key=withdrawals_page_key(key.id), now=now)


def remember_check(engine: Engine, digest: Digest, now: datetime) -> None:
    """Record what Binance said (the baseline of the next check) and the audit event."""
    with session_scope(engine) as session:
        for key_id, (permissions, result) in digest.observed.items():
            key = session.get(ApiKey, key_id)
            if key is None:
                continue
            if permissions is not None:
                _page_withdrawals(session, key, permissions, now)
                key.permissions_json = permissions
                key.permissions_checked_at = now
            key.last_check_result = result
        for account_id, on in digest.whitelists.items():
            account = session.get(BinanceAccount, account_id)
            if account is not None:
                account.withdraw_whitelist = on
                account.withdraw_whitelist_checked_at = now
        record_event(
            session,
            team_id=digest.team_id,
            actor="bot",
            action=AuditAction.DRIFT_CHECK,
            detail={
                "checked": digest.checked,
                "changes": len(digest.changes),
                "could_not_check": len(digest.could_not_check),
            },
        )
