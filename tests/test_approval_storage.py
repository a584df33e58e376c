"""A held change's sealed material: bound to its own row, carried by re-encryption, and
refused when copied into another row (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlmodel import Session

from bot.config import load_settings
from bot.services.approvals.holding import hold_change
from bot.vocabulary import ApprovalKind
from storage.crypto import CryptoError, KeyRing, generate_master_key
from storage.db import session_scope
from storage.master_keys import key_ids_in_use, reencrypt_all
from storage.models import ApprovalRequest, utcnow

SECRET = "s3cr3t" * 10 + "abcd"  # 64 characters, shaped like an HMAC secret


def _hold(engine, ring: KeyRing, label: str) -> str:
    settings = load_settings(_env_file=None, approval_required_for="all")
    with session_scope(engine) as session:
        view = hold_change(
            session,
            ring,
            settings,
            team_id="T0TEST",
            change="register",
            kinds=[ApprovalKind.MOVES_FUNDS],
            at_stake=["It can move funds: Withdrawals"],
            label=label,
            requested_by="U0ALICE",
            now=utcnow(),
            form={"key_type": "HMAC"},
            permissions=None,
            api_key="A" * 64,
            secret=SECRET,
        )
    return view.request_id


def test_a_held_secret_is_sealed_and_reencrypted_under_a_new_master_key(engine):
    old, new = generate_master_key("k1"), generate_master_key("k2")
    key_ring = KeyRing([old])
    request_id = _hold(engine, key_ring, "payout")
    with Session(engine) as session:
        row = session.get(ApprovalRequest, request_id)
        assert SECRET.encode() not in row.secret_sealed and row.seal_key_id == "k1"
    assert key_ids_in_use_of(engine) == {"k1": 1}

    rotated = KeyRing([old, new], active_id="k2")
    reencrypt_all(engine, rotated)
    with Session(engine) as session:
        row = session.get(ApprovalRequest, request_id)
        assert row.seal_key_id == "k2"
        only_new = KeyRing([new])
        assert only_new.open_text(row.secret_sealed, context=row.secret_context()) == SECRET


def test_a_held_secret_copied_into_another_request_does_not_open(engine, key_ring):
    first, second = _hold(engine, key_ring, "one"), _hold(engine, key_ring, "two")
    with session_scope(engine) as session:
        source = session.get(ApprovalRequest, first)
        target = session.get(ApprovalRequest, second)
        target.secret_sealed = source.secret_sealed
    with Session(engine) as session:
        target = session.get(ApprovalRequest, second)
        with pytest.raises(CryptoError):
            key_ring.open_text(target.secret_sealed, context=target.secret_context())


def key_ids_in_use_of(engine) -> dict[str, int]:
    with Session(engine) as session:
        return {k: n for k, n in key_ids_in_use(session).items() if n}
