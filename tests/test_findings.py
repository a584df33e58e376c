"""bot.services.oversight.findings: least-privilege judgement of one key (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.binance import BinanceUnavailable, KeyPermissions, KeyRejected
from bot.model.findings import FindingKind, Severity, permission_name, worst
from bot.services.oversight.findings import assess
from storage.models import KeyPurpose
from tests.factories import READ_ONLY

NOW = datetime(2026, 11, 25, tzinfo=UTC)


def perms(**flags) -> KeyPermissions:
    """A full apiRestrictions answer, as Binance sends it (every flag present)."""
    return KeyPermissions.from_dict({**READ_ONLY, **flags})


def kinds(findings) -> list[FindingKind]:
    return [f.kind for f in findings]


def test_a_whitelisted_read_only_key_used_for_reading_is_fine():
    assert assess(purpose=KeyPurpose.READ_ONLY, now=NOW, permissions=perms()) == []


def test_withdrawals_on_a_trading_key_are_critical_and_beyond_purpose():
    found = assess(
        purpose=KeyPurpose.TRADING,
        now=NOW,
        permissions=perms(enableSpotAndMarginTrading=True, enableWithdrawals=True),
    )
    assert kinds(found) == [FindingKind.WITHDRAWALS_ENABLED, FindingKind.BEYOND_PURPOSE]
    assert worst(found) == Severity.CRITICAL


def test_findings_come_worst_first_in_the_documented_order():
    ms = int((NOW + timedelta(days=5)).timestamp() * 1000)
    found = assess(
        purpose=KeyPurpose.READ_ONLY,
        now=NOW,
        permissions=perms(
            ipRestrict=False,
            enableSpotAndMarginTrading=True,
            permitsUniversalTransfer=True,
            tradingAuthorityExpirationTime=ms,
        ),
        previous=perms(ipRestrict=True).to_dict(),
    )
    assert kinds(found) == [
        FindingKind.TRANSFER_RIGHTS,
        FindingKind.NO_IP_WHITELIST,
        FindingKind.TRADING_EXPIRING,
        FindingKind.BEYOND_PURPOSE,
        FindingKind.PERMISSIONS_CHANGED,
    ]
    assert found[0].severity == Severity.CRITICAL
    text = " ".join(f.text for f in found)
    assert "expires in 5 days" in text and "IP whitelist removed" in text
    assert "30 days" in text  # Binance's rule for keys without a whitelist


def test_expired_trading_permission_is_reported():
    ms = int((NOW - timedelta(days=1)).timestamp() * 1000)
    found = assess(
        purpose=KeyPurpose.TRADING,
        now=NOW,
        permissions=perms(
            ipRestrict=False, enableSpotAndMarginTrading=True, tradingAuthorityExpirationTime=ms
        ),
    )
    assert any("expired" in f.text for f in found)


def test_a_rejected_key_spells_out_the_ambiguity():
    (finding,) = assess(purpose=KeyPurpose.READ_ONLY, now=NOW, error=KeyRejected())
    assert finding.severity == Severity.CRITICAL
    assert (
        "deleted" in finding.text and "IP" in finding.text and "does not say which" in finding.text
    )


def test_unreachable_binance_is_unknown_never_fine():
    (finding,) = assess(purpose=KeyPurpose.READ_ONLY, now=NOW, error=BinanceUnavailable())
    assert finding.severity == Severity.UNKNOWN > Severity.OK
    assert "unknown" in finding.text


def test_absent_ip_restrict_is_unknown_not_fine():
    raw = {"enableReading": True}
    found = assess(purpose=KeyPurpose.READ_ONLY, now=NOW, permissions=KeyPermissions.from_dict(raw))
    assert [f.severity for f in found] == [Severity.UNKNOWN]


def test_permissions_granted_since_the_last_check_are_named():
    found = assess(
        purpose=KeyPurpose.TRADING,
        now=NOW,
        permissions=perms(enableSpotAndMarginTrading=True, enableFutures=True),
        previous=perms(enableSpotAndMarginTrading=True).to_dict(),
    )
    (changed,) = [f for f in found if f.kind == FindingKind.PERMISSIONS_CHANGED]
    assert "Futures enabled" in changed.text


def test_trading_expiry_counts_calendar_days_like_the_date_it_shows():
    now = datetime(2026, 12, 2, 1, 33, tzinfo=UTC)

    def expiry_text(expires: datetime) -> str:
        ms = int(expires.timestamp() * 1000)
        found = assess(
            purpose=KeyPurpose.TRADING,
            now=now,
            permissions=perms(enableSpotAndMarginTrading=True, tradingAuthorityExpirationTime=ms),
        )
        return next(f.text for f in found if f.kind == FindingKind.TRADING_EXPIRING)

    assert "expires in 10 days (2026-12-12)" in expiry_text(datetime(2026, 12, 12, tzinfo=UTC))
    assert "expires tomorrow (2026-12-03)" in expiry_text(datetime(2026, 12, 3, 23, tzinfo=UTC))
    assert "expires today (2026-12-02)" in expiry_text(datetime(2026, 12, 2, 22, tzinfo=UTC))


def test_an_hmac_key_is_told_binance_recommends_ed25519_and_nothing_more():
    from storage.models import KeyType

    hmac = assess(purpose=KeyPurpose.READ_ONLY, now=NOW, permissions=perms(), key_type=KeyType.HMAC)
    assert kinds(hmac) == [FindingKind.HMAC_KEY]
    assert hmac[0].severity == Severity.INFO and "Ed25519" in hmac[0].text
    assert worst(hmac) == Severity.INFO  # a hint, not a problem: "all fine" still holds
    for key_type in (KeyType.ED25519, KeyType.RSA):
        assert (
            assess(purpose=KeyPurpose.READ_ONLY, now=NOW, permissions=perms(), key_type=key_type)
            == []
        )
    unchecked = assess(purpose=KeyPurpose.READ_ONLY, now=NOW, key_type=KeyType.HMAC)
    assert FindingKind.HMAC_KEY not in kinds(unchecked)  # said once the key is checked


@pytest.mark.parametrize(
    ("flag", "shown"),
    [
        ("enableFutures", "Futures"),
        ("enableFixApiTrade", "FIX trading"),
        ("enableCopyTrading", "Copy trading"),
        ("permitsAPIStaking", "API staking"),
        ("enableOTCTrading2", "OTC trading 2"),
    ],
)
def test_permission_names_humanise_flags_binance_adds_later(flag, shown):
    assert permission_name(flag) == shown
