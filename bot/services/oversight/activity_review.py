"""The daily activity review (the seed's "monitor API activity regularly").

Once a day, for every Binance account of a team with a key that can read its history, the
withdrawals since the last review are read and two kinds are reported in one digest: to an
address the account did not withdraw to in the 90 days up to the review, and at or above the configured
amount for the coin (``ACTIVITY_REVIEW_LARGE_WITHDRAWALS``; no prices are fetched: each coin
has its own threshold, coins without one are compared for addresses only).

One review per account, through one of its keys. Binance's limits for the withdraw history are
respected by the gateway (a window under 90 days; 18,000 of the account's 180,000 UID weight a
second, so 10 requests a second per account); the review waits for them rather than give up. An account that could not be read is
"could not check" in the digest, and its period is reviewed again the next day (the reviewed
mark moves only on success). Nothing is posted when nothing is new.

Reviewing and remembering are two steps, like the drift check: the job posts the digest, then
``remember_review`` moves each account's mark and writes the audit event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.model.activity import ActivityDigest, NotableWithdrawal
from bot.services.custody.keys import open_credentials
from bot.services.response.paging import open_page
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import CryptoError, KeyRing
from storage.db import session_scope
from storage.models import RETIRED_STATUSES, ApiKey, BinanceAccount, KeyStatus, utcnow

KNOWN_ADDRESS_LOOKBACK = timedelta(days=90)
FIRST_REVIEW_SPAN = timedelta(days=1)  # an account never reviewed: its last day
MAX_REVIEW_SPAN = timedelta(days=30)  # after a long outage, the last 30 days at most
# Each history request may wait this long for Binance's allowance (per second and per account;
# longer when Binance asked the bot to pause after a 429).
PACED_WAIT_SECONDS = 90.0


def can_read(key: ApiKey) -> bool:
    """A live key whose account's history can be read (Binance said ``enableReading``)."""
    perms = key.permissions_json or {}
    return (
        key.status not in RETIRED_STATUSES
        and key.secret_sealed is not None
        and key.last_check_result != "rejected"
        and perms.get("enableReading") is True
    )


def review_team(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    team_id: str,
    now: datetime,
    thresholds: dict[str, Decimal],
) -> ActivityDigest:
    """Read each account's new withdrawals; writes nothing (see ``remember_review``)."""
    digest = ActivityDigest(team_id=team_id)
    with Session(engine) as session:
        rows = session.exec(
            select(ApiKey, BinanceAccount)
            .join(BinanceAccount, col(BinanceAccount.id) == ApiKey.account_id)
            .where(ApiKey.team_id == team_id, col(ApiKey.status).not_in(RETIRED_STATUSES))
            .order_by(col(BinanceAccount.alias), col(ApiKey.created_at))
        ).all()
    accounts: dict[str, tuple[BinanceAccount, list[ApiKey]]] = {}
    for key, account in rows:
        if can_read(key):
            accounts.setdefault(account.id, (account, []))[1].append(key)
    for account, keys in accounts.values():
        # A key reported compromised is the last one to read with.
        keys.sort(key=lambda k: k.status == KeyStatus.COMPROMISED.value)
        _review_account(digest, account, keys, ring, gateway, now, thresholds)
    return digest


def _review_account(
    digest: ActivityDigest,
    account: BinanceAccount,
    keys: list[ApiKey],
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    now: datetime,
    thresholds: dict[str, Decimal],
) -> None:
    since = account.activity_reviewed_until or now - FIRST_REVIEW_SPAN
    since = max(since, now - MAX_REVIEW_SPAN)
    # One request per account: Binance's window is under 90 days, so the addresses "seen
    # before" are those of the 90 days up to now (at least 60 before the period after a long
    # outage).
    history_start = now - KNOWN_ADDRESS_LOOKBACK + timedelta(milliseconds=1)
    problem = "no key of this account can read it"
    for key in keys:
        try:
            creds = open_credentials(ring, key)
        except CryptoError:
            problem = f"the stored secret of “{key.label}” could not be opened"
            continue
        try:
            with binance.waiting_up_to(PACED_WAIT_SECONDS):
                withdrawals = gateway.withdraw_history(
                    creds, start=history_start, end=now, account=account.id
                )
        except binance.KeyRejected as error:
            problem = error.user_message
            continue  # another key of the account may still read
        except binance.BinanceError as error:
            problem = error.user_message
            break
        digest.accounts_checked += 1
        digest.reviewed[account.id] = now
        # Binance gives applyTime in whole seconds: a withdrawal in the second the last review
        # ended is reviewed again rather than missed.
        start = since.replace(microsecond=0)
        known = {w.address for w in withdrawals if w.address and w.time and w.time < start}
        for w in withdrawals:
            if w.time is not None and w.time < start:
                continue
            digest.withdrawals_seen += 1
            new = bool(w.address) and w.address not in known
            limit = thresholds.get((w.coin or "").upper())
            reached = limit is not None and w.amount is not None and w.amount >= limit
            large = limit if reached else None
            if new or large is not None:
                digest.notable.append(
                    NotableWithdrawal(
                        account_alias=account.alias,
                        coin=w.coin or "?",
                        amount=w.amount,
                        address=w.address or "",
                        network=w.network or "",
                        time=w.time,
                        status=w.status_text,
                        new_address=new,
                        large=large,
                    )
                )
        return
    digest.could_not_check.append((account.alias, problem))
    if account.activity_reviewed_until is None:
        digest.unreviewed_since[account.id] = since


def new_address_page_key(account_alias: str, address: str) -> str:
    return f"apikey-bot/new-withdrawal-address/{account_alias}/{address}"


def _page_new_address(session: Session, team_id: str, notable: NotableWithdrawal) -> None:
    """A withdrawal to an address the account had not used in 90 days cannot wait for someone
    to read Slack: it is paged (once per account and address). It is an event, not a condition
    that clears by itself: whoever looks into it resolves it in PagerDuty."""
    amount = f"{notable.amount} {notable.coin}" if notable.amount is not None else notable.coin
    open_page(
        session,
        team_id=team_id,
        dedup_key=new_address_page_key(notable.account_alias, notable.address),
        reason="new_withdrawal_address",
        summary=(
            f"Withdrawal of {amount} from Binance account {notable.account_alias} to an address "
            f"not used in the last 90 days ({notable.address[:12]}…, {notable.network or '?'})"
        ),
        key_id=None,
        now=utcnow(),
    )


def remember_review(engine: Engine, digest: ActivityDigest, *, posted: bool) -> None:
    """Move each reviewed account's mark and write the audit event (checked, could not
    check, posted)."""
    with session_scope(engine) as session:
        for account_id, until in digest.reviewed.items():
            account = session.get(BinanceAccount, account_id)
            if account is not None:
                account.activity_reviewed_until = until
        for account_id, since in digest.unreviewed_since.items():
            account = session.get(BinanceAccount, account_id)
            if account is not None and account.activity_reviewed_until is None:
                account.activity_reviewed_until = since  # reviewed from there next time
        for notable in digest.notable:
            if notable.new_address:
                _page_new_address(session, digest.team_id, notable)
        record_event(
            session,
            team_id=digest.team_id,
            actor="bot",
            action=AuditAction.ACTIVITY_REVIEW,
            detail={
                "accounts_checked": digest.accounts_checked,
                "withdrawals": digest.withdrawals_seen,
                "reported": len(digest.notable),
                "new_addresses": sum(1 for n in digest.notable if n.new_address),
                "large": sum(1 for n in digest.notable if n.large is not None),
                "could_not_check": [alias for alias, _ in digest.could_not_check],
                "posted": posted,
            },
        )
