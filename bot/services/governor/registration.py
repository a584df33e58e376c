"""Registering a master account's governor key, and what the team sees of its governors.

The governor key is made like every key the bot generates (bot.services.custody.key_pairs):
the bot generates an Ed25519 pair, an admin creates the self-generated key in the master
account with Read and Spot & margin trading only (Binance marks sub-account key management
TRADE), restricted to the bot's own addresses (BOT_EGRESS_IPS), and enters the API key.
Registration refuses a key that could withdraw or transfer, or that is not IP-restricted
(bot.services.oversight.findings.governor_refusals), and a second governor per account.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot.commands import label_problem
from bot.config import Settings
from bot.model.governor import GovernedAccount, GovernorSummary
from bot.model.key_pairs import KeyAlgorithm, PendingPair
from bot.services.access import Actor, deny
from bot.services.custody.key_pairs import PairRequest, start_generated_registration
from bot.services.custody.keys import live_governor, refuse_second_governor
from bot.services.errors import InvalidInput
from storage.crypto import KeyRing
from storage.models import ApiKey, BinanceAccount, KeyPurpose, utcnow

NO_EGRESS_IPS = (
    "Set BOT_EGRESS_IPS to the public IP addresses this bot's requests leave from first: a "
    "governor key is restricted to them, and so is every key it creates. Nothing was changed."
)


def default_governor_label(account_alias: str) -> str:
    return f"governor-{account_alias}"[:80]


def start_governor_registration(
    *,
    engine: Engine,
    ring: KeyRing,
    settings: Settings,
    actor: Actor,
    account_alias: str,
    label: str | None = None,
    channel: str | None = None,
    now: datetime | None = None,
) -> PendingPair:
    """An admin asks for a governor for ``account_alias``: the bot generates its Ed25519 pair
    and returns the public key with the steps (nothing is registered until the API key is
    entered and Binance confirms what it may do)."""
    now = now or utcnow()
    account_alias = account_alias.strip()
    label = (label or default_governor_label(account_alias)).strip()
    if not actor.is_admin:
        raise deny(
            engine,
            actor,
            action="register a governor",
            target=account_alias,
            message="Only admins can register a governor: it creates and deletes the keys of "
            "every sub-account of the master account. Nothing was changed.",
        )
    if not settings.bot_egress_ips:
        raise InvalidInput(NO_EGRESS_IPS)
    if (why := label_problem(label)) is not None:
        raise InvalidInput(why)
    with Session(engine) as session:
        account = session.exec(
            select(BinanceAccount).where(
                BinanceAccount.team_id == actor.team_id, BinanceAccount.alias == account_alias
            )
        ).first()
        if account is not None:
            refuse_second_governor(session, account)
    request = PairRequest(
        team_id=actor.team_id,
        actor=actor.user_id,
        label=label,
        account_alias=account_alias,
        owner_user_id=actor.user_id,
        purpose=KeyPurpose.GOVERNOR,
        algorithm=KeyAlgorithm.ED25519,
        channel=channel,
        source=f"slack:{channel}" if channel else None,
        actor_is_admin=True,
    )
    pending = start_generated_registration(
        engine=engine,
        ring=ring,
        request=request,
        now=now,
        governor=True,
    )
    return replace(pending, trusted_ips=settings.bot_egress_ips)


def governors(engine: Engine, team_id: str) -> list[GovernorSummary]:
    """Every master account with a governor, with the sub-accounts the bot knows there."""
    with Session(engine) as session:
        keys = session.exec(
            select(ApiKey, BinanceAccount)
            .join(BinanceAccount, col(BinanceAccount.id) == col(ApiKey.account_id))
            .where(ApiKey.team_id == team_id, ApiKey.purpose == KeyPurpose.GOVERNOR.value)
            .order_by(col(BinanceAccount.alias))
        ).all()
        summaries = []
        for key, account in keys:
            if live_governor(session, account.id) is not key:
                continue
            subs = session.exec(
                select(BinanceAccount)
                .where(BinanceAccount.master_account_id == account.id)
                .order_by(col(BinanceAccount.alias))
            ).all()
            summaries.append(
                GovernorSummary(
                    label=key.label,
                    masked=key.api_key_masked,
                    account_alias=account.alias,
                    registered_at=key.created_at,
                    sub_accounts=tuple(
                        GovernedAccount(alias=s.alias, email=s.sub_account_email or "")
                        for s in subs
                    ),
                )
            )
    return summaries


def governed_sub_accounts(engine: Engine, team_id: str) -> list[str]:
    """The names (aliases) of the sub-accounts the bot can create keys in."""
    with Session(engine) as session:
        rows = session.exec(
            select(BinanceAccount)
            .where(
                BinanceAccount.team_id == team_id,
                col(BinanceAccount.master_account_id).is_not(None),
            )
            .order_by(col(BinanceAccount.alias))
        ).all()
        return [
            row.alias
            for row in rows
            if row.master_account_id is not None
            and live_governor(session, row.master_account_id) is not None
        ]
