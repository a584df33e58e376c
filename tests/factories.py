"""Test data shared by the test files: the permissions of Binance keys, rows made the way the
services make them (sealed, fingerprinted), and scheduled jobs made due."""

from __future__ import annotations

import secrets
import string
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.job_queue.kinds import JobKind
from storage.crypto import KeyRing, mask_api_key
from storage.master_keys import seal_api_key_row
from storage.models import ApiKey, BinanceAccount, JobState, KeyPurpose, KeyType, ScheduledJob

ALPHANUM = string.ascii_letters + string.digits

# What Binance's GET /sapi/v1/account/apiRestrictions answers for a read-only key with an IP
# whitelist: every field named.
READ_ONLY = {
    "ipRestrict": True,
    "createTime": 1_700_000_000_000,
    "enableReading": True,
    "enableSpotAndMarginTrading": False,
    "enableWithdrawals": False,
    "enableInternalTransfer": False,
    "permitsUniversalTransfer": False,
    "enableMargin": False,
    "enableFutures": False,
    "enableVanillaOptions": False,
    "enablePortfolioMarginTrading": False,
    "enableFixApiTrade": False,
    "enableFixReadOnly": False,
}
# What a key of a higher tier has on top of that: ``{**READ_ONLY, **WITHDRAW}`` is a whole
# answer; alone, they are the permissions of a simulator key (``add_key(permissions=TRADE)``).
TRADE = {"enableSpotAndMarginTrading": True}
WITHDRAW = {**TRADE, "enableWithdrawals": True}


def random_api_key() -> str:
    return "".join(secrets.choice(ALPHANUM) for _ in range(64))


def account(session: Session, team_id: str = "T0TEST", alias: str = "main") -> BinanceAccount:
    existing = session.exec(
        select(BinanceAccount).where(
            BinanceAccount.team_id == team_id, BinanceAccount.alias == alias
        )
    ).first()
    if existing:
        return existing
    row = BinanceAccount(team_id=team_id, alias=alias)
    session.add(row)
    session.flush()
    return row


def stored_key(
    session: Session,
    ring: KeyRing,
    *,
    label: str,
    api_key: str | None = None,
    secret: str | None = None,
    team_id: str = "T0TEST",
    owner: str = "U0ALICE",
    purpose: KeyPurpose = KeyPurpose.READ_ONLY,
    key_type: KeyType = KeyType.HMAC,
) -> ApiKey:
    api_key = api_key or random_api_key()
    secret = secret or random_api_key()
    row = ApiKey(
        team_id=team_id,
        label=label,
        account_id=account(session, team_id).id,
        owner_user_id=owner,
        purpose=purpose.value,
        key_type=key_type.value,
        api_key_masked=mask_api_key(api_key),
        created_by=owner,
    )
    seal_api_key_row(ring, row, api_key=api_key, secret=secret)
    session.add(row)
    session.flush()
    return row


def make_due(engine: Engine, *, kind: JobKind, at: datetime, key_id: str | None = None) -> int:
    """Make the pending jobs of ``kind`` (of one key, if ``key_id`` is given) due ``at``, as if
    their time had come; returns how many. Finding none means the test set its scene wrong."""
    query = sa.update(ScheduledJob).where(
        col(ScheduledJob.kind) == kind, col(ScheduledJob.state) == JobState.PENDING.value
    )
    if key_id is not None:
        query = query.where(col(ScheduledJob.key_id) == key_id)
    with engine.begin() as connection:
        moved = connection.execute(query.values(due_at=at)).rowcount
    assert moved, f"no pending {kind} job to make due"
    return moved
