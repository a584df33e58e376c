"""Removing a key the governor can reach: it is deleted in Binance first, so removing it from
the bot never leaves a live key nobody holds.

Only for a key of a governed sub-account (its master has a governor). Who may remove it is
checked before Binance is asked (its owner or an admin; anyone else is refused and audited).
Binance deleting it, or no longer knowing it (-2008 / -2015: deleted already), lets the removal
go on; anything else refuses it with Binance's reason, and nothing changes.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import binance
from bot.binance import GovernorGateway
from bot.services.access import Actor
from bot.services.custody.keys import key_to_manage, live_governor, open_credentials
from bot.services.errors import InvalidInput
from bot.services.governor.calls import CallContext, on_behalf_of
from storage.crypto import KeyRing
from storage.models import RETIRED_STATUSES, ApiKey, BinanceAccount


def governor_of_key(session: Session, key: ApiKey) -> tuple[ApiKey, str] | None:
    """The governor that can delete ``key`` and its sub-account's email (None: none can)."""
    account = session.get(BinanceAccount, key.account_id)
    if account is None or account.master_account_id is None:
        return None
    governor = live_governor(session, account.master_account_id)
    if governor is None:
        return None
    return governor, account.sub_account_email or account.alias


def deletable_by_governor(engine: Engine, key_id: str) -> bool:
    """Whether removing the key deletes it in Binance too (its sub-account has a governor);
    not the same question as rotation's ``is_governed_key``: a withdrawing key can be
    deleted by the governor, but not remade by it."""
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        return key is not None and governor_of_key(session, key) is not None


def delete_before_removal(
    *, engine: Engine, ring: KeyRing, governor: GovernorGateway, actor: Actor, key_id: str
) -> bool:
    """Delete the key in Binance if the governor can (True); False: it cannot, the removal
    goes on as for any key (a person deletes it in Binance)."""
    summary = key_to_manage(engine, actor, action="remove", key_id=key_id)
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        if key is None or key.status in RETIRED_STATUSES or key.api_key_sealed is None:
            return False
        found = governor_of_key(session, key)
        if found is None:
            return False
        governor_row, email = found
        key_creds = open_credentials(ring, key)
        governor_creds = open_credentials(ring, governor_row)
    context = CallContext(
        team_id=actor.team_id,
        actor=actor.user_id,
        why="remove",
        key_id=key_id,
        label=summary.label,
    )
    try:
        with on_behalf_of(context):
            governor.delete_sub_account_key(governor_creds, email=email, api_key=key_creds.api_key)
    except binance.KeyRejected:
        return True  # Binance no longer knows it: deleted already
    except binance.BinanceError as error:
        raise InvalidInput(
            f"Binance did not delete “{summary.label}”: {error.user_message} Nothing was "
            "removed; try again in a minute."
        ) from None
    return True
