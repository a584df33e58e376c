"""Rows for storage-level tests, made the way the services make them (sealed, fingerprinted)."""

from __future__ import annotations

import secrets
import string

from sqlmodel import Session, select

from storage.crypto import KeyRing, mask_api_key
from storage.models import ApiKey, BinanceAccount, KeyPurpose, KeyType
from storage.vault import seal_api_key_row

ALPHANUM = string.ascii_letters + string.digits


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
