"""Sub-accounts of a governed master account that hold no key the bot knows ("unmanaged").

Binance lists a master account's sub-accounts (bot.services.governor.sub_accounts keeps the
team's accounts in step with that list); it offers no documented way to list a sub-account's
API keys, so keys made there by hand are invisible to the bot: a sub-account with no
registered key is exactly where such a key may live unseen. Read from the database only."""

from __future__ import annotations

from sqlmodel import Session, col, select

from storage.models import RETIRED_STATUSES, ApiKey, BinanceAccount, KeyPurpose


def unmanaged_sub_accounts(session: Session, team_id: str) -> list[str]:
    """The emails of governed sub-accounts (their master has a live governor) without a live
    key, sorted."""
    live = col(ApiKey.status).not_in(RETIRED_STATUSES)
    governed_masters = set(
        session.exec(
            select(ApiKey.account_id).where(
                ApiKey.team_id == team_id, ApiKey.purpose == KeyPurpose.GOVERNOR.value, live
            )
        ).all()
    )
    if not governed_masters:
        return []
    with_keys = set(
        session.exec(select(ApiKey.account_id).where(ApiKey.team_id == team_id, live)).all()
    )
    subs = session.exec(
        select(BinanceAccount).where(
            BinanceAccount.team_id == team_id,
            col(BinanceAccount.master_account_id).in_(governed_masters),
        )
    ).all()
    return sorted(s.sub_account_email or s.alias for s in subs if s.id not in with_keys)
