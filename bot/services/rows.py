"""Rows read again by id inside a transaction. A row that has gone since (another replica or
command removed it) raises the same polite error the surrounding code gives for a missing key
or incident, never an AttributeError on ``None``."""

from __future__ import annotations

from sqlmodel import Session

from bot.services.errors import KeyNotFound
from storage.models import ApiKey, BinanceAccount, Incident

KEY_GONE = "That key is no longer registered."
INCIDENT_GONE = "That incident does not exist."


def key_row(session: Session, key_id: str, *, for_update: bool = False) -> ApiKey:
    key = session.get(ApiKey, key_id, with_for_update=for_update)
    if key is None:
        raise KeyNotFound(KEY_GONE)
    return key


def incident_row(session: Session, incident_id: str, *, for_update: bool = False) -> Incident:
    incident = session.get(Incident, incident_id, with_for_update=for_update)
    if incident is None:
        raise KeyNotFound(INCIDENT_GONE)
    return incident


def account_row(session: Session, key: ApiKey) -> BinanceAccount:
    """The Binance account a key belongs to (a foreign key: it goes only with the key)."""
    account = session.get(BinanceAccount, key.account_id)
    if account is None:
        raise KeyNotFound(KEY_GONE)
    return account
