"""Pure parsing: permissions, tiers, diffs, account rows, private keys. No network."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from Crypto.PublicKey import ECC, RSA

from bot.binance import (
    BadKeyFormat,
    Credentials,
    FlagChange,
    KeyPermissions,
    KeyType,
    Tier,
    TransferKind,
    TransferRow,
    diff_permissions,
)
from bot.binance.account import AccountStatus, TradingStatus, history_windows
from bot.binance.permissions import KNOWN_FIELDS, TRADE_FLAGS
from bot.binance.transport import load_private_key, normalise_pem
from tests.factories import READ_ONLY


def test_every_known_field_is_an_attribute():
    from dataclasses import fields

    assert {f.name for f in fields(KeyPermissions)} == {*KNOWN_FIELDS.values(), "extra"}


def test_read_only_key():
    perms = KeyPermissions.from_api(READ_ONLY)
    assert perms.tier is Tier.READ
    assert perms.transfer_rights == ()
    assert perms.ip_restrict is True
    assert perms.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert perms.trading_expires_at is None
    assert perms.unknown == ("tradingAuthorityExpirationTime",)
    assert perms.granted == ("enableReading",)


@pytest.mark.parametrize("flag", TRADE_FLAGS)
def test_each_trading_permission_makes_the_trade_tier(flag):
    assert KeyPermissions.from_api({**READ_ONLY, flag: True}).tier is Tier.TRADE


def test_withdrawals_make_the_withdraw_tier_whatever_else():
    perms = KeyPermissions.from_api({**READ_ONLY, "enableWithdrawals": True, "enableFutures": True})
    assert perms.tier is Tier.WITHDRAW
    assert Tier.NONE < Tier.READ < Tier.TRADE < Tier.WITHDRAW


def test_transfer_rights_are_named():
    perms = KeyPermissions.from_api(
        {**READ_ONLY, "enableInternalTransfer": True, "permitsUniversalTransfer": True}
    )
    assert perms.transfer_rights == ("enableInternalTransfer", "permitsUniversalTransfer")
    assert perms.tier is Tier.READ  # transfers are flagged, not a tier
    only_universal = KeyPermissions.from_api({"permitsUniversalTransfer": True})
    assert only_universal.transfer_rights == ("permitsUniversalTransfer",)


def test_reading_explicitly_off_and_nothing_else_is_tier_none():
    assert KeyPermissions.from_api({**READ_ONLY, "enableReading": False}).tier is Tier.NONE


def test_absent_fields_are_unknown_not_false():
    perms = KeyPermissions.from_api({"enableReading": True})
    assert perms.ip_restrict is None
    assert perms.enable_withdrawals is None
    assert perms.enable_futures is None
    assert perms.created_at is None
    assert "ipRestrict" in perms.unknown and "enableWithdrawals" in perms.unknown
    assert perms.tier is Tier.READ
    assert "ipRestrict" not in perms.to_dict()  # unknown stays unknown when stored


def test_unknown_fields_are_kept_and_odd_values_tolerated():
    payload = {
        **READ_ONLY,
        "enableFutures": "true",  # a string: still read
        "enableMargin": 1,
        "enableVanillaOptions": "maybe",  # unreadable: unknown, kept verbatim
        "enableNewThing": True,  # a field this code has never heard of
        "createTime": "1700000000000",
        "someObject": {"a": [1, 2]},
        "ipRestrict": None,
    }
    perms = KeyPermissions.from_api(payload)
    assert perms.enable_futures is True and perms.enable_margin is True
    assert perms.enable_vanilla_options is None
    assert perms.ip_restrict is None
    assert perms.extra == {
        "enableVanillaOptions": "maybe",
        "enableNewThing": True,
        "someObject": {"a": [1, 2]},
    }
    assert perms.flag("enableNewThing") is True
    assert perms.created_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert perms.tier is Tier.TRADE


def test_trading_expiry_on_keys_without_whitelist():
    perms = KeyPermissions.from_api(
        {**READ_ONLY, "ipRestrict": False, "tradingAuthorityExpirationTime": 1_628_985_600_000}
    )
    assert perms.trading_expires_at == datetime(2021, 8, 15, tzinfo=UTC)
    assert perms.trading_expires_at.tzinfo is UTC
    assert KeyPermissions.from_api({"tradingAuthorityExpirationTime": 0}).trading_expires_at is None


def test_to_dict_from_dict_round_trip_through_json():
    payload = {**READ_ONLY, "enableFutures": True, "enableNewThing": False, "weird": [1]}
    perms = KeyPermissions.from_api(payload)
    stored = json.loads(json.dumps(perms.to_dict()))
    assert stored == payload
    again = KeyPermissions.from_dict(stored)
    assert again == perms
    assert again.tier is Tier.TRADE
    empty = KeyPermissions.from_dict({})
    assert KeyPermissions.from_dict(empty.to_dict()) == empty


def test_diff_reports_changed_flags_only():
    before = KeyPermissions.from_api(READ_ONLY)
    after = KeyPermissions.from_api(
        {**READ_ONLY, "enableFutures": True, "ipRestrict": False, "enableNewThing": True}
    )
    changes = after.changes_since(before)
    assert changes == (
        FlagChange("ipRestrict", True, False),
        FlagChange("enableFutures", False, True),
        FlagChange("enableNewThing", None, True),
    )
    assert [c.name for c in changes if c.granted] == ["enableFutures", "enableNewThing"]
    assert [c.name for c in changes if c.revoked] == ["ipRestrict"]
    # stored dicts work too, in either position
    assert diff_permissions(before.to_dict(), after) == changes
    assert after.changes_since(after.to_dict()) == ()


def test_diff_notices_a_flag_becoming_unknown():
    before = KeyPermissions.from_api(READ_ONLY)
    after = KeyPermissions.from_api({k: v for k, v in READ_ONLY.items() if k != "enableMargin"})
    assert after.changes_since(before) == (FlagChange("enableMargin", False, None),)


def test_credentials_never_show_the_secret():
    creds = Credentials("A" * 64, "super-secret-value", KeyType.HMAC)
    assert "super-secret-value" not in repr(creds)
    assert "super-secret-value" not in str(creds)
    assert creds.masked == "AAAA…AAAA"
    assert Credentials("k" * 20, "s", "ed25519").key_type is KeyType.ED25519


# --- account reads -------------------------------------------------------------------------


def test_withdrawal_row():
    row = TransferRow.from_api(
        TransferKind.WITHDRAWAL,
        {
            "id": "b6ae22b3aa844210a7041aee7589627c",
            "amount": "8.91000000",
            "transactionFee": "0.004",
            "coin": "USDT",
            "status": 6,
            "address": "0x94df8b352de7f46f64b01d3666bf6e936e44ce60",
            "txId": "0xb5ef",
            "applyTime": "2019-10-12 11:12:02",
            "network": "ETH",
            "transferType": 0,
        },
    )
    assert row.amount == Decimal("8.91")
    assert row.time == datetime(2019, 10, 12, 11, 12, 2, tzinfo=UTC)
    assert (row.coin, row.network, row.status, row.tx_id) == ("USDT", "ETH", 6, "0xb5ef")
    assert row.status_text == "completed"
    assert row.extra == {"transactionFee": "0.004", "transferType": 0}


def test_deposit_row_with_odd_values():
    row = TransferRow.from_api(
        TransferKind.DEPOSIT,
        {"amount": "not a number", "coin": "BTC", "insertTime": 1_566_791_463_000, "status": "1"},
    )
    assert row.amount is None
    assert row.time == datetime(2019, 8, 26, 3, 51, 3, tzinfo=UTC)
    assert row.status == 1 and row.status_text == "success"
    assert row.address is None and row.tx_id is None


def test_trading_and_account_status():
    status = TradingStatus.from_api(
        {
            "data": {
                "isLocked": False,
                "plannedRecoverTime": 0,
                "triggerCondition": {"GCR": 150, "IFER": 150, "UFR": 300},
                "updateTime": 1_547_630_471_725,
            }
        }
    )
    assert status.is_locked is False and status.planned_recover_at is None
    assert status.trigger_condition == {"GCR": 150, "IFER": 150, "UFR": 300}
    assert status.updated_at.year == 2019
    assert AccountStatus.from_api({"data": "Normal"}).is_normal
    assert not AccountStatus.from_api({}).is_normal


def test_history_windows_respect_binance_90_day_interval():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    end = datetime(2024, 12, 31, tzinfo=UTC)
    windows = list(history_windows(start, end))
    assert len(windows) == 5
    assert windows[0][0] == int(start.timestamp() * 1000)
    assert windows[-1][1] == int(end.timestamp() * 1000)
    for (_, a_end), (b_start, _) in itertools.pairwise(windows):
        assert b_start == a_end + 1
    assert all(e - s < 90 * 86_400_000 for s, e in windows)
    with pytest.raises(ValueError):
        list(history_windows(datetime(2024, 1, 1), end))  # naive
    with pytest.raises(ValueError):
        list(history_windows(end, start))


# --- private keys --------------------------------------------------------------------------


def test_pem_whitespace_and_crlf_are_normalised():
    pem = ECC.generate(curve="ed25519").export_key(format="PEM")
    flattened = pem.replace("\n", " ")
    crlf = "  " + pem.replace("\n", "\r\n") + "\r\n"
    bare = "".join(pem.splitlines()[1:-1])
    for text in (flattened, crlf, bare):
        assert normalise_pem(text) == ("PRIVATE KEY", pem.strip() + "\n")
        assert load_private_key(KeyType.ED25519, text).curve == "Ed25519"


def test_declared_type_wins_over_length():
    ed = ECC.generate(curve="ed25519").export_key(format="PEM")
    rsa = RSA.generate(2048).export_key(pkcs=8).decode()
    assert load_private_key(KeyType.RSA, rsa).has_private()
    with pytest.raises(BadKeyFormat) as caught:
        load_private_key(KeyType.RSA, ed)
    assert caught.value.part == "secret"
    with pytest.raises(BadKeyFormat):
        load_private_key(KeyType.ED25519, rsa)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a key at all!",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
        ECC.generate(curve="P-256").export_key(format="PEM"),  # not Ed25519
    ],
)
def test_unreadable_private_key_is_bad_key_format(text):
    with pytest.raises(BadKeyFormat) as caught:
        load_private_key(KeyType.ED25519, text)
    assert "private key" in caught.value.user_message


def test_public_key_pasted_by_mistake_is_explained():
    public = ECC.generate(curve="ed25519").public_key().export_key(format="PEM")
    with pytest.raises(BadKeyFormat) as caught:
        load_private_key(KeyType.ED25519, public)
    assert "public key" in caught.value.user_message


def test_flags_binance_adds_later_are_named_and_only_booleans_count():
    perms = KeyPermissions.from_api(
        {
            **READ_ONLY,
            "enableCopyTrading": True,
            "permitsStaking": "false",  # a string: still a flag, off
            "enableVanillaOptions": "maybe",  # known but unreadable: not a new flag
            "enableOdd": {"x": 1},  # not a boolean: not a permission
            "someFlag": True,  # not named as Binance names permissions
        }
    )
    assert perms.new_flags == ("enableCopyTrading", "permitsStaking")
    assert perms.new_flags_on == ("enableCopyTrading",)
    assert perms.tier is Tier.READ  # nobody knows what it allows: shown apart, not guessed


def test_widened_from_compares_every_permission_and_new_flags():
    old = KeyPermissions.from_api({**READ_ONLY, "enableFutures": True})
    new = KeyPermissions.from_api(
        {
            **READ_ONLY,
            "enableFutures": True,
            "enableFixReadOnly": True,
            "permitsUniversalTransfer": True,
            "enableCopyTrading": True,
        }
    )
    assert new.widened_from(old) == (
        "enableFixReadOnly",
        "permitsUniversalTransfer",
        "enableCopyTrading",
    )
    assert new.widened_from(old.to_dict()) == new.widened_from(old)  # a stored observation
    assert old.widened_from(new) == ()
