"""The sub-accounts of each governed master account, as Binance lists them.

Binance names a sub-account by its email ("Query Sub-account List (For Master Account)",
GET /sapi/v1/sub-account/list). Syncing links the team's Binance accounts to their master:
an account whose alias is a sub-account's email (registered by hand before the governor
came) becomes governed; a sub-account the team has no account for gets one, named by its
email, so it can be chosen when creating a key. Asset-management sub-accounts are listed but
never governed: Binance's sub-account key management does not support them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.binance.governor import GovernorGateway
from bot.services.custody.keys import open_credentials
from bot.services.governor.calls import CallContext, on_behalf_of
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import ApiKey, BinanceAccount, KeyPurpose, KeyStatus

LIVE = (KeyStatus.ACTIVE.value, KeyStatus.ROTATING.value)


@dataclass(frozen=True)
class SyncResult:
    master_alias: str
    linked: tuple[str, ...]  # emails of the sub-accounts now governed
    skipped: tuple[str, ...]  # asset-management sub-accounts (not supported by Binance)
    error: str | None = None


def sync_sub_accounts(
    *, engine: Engine, ring: KeyRing, governor: GovernorGateway, team_id: str, actor: str
) -> list[SyncResult]:
    """Ask each of the team's governors for its sub-accounts and link them (see the module
    docstring). A governor Binance does not answer for is reported, the others still sync."""
    with Session(engine) as session:
        rows = session.exec(
            select(ApiKey, BinanceAccount)
            .join(BinanceAccount, col(BinanceAccount.id) == col(ApiKey.account_id))
            .where(
                ApiKey.team_id == team_id,
                ApiKey.purpose == KeyPurpose.GOVERNOR.value,
                col(ApiKey.status).in_(LIVE),
            )
        ).all()
        governors = [(open_credentials(ring, key), account) for key, account in rows]
    results = []
    for creds, master in governors:
        context = CallContext(team_id=team_id, actor=actor, why="list")
        try:
            with on_behalf_of(context):
                subs = governor.sub_accounts(creds)
        except binance.BinanceError as error:
            results.append(SyncResult(master.alias, (), (), error=error.user_message))
            continue
        results.append(_link(engine, team_id, master, subs))
    return results


def _link(
    engine: Engine, team_id: str, master: BinanceAccount, subs: list[binance.SubAccount]
) -> SyncResult:
    linked, skipped = [], []
    with session_scope(engine) as session:
        accounts = session.exec(
            select(BinanceAccount).where(BinanceAccount.team_id == team_id)
        ).all()
        by_name = {}
        for account in accounts:
            by_name[account.alias.casefold()] = account
            if account.sub_account_email:
                by_name[account.sub_account_email.casefold()] = account
        for sub in subs:
            if not sub.email:
                continue
            if sub.is_asset_management_sub_account:
                skipped.append(sub.email)
                continue
            found = by_name.get(sub.email.casefold())
            if found is not None and found.id == master.id:
                continue
            account = found or BinanceAccount(team_id=team_id, alias=sub.email[:80])
            session.add(account)
            account.master_account_id = master.id
            account.sub_account_email = sub.email
            linked.append(sub.email)
    return SyncResult(master.alias, tuple(linked), tuple(skipped))
