"""Four eyes (issue 24), end to end through signed Slack requests against the simulator.

- A registration that can move funds, or do more than its purpose, and an admin's new owner
  or wider purpose are held as requests (material sealed, nothing in the key list), told to
  the alert channel and each approver with Approve / Deny, and done only after another
  person approves, once Binance confirms the key is what was approved.
- Self-approval, an outsider, a second vote, a forged or a decided request are refused and
  audited; deny, withdrawal and expiry shred the held material and tell the requester.
- Break-glass never waits: reporting compromised, removing, closing an incident.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta

import pytest
from sqlmodel import Session, col, select

from bot.ids import Action, Callback
from bot.job_queue.scheduler import FixedClock
from bot.services.access import Actor
from bot.services.approvals.decisions import approve
from bot.services.approvals.holding import HeldForApproval
from bot.services.custody.keys import RegistrationForm, register_key
from bot.slack.approvers import approver_ids
from storage.models import (
    ApiKey,
    ApprovalRequest,
    AuditEvent,
    Incident,
    KeyPurpose,
    KeyStatus,
    KeyType,
    utcnow,
)
from tests.e2e import ALICE, BOB, TEAM, all_text, register_sim_key, wait_until
from tests.factories import WITHDRAW

ADMIN = "U0ADMIN"
CAROL = "U0CAROL"  # the second admin
ALERTS = "C0ALERTS"
EVERYTHING = "all"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(
        alert_channel=ALERTS, admin_user_ids=f"{ADMIN},{CAROL}", approval_required_for=EVERYTHING
    )


def _requests(stack) -> list[ApprovalRequest]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(select(ApprovalRequest).order_by(col(ApprovalRequest.created_at))).all()
        )


def _key(stack, label: str) -> ApiKey | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).first()


def _events(stack, action: str) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(
                select(AuditEvent).where(AuditEvent.action == action).order_by(col(AuditEvent.id))
            ).all()
        )


def _run_jobs(stack, *, later: timedelta = timedelta(minutes=1)) -> None:
    clock = FixedClock(utcnow() + later)
    for _ in range(3):
        stack.tick(clock)
        clock.advance(timedelta(minutes=1))


def _press(stack, client, action: Action, request_id: str, user: str, **kw) -> str:
    """Press a request's button as ``user``; what they were told (ephemeral, after the ack)."""
    url = stack.slack.response_url()
    response = client.action(action, request_id, user_id=user, response_url=url, **kw)
    assert response.status_code == 200
    assert stack.wait_idle(timeout=20)
    told = [c.params for c in stack.slack.calls if c.params.get("_response_url") == url]
    return all_text(response.json() if response.text.strip() else {}) + all_text(told)


def _withdrawer(stack):
    return stack.simulator.add_key(permissions=WITHDRAW, ip_restrict=True)


def _hold_withdrawer(stack, client, label="payout", user=ALICE):
    sim_key = _withdrawer(stack)
    held = register_sim_key(
        stack, client, sim_key, label=label, purpose="withdrawals", user_id=user
    )
    assert held.status_code == 200
    return held, sim_key


def _posts_to(stack, channel: str) -> list:
    return [
        c for c in stack.slack.calls_to("chat.postMessage") if c.params.get("channel") == channel
    ]


# --- held, told, approved ---------------------------------------------------------------------


def test_a_key_that_can_move_funds_waits_for_another_person(
    database_url, make_stack, stack_settings
):
    """Before: Alice's withdrawal key was stored on her own say-so. (SQLite and PostgreSQL.)"""
    from tests.e2e import bot_client

    stack = make_stack(database_url=database_url, **stack_settings)
    client = bot_client(stack)
    held, sim_key = _hold_withdrawer(stack, client)
    answer = held.json()
    assert answer["response_action"] == "update", answer
    assert "waits for approval" in all_text(answer)
    assert _key(stack, "payout") is None  # nothing reaches the key list
    (request,) = _requests(stack)
    assert request.state == "open" and request.requested_by == ALICE
    assert request.api_key_sealed and sim_key.secret.encode() not in request.secret_sealed
    assert "moves_funds" in request.kinds

    _run_jobs(stack)
    (in_channel,) = _posts_to(stack, ALERTS)
    text = all_text(in_channel.params)
    assert "Approval needed" in text and "payout" in text and "<@U0ALICE>" in text
    assert "Withdrawals" in text and "expires" in text
    assert Action.APPROVAL_APPROVE in text and Action.APPROVAL_DENY in text
    assert {c.params["channel"] for c in stack.slack.calls_to("chat.postMessage")} >= {
        "D0ADMIN",
        "D0CAROL",
        "D0ALICE",
    }
    to_alice = all_text(_posts_to(stack, "D0ALICE")[0].params)
    assert Action.APPROVAL_WITHDRAW in to_alice and Action.APPROVAL_APPROVE not in to_alice
    everything_said = all_text([c.params for c in stack.slack.calls])
    assert sim_key.secret not in everything_said and sim_key.api_key not in everything_said

    told = _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    assert "carried out" in told, told
    stored = _key(stack, "payout")
    assert stored is not None and stored.owner_user_id == ALICE
    (request,) = _requests(stack)
    assert request.state == "applied" and request.approved_by == [ADMIN]
    assert request.api_key_sealed is None and request.secret_sealed is None
    (registered,) = _events(stack, "key.register")
    assert registered.detail["approval"] == request.id
    assert registered.detail["approved_by"] == [ADMIN]
    assert [len(_events(stack, a)) for a in ("approval.request", "approval.approve")] == [1, 1]
    assert len(_events(stack, "approval.applied")) == 1


def test_a_key_within_its_purpose_is_not_held(stack, client):
    reader = stack.simulator.add_key(permissions={"enableReading": True}, ip_restrict=True)
    stored = register_sim_key(stack, client, reader, label="dash", purpose="read_only")
    assert "registered" in all_text(stored.json())
    assert _key(stack, "dash") is not None and _requests(stack) == []


def test_a_key_beyond_its_purpose_is_held_after_the_owners_tick(stack, client):
    trader = stack.simulator.add_key(
        permissions={"enableSpotAndMarginTrading": True}, ip_restrict=True
    )
    register_sim_key(stack, client, trader, label="dash", purpose="read_only", confirm=True)
    (request,) = _requests(stack)
    assert request.kinds == ["beyond_purpose"] and _key(stack, "dash") is None
    assert any("exceeds the declared purpose" in s for s in request.at_stake)


def test_the_label_of_a_held_key_is_not_free_meanwhile(stack, client):
    _hold_withdrawer(stack, client)
    other = _withdrawer(stack)
    refused = register_sim_key(stack, client, other, label="PAYOUT", purpose="withdrawals")
    assert "waiting for approval" in all_text(refused.json())
    assert len(_requests(stack)) == 1


# --- who may decide ---------------------------------------------------------------------------


def test_self_outsider_forged_and_replayed_approvals_are_refused_and_audited(stack, client):
    _hold_withdrawer(stack, client, user=ADMIN)  # an admin's own key, for herself
    (request,) = _requests(stack)
    said = _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    assert "another person must approve" in said
    said = _press(stack, client, Action.APPROVAL_APPROVE, request.id, BOB)
    assert "Only the approvers" in said and "Nothing was changed" in said
    said = _press(stack, client, Action.APPROVAL_APPROVE, "f" * 32, CAROL)
    assert "no such request" in said
    said = _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL, team_id="T0OTHER")
    assert "another Slack workspace" in said
    assert _key(stack, "payout") is None and _requests(stack)[0].approved_by == []

    assert "carried out" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL)
    said = _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL)
    assert "already applied" in said  # a replayed click
    said = _press(stack, client, Action.APPROVAL_DENY, request.id, ADMIN)
    assert "already applied" in said

    reasons = [e.detail["reason"] for e in _events(stack, "approval.refused")]
    assert reasons == ["self-approval", "unknown", "already applied", "already applied"]
    denied = [e.detail["attempted"] for e in _events(stack, "access.denied")]
    assert "approve a change" in denied and any("T0OTHER" in d for d in denied)
    assert len(_events(stack, "key.register")) == 1


def test_a_quorum_counts_distinct_approvers(make_stack):
    stack = make_stack(
        alert_channel=ALERTS,
        admin_user_ids=f"{ADMIN},{CAROL},U0DAVE",
        approval_required_for=EVERYTHING,
        approval_quorum=2,
    )
    from tests.e2e import bot_client

    client = bot_client(stack)
    _hold_withdrawer(stack, client)
    (request,) = _requests(stack)
    assert "counted" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    assert "approved this already" in _press(
        stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN
    )
    assert _key(stack, "payout") is None
    assert "carried out" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL)
    assert _requests(stack)[0].approved_by == [ADMIN, CAROL]
    assert _key(stack, "payout") is not None


def test_an_approver_group_replaces_the_admins(make_stack):
    stack = make_stack(
        alert_channel=ALERTS,
        admin_user_ids=ADMIN,
        approver_usergroup_id="S0RISK",
        approval_required_for=EVERYTHING,
    )
    stack.slack.add_usergroup("S0RISK", [BOB])
    from tests.e2e import bot_client

    client = bot_client(stack)
    _hold_withdrawer(stack, client)
    (request,) = _requests(stack)
    assert "Only the approvers" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    assert "carried out" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, BOB)


# --- Binance changed, deny, withdraw, expire --------------------------------------------------


def test_a_key_changed_in_binance_since_the_request_goes_back(stack, client):
    _, sim_key = _hold_withdrawer(stack, client)
    (request,) = _requests(stack)
    stack.simulator.set_permissions(sim_key.api_key, enableFutures=True)
    said = _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    assert "Not carried out" in said and "changed" in said
    assert _key(stack, "payout") is None
    (request,) = _requests(stack)
    assert request.state == "changed" and request.api_key_sealed is None
    assert len(_events(stack, "approval.changed")) == 1
    _run_jobs(stack)
    to_alice = all_text([c.params for c in _posts_to(stack, "D0ALICE")])
    assert "changed in Binance" in to_alice and "destroyed" in to_alice


def test_a_denied_request_is_shredded_and_the_requester_told(stack, client):
    _hold_withdrawer(stack, client)
    (request,) = _requests(stack)
    assert "denied" in _press(stack, client, Action.APPROVAL_DENY, request.id, CAROL)
    (request,) = _requests(stack)
    assert request.state == "denied" and request.secret_sealed is None
    assert request.seal_key_id is None
    assert "already denied" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    _run_jobs(stack)
    assert "denied" in all_text([c.params for c in _posts_to(stack, "D0ALICE")])
    assert _key(stack, "payout") is None and len(_events(stack, "approval.deny")) == 1


def test_only_the_requester_withdraws(stack, client):
    _hold_withdrawer(stack, client)
    (request,) = _requests(stack)
    said = _press(stack, client, Action.APPROVAL_WITHDRAW, request.id, BOB)
    assert "Only the person who asked" in said and _requests(stack)[0].state == "open"
    assert "withdrawn" in _press(stack, client, Action.APPROVAL_WITHDRAW, request.id, ALICE)
    (request,) = _requests(stack)
    assert request.state == "withdrawn" and request.api_key_sealed is None
    assert len(_events(stack, "approval.withdraw")) == 1


def test_a_request_nobody_decides_expires_shredded(database_url, make_stack, stack_settings):
    from tests.e2e import bot_client

    stack = make_stack(database_url=database_url, **stack_settings)
    client = bot_client(stack)
    _hold_withdrawer(stack, client)
    _run_jobs(stack)  # told; not yet expired
    assert _requests(stack)[0].state == "open"
    _run_jobs(stack, later=timedelta(hours=24, minutes=1))
    (request,) = _requests(stack)
    assert request.state == "expired" and request.secret_sealed is None
    (expired,) = _events(stack, "approval.expire")
    assert expired.actor == "bot" and expired.detail["shredded"] is True
    assert "expired" in all_text([c.params for c in _posts_to(stack, "D0ALICE")])


# --- key edits --------------------------------------------------------------------------------


def test_a_new_owner_or_a_wider_purpose_waits_and_a_narrower_one_does_not(stack, client):
    from tests.e2e import register_directly

    register_directly(stack, "bot", purpose=KeyPurpose.TRADING, permissions={})
    url = stack.slack.response_url(command=True)
    client.command(f"edit bot owner <@{BOB}|bob>", user_id=ADMIN, response_url=url)
    assert stack.wait_idle()
    said = all_text([c.params for c in stack.slack.calls if c.params.get("_response_url") == url])
    assert "waits for approval" in said
    assert _key(stack, "bot").owner_user_id == ALICE
    (request,) = _requests(stack)
    assert request.change == "edit" and request.kinds == ["key_edit"]
    assert "Owner: <@U0ALICE> → <@U0BOB>" in request.at_stake
    assert "carried out" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL)
    assert _key(stack, "bot").owner_user_id == BOB
    (edited,) = _events(stack, "key.edit")
    assert edited.detail["approved_by"] == [CAROL] and edited.actor == ADMIN

    client.command("edit bot purpose withdrawals", user_id=ADMIN)
    assert stack.wait_idle()
    assert _key(stack, "bot").purpose == "trading" and len(_requests(stack)) == 2
    client.command("edit bot purpose read_only", user_id=ADMIN)
    assert stack.wait_idle()
    assert wait_until(lambda: _key(stack, "bot").purpose == "read_only")
    assert len(_requests(stack)) == 2


# --- lists and App Home -----------------------------------------------------------------------


def test_open_requests_are_listed_and_on_an_approvers_home(stack, client):
    _hold_withdrawer(stack, client)
    listed = all_text(client.command("approvals", user_id=ADMIN).json())
    assert "1 change waiting for approval" in listed and "payout" in listed
    assert "payout" in all_text(client.command("approvals", user_id=ALICE).json())  # hers
    bobs = all_text(client.command("approvals", user_id=BOB).json())
    assert "No change is waiting" in bobs and "payout" not in bobs
    assert "takes no arguments" in all_text(client.command("approvals x", user_id=BOB).json())
    home = _home_of(stack, client, ADMIN)
    assert "waiting for you" in home and Action.APPROVAL_APPROVE in home
    assert "waiting for you" not in _home_of(stack, client, ALICE)  # her own request


def _home_of(stack, client, user: str) -> str:
    def theirs(call) -> bool:
        return call.params["user_id"] == user

    before = len([c for c in stack.slack.calls_to("views.publish") if theirs(c)])
    client.event({"type": "app_home_opened", "user": user, "tab": "home"})
    (call,) = stack.slack.wait_for("views.publish", count=before + 1, predicate=theirs)[-1:]
    return all_text(call.params)


# --- two replicas, start-up -------------------------------------------------------------------


def test_two_approvals_at_once_store_the_key_once(database_url, make_stack, stack_settings):
    """Two replicas' approvers press at the same moment (SQLite and PostgreSQL): the key is
    stored once, the request applied once; the slower vote is refused."""
    stack = make_stack(database_url=database_url, **stack_settings)
    services = stack.services
    sim_key = _withdrawer(stack)
    with pytest.raises(HeldForApproval) as held:
        register_key(
            engine=services.engine,
            ring=services.ring,
            gateway=services.gateway,
            settings=services.settings,
            form=RegistrationForm(
                team_id=TEAM,
                actor=ALICE,
                label="payout",
                account_alias="main",
                owner_user_id=ALICE,
                purpose=KeyPurpose.WITHDRAWALS,
                key_type=KeyType.HMAC,
                api_key=sim_key.api_key,
                secret=sim_key.secret,
            ),
        )
    request_id = held.value.view.request_id
    results: list[object] = []

    def vote(user: str) -> None:
        try:
            results.append(
                approve(
                    engine=services.engine,
                    ring=services.ring,
                    gateway=services.gateway,
                    settings=services.settings,
                    actor=Actor(user_id=user, team_id=TEAM, is_admin=True),
                    request_id=request_id,
                    eligible=frozenset({ADMIN, CAROL}),
                    now=utcnow(),
                )
            )
        except Exception as exc:  # the slower one is refused: counted below
            results.append(exc)

    threads = [threading.Thread(target=vote, args=(u,)) for u in (ADMIN, CAROL)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    with Session(services.engine) as session:
        stored = session.exec(select(ApiKey).where(ApiKey.label == "payout")).all()
    assert len(stored) == 1
    assert len(_events(stack, "key.register")) == 1
    assert len(_events(stack, "approval.applied")) == 1


def test_too_few_approvers_is_said_in_every_request(make_stack):
    stack = make_stack(alert_channel=ALERTS, admin_user_ids=ADMIN, approval_required_for=EVERYTHING)
    from tests.e2e import bot_client

    client = bot_client(stack)
    _hold_withdrawer(stack, client, user=ADMIN)
    _run_jobs(stack)
    (in_channel,) = _posts_to(stack, ALERTS)
    assert "cannot be approved until more approvers are set" in all_text(in_channel.params)
    assert approver_ids(stack.services.settings, None) == frozenset({ADMIN})


def test_too_few_approvers_is_logged_at_start_up(make_stack, caplog):
    with caplog.at_level(logging.WARNING):
        make_stack(admin_user_ids=ADMIN, approval_required_for=EVERYTHING)
    assert any("approver" in r.getMessage() for r in caplog.records)


# --- break-glass ------------------------------------------------------------------------------


def test_break_glass_never_waits_for_approval(stack, client):
    """With approvals required for everything: reporting compromised, closing the incident and
    removing a key happen at once, by anyone allowed, with no request."""
    from bot.sandbox.requests import close_outcome_values
    from tests.e2e import register_directly

    _, leaky = register_directly(stack, "leaky", permissions={}, purpose=KeyPurpose.TRADING)
    register_directly(stack, "old", permissions={}, purpose=KeyPurpose.TRADING)
    client.command("compromised leaky", user_id=BOB)
    incident = wait_until(lambda: _incident(stack, "leaky"))
    assert _key(stack, "leaky").status == KeyStatus.COMPROMISED.value
    stack.simulator.delete_key(leaky.api_key)
    for step in range(1, 6):
        client.action(Action.INCIDENT_TICK, f"{incident.id}:{step}", user_id=ALICE)
        assert stack.wait_idle()
    closing = client.submit(
        Callback.INCIDENT_CLOSE,
        close_outcome_values(note="rotated", outcome="handled"),
        user_id=ADMIN,
        private_metadata=incident.id,
    )
    assert closing.status_code == 200 and "errors" not in closing.text, closing.text
    wait_until(lambda: _incident(stack, "leaky").state == "closed")
    old = _key(stack, "old")
    client.action(Action.REMOVE_CONFIRM, old.id, user_id=ALICE)
    wait_until(lambda: _key(stack, "old").status == KeyStatus.REMOVED.value)
    assert _requests(stack) == []


def _incident(stack, label: str) -> Incident | None:
    with Session(stack.services.engine) as session:
        return session.exec(select(Incident).where(Incident.label == label)).first()


def test_the_request_message_says_everything_and_no_secret(stack, client):
    _, sim_key = _hold_withdrawer(stack, client)
    _run_jobs(stack)
    assert "Approval needed" in all_text(_posts_to(stack, ALERTS)[0].params)
    said = json.dumps([c.params for c in stack.slack.calls])
    assert sim_key.secret not in said
    with Session(stack.services.engine) as session:
        details = json.dumps([e.detail for e in session.exec(select(AuditEvent)).all()])
    assert sim_key.secret not in details and sim_key.api_key not in details


# --- rotations --------------------------------------------------------------------------------


def _rotate(client, key_id: str, sim_key, *, user: str = ALICE):
    from bot.sandbox.requests import rotate_form_values
    from tests.slack_requests import view_submission

    values = rotate_form_values(
        key_type=sim_key.key_type, api_key=sim_key.api_key, secret=sim_key.secret, confirm=True
    )
    metadata = json.dumps({"key_id": key_id, "channel": "C0GENERAL"})
    return client.post(
        view_submission(Callback.ROTATE.value, values, user_id=user, private_metadata=metadata)
    )


def test_a_rotation_that_drops_the_ip_whitelist_waits_for_approval(stack, client):
    from tests.e2e import register_directly

    old, _ = register_directly(stack, "bot", permissions={}, purpose=KeyPurpose.TRADING)
    open_to_all = stack.simulator.add_key(permissions={}, ip_restrict=False)
    held = _rotate(client, old.key_id, open_to_all)
    assert "waits for approval" in all_text(held.json())
    assert _key(stack, "bot").status == KeyStatus.ACTIVE.value
    assert _key(stack, "bot").api_key_masked == old.masked
    (request,) = _requests(stack)
    assert request.change == "rotate" and request.kinds == ["drops_ip_whitelist"]
    assert "carried out" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL)
    rotated = _key(stack, "bot")
    assert rotated.status == KeyStatus.ROTATING.value and rotated.api_key_masked != old.masked
    (started,) = _events(stack, "key.rotate_start")
    assert started.detail["approval"] == request.id and started.actor == ALICE


def test_a_rotation_within_bounds_is_not_held(stack, client):
    from tests.e2e import register_directly

    old, _ = register_directly(stack, "bot", permissions={}, purpose=KeyPurpose.TRADING)
    same = stack.simulator.add_key(permissions={}, ip_restrict=True)
    started = _rotate(client, old.key_id, same)
    assert "waits for approval" not in all_text(started.json())
    assert _key(stack, "bot").status == KeyStatus.ROTATING.value and _requests(stack) == []


def test_a_generated_pair_hands_its_private_key_to_the_request(stack, client):
    from bot.ids import Block
    from bot.model.key_pairs import KeyAlgorithm
    from bot.services.custody.key_pairs import PairRequest, start_generated_registration
    from storage.models import PendingKeyPair

    pending = start_generated_registration(
        engine=stack.services.engine,
        ring=stack.services.ring,
        request=PairRequest(
            team_id=TEAM,
            actor=ALICE,
            label="payout",
            account_alias="main",
            owner_user_id=ALICE,
            purpose=KeyPurpose.WITHDRAWALS,
            algorithm=KeyAlgorithm.ED25519,
        ),
    )
    made = stack.simulator.add_self_generated_key(
        pending.public_key_pem, permissions=WITHDRAW, ip_restrict=True
    )
    typed = {"type": "plain_text_input", "value": made.api_key}
    held = client.submit(
        Callback.PAIR_COMPLETE,
        {Block.PAIR_API_KEY: {Action.PAIR_API_KEY: typed}},
        user_id=ALICE,
        private_metadata=pending.pending_id,
    )
    assert "waits for approval" in all_text(held.json())
    with Session(stack.services.engine) as session:
        pair = session.get(PendingKeyPair, pending.pending_id)
        assert pair.state == "completed" and pair.private_key_sealed is None
    (request,) = _requests(stack)
    assert "carried out" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    assert _key(stack, "payout").key_type == KeyType.ED25519.value


# --- settings ---------------------------------------------------------------------------------


def test_every_kind_needs_approval_by_default_and_a_team_can_choose(monkeypatch):
    from bot.config import ConfigError, load_settings
    from bot.vocabulary import ApprovalKind

    monkeypatch.delenv("APPROVAL_REQUIRED_FOR")
    defaults = load_settings(_env_file=None)
    assert defaults.approval_required_for == tuple(ApprovalKind)
    assert (defaults.approval_quorum, defaults.approval_ttl_hours) == (1, 24.0)
    chosen = load_settings(_env_file=None, approval_required_for="key_edit, moves_funds")
    assert chosen.approval_required_for == (ApprovalKind.KEY_EDIT, ApprovalKind.MOVES_FUNDS)
    assert load_settings(_env_file=None, approval_required_for="none").approval_required_for == ()
    with pytest.raises(ConfigError, match="APPROVAL_REQUIRED_FOR: “withdrawals” is not a kind"):
        load_settings(_env_file=None, approval_required_for="withdrawals")
    with pytest.raises(ConfigError, match="APPROVAL_QUORUM"):
        load_settings(_env_file=None, approval_quorum=0)
    with pytest.raises(ConfigError, match="APPROVER_USER_IDS"):
        load_settings(_env_file=None, approver_user_ids="alice")


def test_approving_from_the_app_home_answers_by_direct_message(stack, client):
    _hold_withdrawer(stack, client)
    (request,) = _requests(stack)
    response = client.action(
        Action.APPROVAL_APPROVE, request.id, user_id=ADMIN, view={"type": "home"}
    )
    assert response.status_code == 200 and stack.wait_idle(timeout=20)
    told = all_text([c.params for c in _posts_to(stack, "D0ADMIN")])
    assert "carried out" in told and _key(stack, "payout") is not None


def test_a_governor_waits_for_another_admin_then_learns_its_sub_accounts(make_stack):
    from tests.e2e import bot_client
    from tests.test_governor_registration import _ask, _make_in_binance, _steps
    from tests.test_key_pairs import _button_value, _enter_key

    stack = make_stack(
        alert_channel=ALERTS,
        admin_user_ids=f"{ADMIN},{CAROL}",
        approval_required_for="governor",
        bot_egress_ips="127.0.0.1",
    )
    client = bot_client(stack)
    stack.simulator.add_sub_account(master="master", email="bot1@example.com")
    _ask(client, stack, "governor master")
    message = _steps(stack, "governor-master")
    sim_key = _make_in_binance(stack, "governor-master")
    _enter_key(stack, client, _button_value(message), sim_key.api_key, user=ADMIN)
    assert stack.wait_idle()
    assert _key(stack, "governor-master") is None
    (request,) = _requests(stack)
    assert request.kinds == ["governor"] and request.requested_by == ADMIN
    assert "another person" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, ADMIN)
    assert "carried out" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL)
    assert _key(stack, "governor-master").purpose == KeyPurpose.GOVERNOR.value
    from storage.models import BinanceAccount

    def governed() -> BinanceAccount | None:
        with Session(stack.services.engine) as session:
            return session.exec(
                select(BinanceAccount).where(BinanceAccount.sub_account_email == "bot1@example.com")
            ).first()

    assert wait_until(governed, timeout=15)


def test_a_creation_that_would_move_funds_waits_before_binance_is_asked(make_stack):
    from tests.e2e import bot_client
    from tests.test_governor_flows import SUB, create, govern

    stack = make_stack(
        alert_channel=ALERTS,
        admin_user_ids=f"{ADMIN},{CAROL}",
        approval_required_for="moves_funds",
        bot_egress_ips="127.0.0.1",
    )
    client = bot_client(stack)
    govern(stack, client)
    asked = len(stack.simulator.request_log)
    held = create(client, extras=("transfer",), confirm=True)
    assert "waits for approval" in all_text(held.json())
    assert stack.wait_idle()
    assert stack.simulator.keys_of(SUB) == [] and _key(stack, "maker") is None
    assert not any(r.method == "POST" for r in stack.simulator.request_log[asked:])
    (request,) = _requests(stack)
    assert request.change == "create" and "Universal transfer" in " ".join(request.at_stake)
    assert "created" in _press(stack, client, Action.APPROVAL_APPROVE, request.id, CAROL)
    assert len(stack.simulator.keys_of(SUB)) == 1
    stored = _key(stack, "maker")
    assert stored is not None and stored.created_via == "governor"
    assert _requests(stack)[0].state == "applied"
