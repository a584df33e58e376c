"""Registering a master account's governor, end to end through signed Slack requests and the
Binance simulator: only admins, only with BOT_EGRESS_IPS, only a key that cannot move funds,
is IP-restricted and has what Binance's sub-account key management needs (TRADE); one per
master account; its findings in status."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bot.ids import Block
from storage.models import ApiKey, AuditEvent, KeyPurpose, PendingKeyPair
from tests.e2e import ALICE, all_text, wait_until
from tests.test_key_pairs import _button_value, _enter_key, _key

ADMIN = "U0ADMIN"
GOVERNOR_FLAGS = {"enableSpotAndMarginTrading": True}


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(admin_user_ids=ADMIN, bot_egress_ips="127.0.0.1")


def _ask(client, stack, text: str, user: str = ADMIN):
    return client.command(text, user_id=user, response_url=stack.slack.response_url())


def _steps(stack, label: str):
    (call,) = stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: f"Create the API key for “{label}”" in all_text(c.params),
        timeout=15,
    )
    return call


def _pending(stack, label: str) -> PendingKeyPair:
    with Session(stack.services.engine) as session:
        return session.exec(select(PendingKeyPair).where(PendingKeyPair.label == label)).one()


def _make_in_binance(stack, label: str, **kw):
    pending = _pending(stack, label)
    return stack.simulator.add_self_generated_key(
        pending.public_key_pem,
        account="master",
        permissions=kw.pop("permissions", GOVERNOR_FLAGS),
        ip_restrict=kw.pop("ip_restrict", True),
    )


def test_an_admin_registers_a_governor_from_a_generated_pair(stack, client):
    answer = _ask(client, stack, "governor main")
    assert answer.status_code == 200
    assert "governor of *main*" in all_text(answer.json())
    message = _steps(stack, "governor-main")
    text = all_text(message.params)
    assert "Enable Spot & Margin Trading" in text and "`127.0.0.1`" in text
    assert _key(stack, "governor-main") is None  # nothing stored before Binance confirms
    sim_key = _make_in_binance(stack, "governor-main")
    done = _enter_key(stack, client, _button_value(message), sim_key.api_key, user=ADMIN)
    assert done.status_code == 200
    wait_until(lambda: _key(stack, "governor-main") is not None, timeout=15)
    key = _key(stack, "governor-main")
    assert key.purpose == KeyPurpose.GOVERNOR.value and key.key_type == "ED25519"
    listing = _ask(client, stack, "governor")
    assert "Asking Binance" in all_text(listing.json())
    stack.slack.wait_for(
        "response_url",
        predicate=lambda c: "governor “governor-main”" in all_text(c.params),
        timeout=15,
    )


def test_a_member_cannot_register_a_governor_and_is_audited(stack, client):
    answer = _ask(client, stack, "governor main", user=ALICE)
    assert "Only admins can register a governor" in all_text(answer.json())
    with Session(stack.services.engine) as session:
        assert session.exec(select(PendingKeyPair)).all() == []
        denied = session.exec(select(AuditEvent).where(AuditEvent.action == "access.denied")).all()
    assert [e.detail["attempted"] for e in denied] == ["register a governor"]


def test_without_bot_egress_ips_no_governor_is_started(make_stack):
    stack = make_stack(admin_user_ids=ADMIN)
    from tests.e2e import bot_client

    client = bot_client(stack)
    answer = _ask(client, stack, "governor main")
    assert "BOT_EGRESS_IPS" in all_text(answer.json())
    with Session(stack.services.engine) as session:
        assert session.exec(select(PendingKeyPair)).all() == []


@pytest.mark.parametrize(
    ("flags", "ip_restrict", "why"),
    [
        (
            {"enableSpotAndMarginTrading": True, "enableWithdrawals": True},
            True,
            "withdrawals are enabled",
        ),
        (
            {"enableSpotAndMarginTrading": True, "permitsUniversalTransfer": True},
            True,
            "transfer rights",
        ),
        (GOVERNOR_FLAGS, False, "not restricted to trusted IP addresses"),
        ({}, True, "Spot & margin trading is off"),
    ],
    ids=["withdrawals", "transfer", "no-ip-restriction", "no-trade"],
)
def test_a_key_unfit_to_govern_is_refused_and_nothing_stored(
    stack, client, flags, ip_restrict, why
):
    _ask(client, stack, "governor main")
    message = _steps(stack, "governor-main")
    sim_key = _make_in_binance(stack, "governor-main", permissions=flags, ip_restrict=ip_restrict)
    done = _enter_key(stack, client, _button_value(message), sim_key.api_key, user=ADMIN)
    body = done.json()
    assert body["response_action"] == "errors"
    assert why in body["errors"][Block.PAIR_API_KEY]
    assert _key(stack, "governor-main") is None


def test_one_governor_per_master_account(stack, client):
    _ask(client, stack, "governor main")
    message = _steps(stack, "governor-main")
    sim_key = _make_in_binance(stack, "governor-main")
    _enter_key(stack, client, _button_value(message), sim_key.api_key, user=ADMIN)
    wait_until(lambda: _key(stack, "governor-main") is not None, timeout=15)
    again = _ask(client, stack, "governor main second-governor")
    assert "already has a governor (“governor-main”)" in all_text(again.json())


def test_the_register_form_cannot_make_a_governor(stack, client):
    """The form offers no governor purpose; a forged submission naming it is refused."""
    from tests.e2e import submit_registration

    answer = submit_registration(
        client,
        label="sneaky",
        api_key="",
        secret="",
        key_type="generate_ed25519",
        purpose="governor",
        user_id=ADMIN,
    )
    assert "governor" in all_text(answer.json())
    with Session(stack.services.engine) as session:
        assert session.exec(select(PendingKeyPair)).all() == []
        assert session.exec(select(ApiKey)).all() == []


def test_a_governor_without_ip_restriction_later_is_critical_in_status():
    from datetime import UTC, datetime

    from bot.binance import KeyPermissions
    from bot.model.findings import FindingKind, Severity
    from bot.services.oversight.findings import assess

    perms = KeyPermissions.from_api(
        {"enableReading": True, "enableSpotAndMarginTrading": True, "ipRestrict": False}
    )
    findings = assess(purpose=KeyPurpose.GOVERNOR, now=datetime.now(UTC), permissions=perms)
    (ip,) = [f for f in findings if f.kind == FindingKind.NO_IP_WHITELIST]
    assert ip.severity == Severity.CRITICAL
    perms = KeyPermissions.from_api(
        {
            "enableReading": True,
            "enableSpotAndMarginTrading": True,
            "enableWithdrawals": True,
            "ipRestrict": True,
        }
    )
    findings = assess(purpose=KeyPurpose.GOVERNOR, now=datetime.now(UTC), permissions=perms)
    assert findings[0].kind == FindingKind.WITHDRAWALS_ENABLED
    assert findings[0].severity == Severity.CRITICAL
    perms = KeyPermissions.from_api(
        {
            "enableReading": True,
            "enableSpotAndMarginTrading": True,
            "enableFutures": True,
            "ipRestrict": True,
        }
    )
    findings = assess(purpose=KeyPurpose.GOVERNOR, now=datetime.now(UTC), permissions=perms)
    assert [f.kind for f in findings] == [FindingKind.BEYOND_PURPOSE]
