"""Least privilege on every flag, end to end through signed Slack requests and simulator keys.

- Rotation: a new key that may do anything the old one could not (each permission Binance
  documents, one it adds later, or no IP whitelist where the old key had one) needs its owner's
  tick; one that may do no more is accepted as it is.
- Registration beyond the declared purpose asks the owner to confirm, as rotation does: pasted
  keys in the register form, generated pairs on the small form.
- Permissions Binance adds later are shown by name and treated as possibly risky: status,
  findings, the drift digest.
- A key that can move funds (Withdraw tier, transfer rights) registered or removed is announced
  once to its owner and in the alert channel.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.binance import KeyPermissions
from bot.ids import Action, Block, Callback
from bot.job_queue.kinds import JobKind
from bot.job_queue.scheduler import FixedClock
from bot.model.findings import FindingKind, Severity, permission_name
from bot.sandbox.requests import rotate_form_values
from bot.services.oversight.drift_plan import ensure_drift_checks
from bot.services.oversight.findings import assess
from storage.models import (
    ApiKey,
    AuditEvent,
    KeyPurpose,
    KeyStatus,
    PendingKeyPair,
    PendingPairState,
    ScheduledJob,
    utcnow,
)
from tests.e2e import (
    ALICE,
    all_text,
    register_directly,
    register_sim_key,
    submit_registration,
    wait_until,
)
from tests.factories import READ_ONLY, WITHDRAW, make_due
from tests.slack_requests import block_action, view_submission

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"
NEW_FLAG = "enableCopyTrading"  # a permission Binance might add: this code does not know it

# Every permission apiRestrictions documents (ipRestrict and enableReading aside), with what
# the refusal calls it (https://developers.binance.com/docs/wallet/account/api-key-permission).
DOCUMENTED = [
    "enableSpotAndMarginTrading",
    "enableMargin",
    "enableFutures",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
    "enableFixReadOnly",  # a new way in to read the account: a widening too
    "enableInternalTransfer",
    "permitsUniversalTransfer",
    "enableWithdrawals",
]
EVERY_FLAG = [*DOCUMENTED, NEW_FLAG]


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS, admin_user_ids=ADMIN)


def _sim_key(stack, flags: dict[str, bool], *, ip_restrict: bool = True):
    """A simulator key with these permissions (the new flag as a field Binance added)."""
    extra = {NEW_FLAG: flags[NEW_FLAG]} if NEW_FLAG in flags else None
    documented = {k: v for k, v in flags.items() if k != NEW_FLAG}
    return stack.simulator.add_key(
        permissions=documented, ip_restrict=ip_restrict, extra_fields=extra
    )


def _register_old(stack, flags: dict[str, bool], *, ip_restrict: bool = True):
    """The key being rotated, declared for withdrawals: its purpose allows everything, so only
    the comparison with the old key decides."""
    extra = {NEW_FLAG: flags[NEW_FLAG]} if NEW_FLAG in flags else None
    documented = {k: v for k, v in flags.items() if k != NEW_FLAG}
    registered, _ = register_directly(
        stack,
        "bot",
        permissions=documented,
        purpose=KeyPurpose.WITHDRAWALS,
        ip_restrict=ip_restrict,
        extra_fields=extra,
    )
    return registered


def _rotate(client, key_id, sim_key, *, user_id=ALICE, confirm=False):
    values = rotate_form_values(
        key_type=sim_key.key_type, api_key=sim_key.api_key, secret=sim_key.secret, confirm=confirm
    )
    return client.post(
        view_submission(
            Callback.ROTATE.value,
            values,
            user_id=user_id,
            private_metadata=json.dumps({"key_id": key_id, "channel": "C0GENERAL"}),
        )
    )


def _key(stack, label="bot") -> ApiKey | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).first()


def _events(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == action)).all())


# --- rotation: every flag compared ----------------------------------------------------------


@pytest.mark.parametrize("flag", EVERY_FLAG)
def test_a_new_key_that_adds_a_permission_needs_the_owners_tick(stack, client, flag):
    registered = _register_old(stack, {})  # read-only, with an IP whitelist
    wider = _sim_key(stack, {flag: True})
    refused = _rotate(client, registered.key_id, wider)
    error = refused.json()["errors"][Block.ROTATE_CONFIRM]
    assert permission_name(flag) in error and "could not" in error
    if flag == NEW_FLAG:
        assert "Copy trading (a permission the bot does not know yet)" in error
    assert _key(stack).status == KeyStatus.ACTIVE.value  # nothing changed
    assert _events(stack, "key.rotate_start") == []
    # the owner accepts it: the rotation starts, and the audit says what was accepted
    accepted = _rotate(client, registered.key_id, wider, confirm=True)
    assert accepted.json().get("response_action") == "update", accepted.text
    assert _key(stack).status == KeyStatus.ROTATING.value
    (event,) = _events(stack, "key.rotate_start")
    assert event.detail["confirmed_more_permissions"] is True
    assert any(permission_name(flag) in reason for reason in event.detail["accepted"])


@pytest.mark.parametrize("flag", EVERY_FLAG)
def test_a_new_key_with_the_same_permission_is_accepted_without_a_tick(stack, client, flag):
    registered = _register_old(stack, {flag: True})
    same = _sim_key(stack, {flag: True})
    accepted = _rotate(client, registered.key_id, same)
    assert accepted.json().get("response_action") == "update", accepted.text
    assert _key(stack).status == KeyStatus.ROTATING.value
    (event,) = _events(stack, "key.rotate_start")
    assert event.detail["confirmed_more_permissions"] is False


@pytest.mark.parametrize("flag", EVERY_FLAG)
def test_a_new_key_that_drops_a_permission_is_accepted(stack, client, flag):
    registered = _register_old(stack, {flag: True})
    narrower = _sim_key(stack, {})
    accepted = _rotate(client, registered.key_id, narrower)
    assert accepted.json().get("response_action") == "update", accepted.text


def test_dropping_the_ip_whitelist_needs_the_owners_tick(stack, client):
    registered = _register_old(stack, {"enableSpotAndMarginTrading": True})
    open_to_all = _sim_key(stack, {"enableSpotAndMarginTrading": True}, ip_restrict=False)
    refused = _rotate(client, registered.key_id, open_to_all)
    assert "no IP whitelist, the old key had one" in refused.json()["errors"][Block.ROTATE_CONFIRM]
    # an admin may rotate the key, but only its owner may accept that
    by_admin = _rotate(client, registered.key_id, open_to_all, user_id=ADMIN, confirm=True)
    assert "the owner <@U0ALICE>" in by_admin.json()["errors"][Block.ROTATE_CONFIRM]
    assert _key(stack).status == KeyStatus.ACTIVE.value
    accepted = _rotate(client, registered.key_id, open_to_all, confirm=True)
    assert accepted.json().get("response_action") == "update", accepted.text


def test_a_key_that_never_had_an_ip_whitelist_may_be_replaced_by_one_without(stack, client):
    registered = _register_old(stack, {}, ip_restrict=False)
    also_open = _sim_key(stack, {}, ip_restrict=False)
    accepted = _rotate(client, registered.key_id, also_open)
    assert accepted.json().get("response_action") == "update", accepted.text


# --- registration beyond the declared purpose -------------------------------------------------


def test_registration_beyond_the_purpose_asks_the_owner_and_confirming_stores_it(stack, client):
    trader = _sim_key(stack, {"enableSpotAndMarginTrading": True, "enableFutures": True})
    refused = register_sim_key(stack, client, trader, label="dash", purpose="read_only")
    error = refused.json()["errors"][Block.REGISTER_CONFIRM]
    assert "read-only analysis" in error and "Trade tier" in error and "Nothing was stored" in error
    assert _key(stack, "dash") is None and _events(stack, "key.register") == []
    # an admin registering it for Alice cannot accept it in her place
    by_admin = register_sim_key(
        stack, client, trader, label="dash", purpose="read_only", user_id=ADMIN, confirm=True
    )
    assert "the owner <@U0ALICE>" in by_admin.json()["errors"][Block.REGISTER_CONFIRM]
    assert _key(stack, "dash") is None
    # Alice ticks the box: stored, with the orange finding, and the audit says she accepted it
    stored = register_sim_key(
        stack, client, trader, label="dash", purpose="read_only", confirm=True
    )
    assert stored.json().get("response_action") == "update", stored.text
    assert _key(stack, "dash") is not None
    (event,) = _events(stack, "key.register")
    assert event.actor == ALICE and event.detail["confirmed_beyond_purpose"] is True
    assert any("exceeds the declared purpose" in r for r in event.detail["accepted"])


def test_a_key_within_its_purpose_needs_no_tick(stack, client):
    trader = _sim_key(stack, {"enableSpotAndMarginTrading": True, "enableFutures": True})
    stored = register_sim_key(stack, client, trader, label="bot", purpose="trading")
    assert stored.json().get("response_action") == "update", stored.text
    (event,) = _events(stack, "key.register")
    assert event.detail["confirmed_beyond_purpose"] is False


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"enableInternalTransfer": True}, "transfer rights (Internal transfer)"),
        ({NEW_FLAG: True}, "permissions the bot does not know yet (Copy trading)"),
    ],
    ids=["transfer", "new-flag"],
)
def test_transfer_rights_and_new_flags_are_beyond_a_trading_purpose(stack, client, flags, reason):
    key = _sim_key(stack, {"enableSpotAndMarginTrading": True, **flags})
    refused = register_sim_key(stack, client, key, label="bot", purpose="trading")
    assert reason in refused.json()["errors"][Block.REGISTER_CONFIRM]
    assert _key(stack) is None


def _pair_button(stack, label: str) -> str:
    (call,) = stack.slack.wait_for(
        "chat.postMessage",
        predicate=lambda c: f"Create the API key for “{label}”" in all_text(c.params),
        timeout=15,
    )
    blocks = call.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    for block in blocks:
        for element in block.get("elements") or []:
            if element.get("action_id") == Action.PAIR_ENTER_KEY:
                return element["value"]
    raise AssertionError("no Enter the API key button")


def _enter_key(stack, client, pending_id: str, api_key: str, *, confirm: bool = False):
    client.post(
        block_action(
            Action.PAIR_ENTER_KEY.value,
            pending_id,
            user_id=ALICE,
            response_url=stack.slack.response_url(),
            trigger_id="1.2.pair",
        )
    )
    (opened,) = stack.slack.wait_for(
        "views.open", predicate=lambda c: "pair_confirm" in all_text(c.params), timeout=15
    )
    assert opened.params  # the small form offers the owner's tick
    values: dict[str, Any] = {
        Block.PAIR_API_KEY: {Action.PAIR_API_KEY: {"type": "plain_text_input", "value": api_key}},
        Block.PAIR_CONFIRM: {
            Action.PAIR_CONFIRM: {
                "type": "checkboxes",
                "selected_options": [{"value": "confirm"}] if confirm else [],
            }
        },
    }
    return client.post(
        view_submission(
            Callback.PAIR_COMPLETE.value, values, user_id=ALICE, private_metadata=pending_id
        )
    )


def _pending(stack, label: str) -> PendingKeyPair:
    with Session(stack.services.engine) as session:
        return session.exec(select(PendingKeyPair).where(PendingKeyPair.label == label)).one()


def test_a_generated_pair_beyond_its_purpose_asks_on_the_small_form(stack, client):
    submit_registration(client, label="gen", api_key="", secret="", key_type="generate_ed25519")
    pending_id = _pair_button(stack, "gen")
    sim_key = stack.simulator.add_self_generated_key(
        _pending(stack, "gen").public_key_pem,
        permissions={"enableSpotAndMarginTrading": True},
        ip_restrict=True,
    )
    refused = _enter_key(stack, client, pending_id, sim_key.api_key)
    error = refused.json()["errors"][Block.PAIR_CONFIRM]
    assert "read-only analysis" in error and "stays usable" in error
    assert _key(stack, "gen") is None
    assert _pending(stack, "gen").state == PendingPairState.PENDING.value
    done = _enter_key(stack, client, pending_id, sim_key.api_key, confirm=True)
    assert done.status_code == 200
    wait_until(lambda: _key(stack, "gen") is not None, timeout=15)
    assert _pending(stack, "gen").state == PendingPairState.COMPLETED.value
    (event,) = _events(stack, "key.register")
    assert event.detail["confirmed_beyond_purpose"] is True


def test_a_tick_on_the_register_form_carries_to_the_generated_pair(stack, client):
    submit_registration(
        client,
        label="gen",
        api_key="",
        secret="",
        key_type="generate_ed25519",
        confirm=True,
    )
    pending_id = _pair_button(stack, "gen")
    assert _pending(stack, "gen").confirm_more is True
    sim_key = stack.simulator.add_self_generated_key(
        _pending(stack, "gen").public_key_pem,
        permissions={"enableSpotAndMarginTrading": True},
        ip_restrict=True,
    )
    _enter_key(stack, client, pending_id, sim_key.api_key)
    wait_until(lambda: _key(stack, "gen") is not None, timeout=15)


def test_a_generated_pair_for_a_rotation_asks_on_the_small_form(stack, client):
    registered = _register_old(stack, {"enableSpotAndMarginTrading": True})
    values = rotate_form_values(key_type="generate_ed25519", api_key="", secret="")
    client.post(
        view_submission(
            Callback.ROTATE.value,
            values,
            user_id=ALICE,
            private_metadata=json.dumps({"key_id": registered.key_id, "channel": "C0GENERAL"}),
        )
    )
    pending_id = _pair_button(stack, "bot")
    wider = stack.simulator.add_self_generated_key(
        _pending(stack, "bot").public_key_pem,
        permissions={"enableSpotAndMarginTrading": True, "enableFutures": True},
        ip_restrict=True,
    )
    refused = _enter_key(stack, client, pending_id, wider.api_key)
    error = refused.json()["errors"][Block.PAIR_CONFIRM]
    assert "Futures" in error and "stays usable" in error
    assert _key(stack).status == KeyStatus.ACTIVE.value
    _enter_key(stack, client, pending_id, wider.api_key, confirm=True)
    wait_until(lambda: _key(stack).status == KeyStatus.ROTATING.value, timeout=15)


# --- permissions Binance adds later ----------------------------------------------------------


def test_a_new_flag_is_shown_by_name_in_status_and_findings(stack, client):
    register_directly(stack, "bot", purpose=KeyPurpose.WITHDRAWALS, extra_fields={NEW_FLAG: True})
    url = stack.slack.response_url()
    client.command("status bot", user_id=ALICE, response_url=url)
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params.get("_response_url") == url, timeout=15
    )
    text = all_text(reply.params)
    assert "Read tier + 1 unknown permission (Copy trading)" in text
    assert "Copy trading (unknown to the bot)" in text  # among the permissions it has
    assert "a permission the bot does not know yet" in text  # the finding
    findings = assess(
        purpose=KeyPurpose.TRADING,
        now=utcnow(),
        permissions=KeyPermissions.from_api({**READ_ONLY, NEW_FLAG: True}),
    )
    (unknown,) = [f for f in findings if f.kind == FindingKind.UNKNOWN_PERMISSION]
    assert unknown.severity == Severity.WARNING and "Copy trading" in unknown.text
    switched_off = assess(
        purpose=KeyPurpose.TRADING,
        now=utcnow(),
        permissions=KeyPermissions.from_api({**READ_ONLY, NEW_FLAG: False}),
    )
    assert FindingKind.UNKNOWN_PERMISSION not in {f.kind for f in switched_off}


def test_a_new_flag_is_counted_where_tiers_are_shown(stack, client):
    register_directly(stack, "bot", purpose=KeyPurpose.WITHDRAWALS, extra_fields={NEW_FLAG: True})
    register_directly(stack, "plain", purpose=KeyPurpose.WITHDRAWALS)
    listed = client.command("list", user_id=ALICE, response_url=stack.slack.response_url())
    assert "Read tier + 1 unknown permission (Copy trading)" in all_text(listed.json())
    client.event({"type": "app_home_opened", "user": ADMIN, "channel": "D0HOME", "tab": "home"})
    (home,) = stack.slack.wait_for("views.publish", timeout=15)
    text = all_text(home.params)
    assert "Read tier + 1 unknown permission (Copy trading)" not in text  # not the admin's key
    assert "of which *1* with a permission the bot does not know yet" in text


def test_a_new_flag_appearing_switched_on_is_in_the_drift_digest(stack):
    _, sim_key = register_directly(stack, "bot", purpose=KeyPurpose.READ_ONLY)
    register_directly(
        stack, "quiet", purpose=KeyPurpose.READ_ONLY, extra_fields={"enableSomethingElse": False}
    )
    stack.simulator.set_extra_fields(sim_key.api_key, **{NEW_FLAG: True})
    clock = FixedClock(utcnow() + timedelta(hours=1))
    engine = stack.services.engine
    ensure_drift_checks(engine, interval=timedelta(0), now=clock.now())
    make_due(engine, kind=JobKind.DRIFT_CHECK, at=clock.now())
    stack.tick(clock)
    (digest,) = [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if "Daily key check" in c.params.get("text", "")
    ]
    text = all_text(digest.params)
    assert "Copy trading (a permission the bot does not know yet) appeared, switched on" in text
    assert "quiet" not in text  # a new flag that is off is no change


# --- keys that can move funds: announced on registration and removal -----------------------


def _announcements(stack, what: str) -> list:
    return [
        c
        for c in stack.slack.calls_to("chat.postMessage")
        if c.ok and f"can move funds was {what}" in c.params.get("text", "")
    ]


def _run_jobs(stack) -> None:
    engine = stack.services.engine
    clock = FixedClock(utcnow() + timedelta(minutes=1))
    with Session(engine) as session:
        due = session.exec(
            select(ScheduledJob).where(ScheduledJob.kind == JobKind.KEY_ANNOUNCE.value)
        ).all()
    assert due, "no announcement was scheduled"
    for _ in range(3):  # more ticks than needed: nothing is sent twice
        stack.tick(clock)
        clock.advance(timedelta(minutes=5))


def test_a_withdraw_key_registered_and_removed_is_announced_once_each(stack, client):
    withdrawer = _sim_key(stack, WITHDRAW)
    stored = register_sim_key(stack, client, withdrawer, label="payout", purpose="withdrawals")
    assert stored.json().get("response_action") == "update", stored.text
    _run_jobs(stack)
    registered = _announcements(stack, "registered")
    assert sorted(c.params["channel"] for c in registered) == [ALERTS, "D0ALICE"]
    text = all_text(registered[0].params)
    assert "payout" in text and "Withdraw tier" in text and "Withdrawals" in text
    assert withdrawer.secret not in text
    (told,) = _events(stack, "key.announce")
    assert told.detail["what"] == "registered" and told.detail["told"] == [ALICE]

    key = _key(stack, "payout")
    url = stack.slack.response_url()
    client.action(Action.REMOVE_CONFIRM, key.id, response_url=url)
    wait_until(lambda: _key(stack, "payout").status == KeyStatus.REMOVED.value)
    _run_jobs(stack)
    removed = _announcements(stack, "removed")
    assert sorted(c.params["channel"] for c in removed) == [ALERTS, "D0ALICE"]
    assert "Binance still accepts it" in all_text(removed[0].params)
    assert len(_announcements(stack, "registered")) == 2  # not again
    assert [e.detail["what"] for e in _events(stack, "key.announce")] == ["registered", "removed"]


def test_a_transfer_key_is_announced_and_a_trading_key_is_not(stack, client):
    mover = _sim_key(stack, {"permitsUniversalTransfer": True})
    register_sim_key(stack, client, mover, label="mover", purpose="withdrawals")
    trader = _sim_key(stack, {"enableSpotAndMarginTrading": True})
    register_sim_key(stack, client, trader, label="trader", purpose="trading")
    _run_jobs(stack)
    announced = _announcements(stack, "registered")
    assert len(announced) == 2 and all("mover" in c.params["text"] for c in announced)
    assert "Universal transfer" in announced[0].params["text"]


def test_a_failed_direct_message_is_retried_without_posting_to_the_channel_again(stack, client):
    stack.slack.inject_fault(
        "chat.postMessage", status=200, error="fatal_error", where={"channel": "D0ALICE"}
    )
    register_sim_key(
        stack, client, _sim_key(stack, WITHDRAW), label="payout", purpose="withdrawals"
    )
    _run_jobs(stack)
    announced = _announcements(stack, "registered")
    assert sorted(c.params["channel"] for c in announced) == [ALERTS, "D0ALICE"]
    tried = [c for c in stack.slack.calls_to("chat.postMessage") if not c.ok]
    assert len(tried) == 1  # the direct message failed once, then went through on the retry
    assert len(_events(stack, "key.announce")) == 1
