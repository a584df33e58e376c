"""The running bot attacked over HTTP: forged, stale and malformed requests, answers aimed at
hosts that are not Slack, forms submitted by people who may not, a tampered audit trail.

Every request here goes through the bot's real HTTP server, as Slack's would (or as an
attacker's would); the database, the Binance simulator, the Slack stand-in and a second stand-in
posing as an attacker's server are then checked directly.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote_plus

import pytest
import requests
import sqlalchemy as sa
from sqlmodel import Session, col, select

from bot.ids import Action, Block, Callback
from bot.model.key_pairs import KeyAlgorithm
from bot.sandbox.requests import close_note_values, commander_values, rotate_form_values
from bot.sandbox.slack_standin import SlackStandIn
from bot.services.approvals.holding import hold_change
from bot.services.custody.key_pairs import PairRequest, start_generated_registration
from bot.vocabulary import ApprovalKind
from storage.db import session_scope
from storage.models import AuditEvent, KeyPurpose, StatusReportRecord, utcnow
from tests.conftest import start_test_stack
from tests.e2e import (
    ALICE,
    BOB,
    TEAM,
    all_text,
    audit_verdict,
    bot_client,
    register_directly,
    register_values,
    wait_until,
)
from tests.slack_requests import (
    block_action,
    menu_choice,
    sign,
    slash_command,
    view_submission,
)

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"
EVE = "U0EVE"  # a user of another workspace
OTHER_TEAM = "T0OTHER"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(admin_user_ids=ADMIN, alert_channel=ALERTS)


@pytest.fixture
def attacker():
    """A server that is not Slack: whatever reaches it is a request the bot was talked into."""
    server = SlackStandIn(bot_token="xoxb-attacker").start()
    try:
        yield server
    finally:
        server.stop()


def _database(stack) -> dict[str, list]:
    """Every row of every table (the state a refused request must leave as it was)."""
    engine = stack.services.engine
    tables = sa.inspect(engine).get_table_names()
    with engine.connect() as connection:
        return {
            table: sorted(
                repr(tuple(row)) for row in connection.execute(sa.text(f'SELECT * FROM "{table}"'))
            )
            for table in tables
            if table != "alembic_version"
        }


def _without_audit(state: dict[str, list]) -> dict[str, list]:
    return {table: rows for table, rows in state.items() if table != "audit_events"}


def _denials(stack, after_id: int = 0) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(
            session.exec(
                select(AuditEvent)
                .where(AuditEvent.action == "access.denied", col(AuditEvent.id) > after_id)
                .order_by(col(AuditEvent.id))
            ).all()
        )


def _last_audit_id(stack) -> int:
    with Session(stack.services.engine) as session:
        return session.exec(select(sa.func.max(col(AuditEvent.id)))).one() or 0


def _raw_post(stack, body: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(stack.url + "/slack/events", data=body, headers=headers, timeout=10)


def _bot_records(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(("bot", "slack_bolt"))]


# --- 1. nothing acts on a request that has not passed signature verification ------------------


def _forgeries(body: str) -> dict[str, dict[str, str]]:
    """Header sets that are not Slack's signature of ``body``, by name."""
    now = int(time.time())
    good = sign(body)
    form = {"Content-Type": good["Content-Type"]}
    wrong_secret = sign(body, secret="not-the-signing-secret")
    return {
        "non-numeric timestamp": {**good, "X-Slack-Request-Timestamp": "abc"},
        "non-numeric timestamp, no signature": {**form, "X-Slack-Request-Timestamp": "abc"},
        "negative timestamp": {**good, "X-Slack-Request-Timestamp": "-5"},
        "huge timestamp": {**good, "X-Slack-Request-Timestamp": "9" * 40},
        "fractional timestamp": {**good, "X-Slack-Request-Timestamp": f"{now}.5"},
        "stale (10 minutes old)": sign(body, timestamp=now - 600),
        "future-dated (10 minutes ahead)": sign(body, timestamp=now + 600),
        "no headers": form,
        "timestamp only": {**form, "X-Slack-Request-Timestamp": str(now)},
        "signature only": {**form, "X-Slack-Signature": good["X-Slack-Signature"]},
        "forged signature": {**good, "X-Slack-Signature": "v0=" + "0" * 64},
        "malformed signature": {**good, "X-Slack-Signature": "v1=zz"},
        "another signing secret": wrong_secret,
    }


def test_unverified_requests_get_401_and_the_bot_posts_nowhere(
    stack, attacker, caplog, monkeypatch
):
    """Before: a non-numeric timestamp was answered 500 and the bot POSTed an error message to
    whatever response_url the unverified body named."""
    caplog.set_level(logging.DEBUG)
    register_directly(stack, "alices-key", owner=ALICE)
    before = _database(stack)
    sim_calls = len(stack.simulator.request_log)
    hook = attacker.response_url()
    bodies = {
        "command": slash_command("remove alices-key", user_id=ALICE, response_url=hook),
        "button": block_action(Action.REMOVE_CONFIRM.value, "x" * 32, response_url=hook),
        "broken payload": "payload=%7Bnot-json&response_url=" + quote_plus(hook),
    }
    for what, body in bodies.items():
        for forgery, headers in _forgeries(body).items():
            response = _raw_post(stack, body.encode(), headers)
            assert response.status_code == 401, (what, forgery, response.status_code)
            assert response.json() == {"ok": False, "error": "invalid_signature"}
    assert stack.wait_idle()  # anything the bot was talked into would have been sent by now
    assert attacker.calls == []
    assert [c for c in stack.slack.calls if c.method != "auth.test"] == []
    assert len(stack.simulator.request_log) == sim_calls
    assert _database(stack) == before
    logged = "\n".join(r.getMessage() for r in _bot_records(caplog))
    assert "alices-key" not in logged and "not-json" not in logged and hook not in logged
    assert not [r for r in _bot_records(caplog) if r.exc_info or r.levelno >= logging.ERROR]
    assert sum("refused a request" in r.getMessage() for r in caplog.records) == 3 * len(
        _forgeries("")
    )


def test_a_signed_answer_goes_only_to_slacks_hosts(stack, client, attacker, caplog):
    """A response_url on another host is never posted to: the answer reaches the person through
    Slack's Web API instead, and the log names the URL without its query."""
    caplog.set_level(logging.INFO)
    register_directly(stack, "alices-key", owner=ALICE)
    hook = attacker.response_url() + "?token=sekrit-query"
    response = client.post(slash_command("status alices-key", user_id=ALICE, response_url=hook))
    assert response.status_code == 200
    (private,) = stack.slack.wait_for(
        "chat.postEphemeral", predicate=lambda c: "alices-key" in all_text(c.params), timeout=15
    )
    assert private.params["user"] == ALICE
    assert attacker.calls == []
    refused = [r.getMessage() for r in caplog.records if "outside Slack" in r.getMessage()]
    assert refused and all("sekrit-query" not in line for line in refused)
    assert hook.split("?")[0].split("//")[1].split("/")[0] in refused[0]


# --- 2. every request the bot cannot understand gets a clear HTTP answer -----------------------


def _payload(value: object) -> str:
    return "payload=" + quote_plus(json.dumps(value))


MALFORMED_SIGNED = {
    "payload not JSON": "payload=%7Bnot-json",
    "payload a JSON list": _payload([1, 2, 3]),
    "payload a JSON string": _payload("view_submission"),
    "payload without a type": _payload({"user": {"id": ALICE}}),
    "view_submission without view id": _payload(
        {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": ALICE},
            "view": {"callback_id": Callback.REGISTER.value, "state": {"values": {}}},
        }
    ),
    "view_submission without state": _payload(
        {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": ALICE},
            "view": {"id": "V1", "callback_id": Callback.ROTATE.value},
        }
    ),
    "view_submission with state values of the wrong type": _payload(
        {
            "type": "view_submission",
            "team": {"id": TEAM},
            "user": {"id": ALICE},
            "view": {
                "id": "V1",
                "callback_id": Callback.REGISTER.value,
                "state": {"values": {"register_label": "oops"}},
            },
        }
    ),
    "block_actions with actions: []": _payload(
        {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": ALICE}, "actions": []}
    ),
    "block_actions with an action that is not an object": _payload(
        {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": ALICE}, "actions": [7]}
    ),
    "block_actions without a user": _payload(
        {"type": "block_actions", "actions": [{"action_id": Action.SNOOZE.value}]}
    ),
    "event JSON that is a list": "[]",
    "event_callback without an event": json.dumps({"type": "event_callback", "team_id": TEAM}),
    "JSON that does not parse": '{"type": "event_callback", ',
    "slash command without a command": "text=list&user_id=U0ALICE&team_id=T0TEST",
    "form that does not parse": "a=1&&=&b",
}


def test_malformed_bodies_get_a_clear_answer_one_log_line_and_the_bot_keeps_serving(
    stack, client, caplog
):
    """Before: these ended in a dropped connection and a traceback in the log."""
    caplog.set_level(logging.DEBUG)
    before = _database(stack)
    for what, body in MALFORMED_SIGNED.items():
        caplog.clear()
        for signed in (True, False):
            headers = sign(body) if signed else {"Content-Type": sign(body)["Content-Type"]}
            response = _raw_post(stack, body.encode(), headers)
            assert response.status_code == (400 if signed else 401), (what, signed)
            assert response.json()["ok"] is False
        records = _bot_records(caplog)
        assert [r for r in records if r.exc_info or r.levelno >= logging.ERROR] == [], what
        assert len([r for r in records if "refused" in r.getMessage()]) == 2, what
    not_utf8 = b"payload=\xff\xfe"
    assert _raw_post(stack, not_utf8, sign(not_utf8.decode("latin-1"))).status_code in (400, 401)
    assert _database(stack) == before
    # still serving: a real command works
    reply = client.command("help", user_id=ALICE)
    assert reply.status_code == 200 and "register" in all_text(reply.json())


def _send_raw(stack, request: bytes) -> bytes:
    host, port = stack.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks)


def test_unreadable_bodies_get_400_or_413_and_chunked_bodies_meet_the_gate(stack):
    head = b"POST /slack/events HTTP/1.1\r\nHost: bot\r\n"
    cases = {
        b"Content-Length: abc\r\n": b" 400 ",
        b"Content-Length: -1\r\n": b" 400 ",
        b"Content-Length: 99999999999\r\n": b" 413 ",
    }
    for header, status in cases.items():
        answer = _send_raw(stack, head + header + b"Connection: close\r\n\r\n")
        assert status in answer[:20], answer
    # A chunked body is read whole by the server, then the gate checks it like any other.
    chunked = _send_raw(
        stack, head + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n"
    )
    assert b" 401 " in chunked[:20], chunked
    assert requests.get(stack.url + "/healthz", timeout=5).status_code == 200


def test_clients_that_send_slowly_hold_no_worker(stack, client):
    """Connections that never finish their request (slowloris) wait in the server's I/O loop,
    not in a worker thread: more of them than there are workers, and a command still acks.
    (From other addresses than the command's: each address has a cap of its own,
    tests/test_slow_clients.py.)"""
    host, port = stack.url.removeprefix("http://").split(":")
    stalled = []
    threads_before = threading.active_count()
    try:
        for i in range(40):
            connection = socket.create_connection(
                (host, int(port)), timeout=10, source_address=(f"127.0.2.{i % 4 + 1}", 0)
            )
            connection.sendall(
                b"POST /slack/events HTTP/1.1\r\nHost: bot\r\nContent-Length: 500\r\n\r\npay"
            )
            stalled.append(connection)
        reply = client.command("help", user_id=ALICE)
        assert reply.status_code == 200 and "register" in all_text(reply.json())
        assert requests.get(stack.url + "/healthz", timeout=5).status_code == 200
        # Before: one thread per connection, without bound (40 more threads here).
        assert threading.active_count() - threads_before < 10
    finally:
        for connection in stalled:
            connection.close()


# --- 4. every form and button checks who is asking ------------------------------------------------

# What a member who neither owns the key nor is an admin may do, for every id in bot/ids.py
# (the README's "Who may do what"): REFUSED ones must be refused politely, audited, with nothing
# changed; OPEN ones are allowed to everyone by design; INPUT ids name a modal's inputs, which
# Slack does not send as actions (no listener exists: Bolt answers 404 and nothing changes).
REFUSED, OPEN, INPUT = "refused", "open to every member", "input"
MEMBER_RULES: dict[str, str] = {
    Callback.REGISTER: REFUSED,  # registering on someone else's behalf
    Callback.ROTATE: REFUSED,
    Callback.INCIDENT_CLOSE: OPEN,  # anyone may work the emergency checklist
    Callback.INCIDENT_COMMANDER: REFUSED,  # only the commander, the owner or an admin
    Callback.PAIR_COMPLETE: REFUSED,  # finishing someone else's generated pair
    Action.PAIR_ENTER_KEY: REFUSED,
    Action.APPROVAL_APPROVE: REFUSED,  # only the approvers, never the requester
    Action.APPROVAL_DENY: REFUSED,
    Action.APPROVAL_WITHDRAW: REFUSED,  # only the requester
    Action.PAIR_API_KEY: INPUT,
    Action.CREATE_IPS: INPUT,
    Action.CREATE_EXTRAS: INPUT,
    Action.REMOVE_CONFIRM: REFUSED,
    Action.REMOVE_CANCEL: REFUSED,
    Action.STATUS_PAGE: REFUSED,  # a page of someone else's report
    Action.REGISTER_OPEN: OPEN,  # a form to register one's own key
    Action.HOME_CHECK: OPEN,  # one's own keys
    Action.HOME_CHECK_ALL: OPEN,  # like `status all`: other people's keys as a summary only
    Action.ROTATE_NOW: REFUSED,
    Action.SNOOZE: REFUSED,
    Action.ROTATION_NEW_KEY_IN_USE: REFUSED,  # ending someone else's overlap
    Action.INCIDENT_RAISE: OPEN,  # a leak must never wait for permission
    Action.INCIDENT_TICK: OPEN,
    Action.INCIDENT_CLOSE: OPEN,
    Action.INCIDENT_COMMANDER: REFUSED,
    Action.INCIDENT_SUCCESSOR: REFUSED,  # only the key's owner or an admin
    # a key's menu: its Rotate and Remove are refused (the scene sends Rotate); its Details
    # (the summary) and Report compromised are open to all: test_a_forged_key_menu_…
    Action.KEY_MENU: REFUSED,
    Action.CLOSE_NOTE: INPUT,
    Action.CLOSE_OUTCOME: INPUT,
    Action.COMMANDER: INPUT,
    Action.ROTATE_CONFIRM: INPUT,
    Action.REGISTER_CONFIRM: INPUT,
    Action.PAIR_CONFIRM: INPUT,
    Action.LABEL: INPUT,
    Action.ACCOUNT: INPUT,
    Action.OWNER: INPUT,
    Action.PURPOSE: INPUT,
    Action.KEY_TYPE: INPUT,
    Action.API_KEY: INPUT,
    Action.SECRET: INPUT,
    Action.DELIVERY: INPUT,
}


def test_every_id_is_classified():
    assert set(MEMBER_RULES) == set(Callback) | set(Action)


class _Scene:
    """Alice's key, a status report of hers and an incident on another key of hers."""

    def __init__(self, stack, client) -> None:
        self.stack = stack
        registered, _ = register_directly(stack, "alices-key", owner=ALICE)
        self.key_id = registered.key_id
        client.command("status alices-key", user_id=ALICE)
        self.report_id = wait_until(lambda: self._report_of(ALICE))
        leaked, _ = register_directly(stack, "leaked-key", owner=ALICE)
        client.command("compromised leaked-key", user_id=ALICE)
        self.incident_id = wait_until(lambda: self._incident_of(leaked.key_id))
        self.new_key = stack.simulator.add_key(
            ip_restrict=True, permissions={"enableWithdrawals": True, "enableReading": True}
        )
        self.pending = start_generated_registration(
            engine=stack.services.engine,
            ring=stack.services.ring,
            request=PairRequest(
                team_id=TEAM,
                actor=ALICE,
                label="alices-generated",
                account_alias="main",
                owner_user_id=ALICE,
                purpose=KeyPurpose.READ_ONLY,
                algorithm=KeyAlgorithm.ED25519,
            ),
        )
        self.generated = stack.simulator.add_self_generated_key(self.pending.public_key_pem)
        with session_scope(stack.services.engine) as session:  # Alice asks for a new owner
            self.request_id = hold_change(
                session,
                None,
                stack.services.settings,
                team_id=TEAM,
                change="edit",
                kinds=[ApprovalKind.KEY_EDIT],
                at_stake=["Owner: <@U0ALICE> → <@U0ADMIN>"],
                label="alices-key",
                requested_by=ALICE,
                now=utcnow(),
                form={"field": "owner", "value": ADMIN, "before": ALICE},
                permissions=None,
                key_id=self.key_id,
            ).request_id

    def _report_of(self, user: str) -> str | None:
        with Session(self.stack.services.engine) as session:
            record = session.exec(
                select(StatusReportRecord).where(StatusReportRecord.requested_by == user)
            ).first()
            return record.id if record else None

    def _incident_of(self, key_id: str) -> str | None:
        from storage.models import Incident

        with Session(self.stack.services.engine) as session:
            incident = session.exec(select(Incident).where(Incident.key_id == key_id)).first()
            return incident.id if incident else None

    def request(self, id_: str, *, user: str, team: str, response_url: str) -> str:
        """The request Slack would send when ``user`` uses ``id_`` on Alice's things."""
        if id_ == Callback.REGISTER:
            values = register_values(
                label="not-mine",
                api_key=self.new_key.api_key,
                secret=self.new_key.secret,
                owner=ALICE,
            )
            return view_submission(id_, values, user_id=user, team_id=team)
        if id_ == Callback.ROTATE:
            metadata = json.dumps({"key_id": self.key_id, "channel": "C0GENERAL"})
            return view_submission(
                id_,
                rotate_form_values(
                    key_type="HMAC",
                    api_key=self.new_key.api_key,
                    secret=self.new_key.secret,
                    confirm=True,
                ),
                user_id=user,
                team_id=team,
                private_metadata=metadata,
            )
        if id_ == Callback.PAIR_COMPLETE:
            typed = {"type": "plain_text_input", "value": self.generated.api_key}
            return view_submission(
                id_,
                {Block.PAIR_API_KEY: {Action.PAIR_API_KEY: typed}},
                user_id=user,
                team_id=team,
                private_metadata=self.pending.pending_id,
            )
        if id_ == Callback.INCIDENT_CLOSE:
            return view_submission(
                id_,
                close_note_values(note="x"),
                user_id=user,
                team_id=team,
                private_metadata=self.incident_id,
            )
        if id_ == Callback.INCIDENT_COMMANDER:  # Bob makes himself the commander
            return view_submission(
                id_,
                commander_values(user=user),
                user_id=user,
                team_id=team,
                private_metadata=self.incident_id,
            )
        if id_ == Action.KEY_MENU:
            return menu_choice(
                f"rotate:{self.key_id}",
                user_id=user,
                team_id=team,
                response_url=response_url,
                trigger_id="123.456.abc",
            )
        value_of: dict[str, str] = {
            Action.STATUS_PAGE: f"{self.report_id}:0",
            Action.INCIDENT_COMMANDER: self.incident_id,
            Action.INCIDENT_SUCCESSOR: self.incident_id,
            Action.INCIDENT_TICK: f"{self.incident_id}:1",
            Action.INCIDENT_CLOSE: self.incident_id,
            Action.INCIDENT_RAISE: self.key_id,
            Action.PAIR_ENTER_KEY: self.pending.pending_id,
            Action.APPROVAL_APPROVE: self.request_id,
            Action.APPROVAL_DENY: self.request_id,
            Action.APPROVAL_WITHDRAW: self.request_id,
        }
        value = value_of.get(id_, self.key_id)
        return block_action(
            id_,
            value,
            user_id=user,
            team_id=team,
            response_url=response_url,
            trigger_id="123.456.abc",
        )


def _settle(stack) -> None:
    """Wait until the bot's work is over (what the scene's requests started)."""
    assert stack.wait_idle(timeout=20), "the bot kept working"


def _answers(stack, response, url: str) -> str:
    """Everything the person was told: the HTTP answer plus what reached the response_url."""
    _settle(stack)
    later = [c.params for c in stack.slack.calls if c.params.get("_response_url") == url]
    return all_text(response.json() if response.text.strip() else {}) + all_text(later)


@dataclass
class _Attempt:
    """One request on Alice's things by someone else, and what it left behind."""

    response: requests.Response
    said: str  # the HTTP answer plus whatever reached the response_url
    denials: list[AuditEvent]
    untouched: bool  # database (audit trail aside) and Binance as they were


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> Iterator[_Scene]:
    """Alice's things on a stack of their own, made once for the refusal tests below (each
    test process that runs them makes its own). Every one of those tests asserts that its
    request left the database (audit trail aside) and Binance as they were, so each finds the
    scene as the first did; what a refusal says or audits is told apart by its own
    response_url and the audit events after its own start."""
    workdir = tmp_path_factory.mktemp("alices-things")
    with start_test_stack(workdir, admin_user_ids=ADMIN, alert_channel=ALERTS) as stack:
        yield _Scene(stack, bot_client(stack))


def _attempt(scene: _Scene, id_: str, *, user: str, team: str) -> _Attempt:
    stack = scene.stack
    client = bot_client(stack)
    _settle(stack)
    before, sim_calls = _database(stack), len(stack.simulator.request_log)
    last = _last_audit_id(stack)
    url = stack.slack.response_url()
    response = client.post(scene.request(id_, user=user, team=team, response_url=url))
    said = _answers(stack, response, url)
    untouched = _without_audit(_database(stack)) == _without_audit(before) and (
        len(stack.simulator.request_log) == sim_calls
    )
    return _Attempt(response, said, _denials(stack, last), untouched)


@pytest.mark.slow  # the scene is a whole local stack
@pytest.mark.parametrize(
    "id_", [i for i in MEMBER_RULES if MEMBER_RULES[i] != OPEN], ids=lambda i: str(i)
)
def test_a_member_who_is_neither_owner_nor_admin_is_refused(scene, id_):
    """Before: a rotate form submitted by such a member started rotating Alice's key."""
    attempt = _attempt(scene, id_, user=BOB, team=TEAM)
    if MEMBER_RULES[id_] == INPUT:
        assert attempt.response.status_code == 404  # no listener: Slack never sends these
        assert attempt.denials == []
    else:
        assert attempt.response.status_code == 200
        said = attempt.said
        assert ("Only" in said and "Nothing was" in said) or "belongs to someone else" in said
        (denial,) = attempt.denials
        assert denial.team_id == TEAM and denial.actor == BOB
    assert attempt.untouched


@pytest.mark.slow  # the scene is a whole local stack
@pytest.mark.parametrize("id_", list(MEMBER_RULES), ids=lambda i: str(i))
def test_a_user_of_another_workspace_is_refused(scene, id_):
    attempt = _attempt(scene, id_, user=EVE, team=OTHER_TEAM)
    assert attempt.response.status_code == 200
    assert "another Slack workspace" in attempt.said
    (denial,) = attempt.denials
    assert denial.team_id == TEAM  # the workspace whose keys were aimed at sees it
    assert denial.actor == EVE and OTHER_TEAM in denial.detail["attempted"]
    assert attempt.untouched


@pytest.mark.parametrize("choice", ["rotate", "remove"])
def test_a_forged_key_menu_choice_cannot_rotate_or_remove_someone_elses_key(stack, client, choice):
    """Bob's menu on Alice's key offers neither; a request naming them anyway is refused,
    audited, and changes nothing."""
    key, _ = register_directly(stack, "alices-key", owner=ALICE)
    _settle(stack)
    before, last = _database(stack), _last_audit_id(stack)
    url = stack.slack.response_url()
    response = client.post(
        menu_choice(f"{choice}:{key.key_id}", user_id=BOB, response_url=url, trigger_id="1.2.a")
    )
    assert response.status_code == 200
    said = _answers(stack, response, url)
    assert "Only its owner <@U0ALICE> or an admin" in said and "Nothing was changed" in said
    (denial,) = _denials(stack, last)
    assert denial.actor == BOB and denial.target_key_id == key.key_id
    assert denial.detail["attempted"] == choice
    assert _without_audit(_database(stack)) == _without_audit(before)
    assert stack.slack.calls_to("views.open") == []


@pytest.mark.parametrize("choice", ["details", "rotate", "report", "incident", "remove"])
def test_a_key_id_of_another_team_in_a_key_menu_is_not_found(stack, client, choice):
    """A real key id, of another workspace's key: as if it did not exist, politely; nothing
    about the key is said, nothing changes."""
    key, _ = register_directly(stack, "theirs", owner=ALICE)
    with stack.services.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE api_keys SET team_id = :t WHERE id = :k"),
            {"t": OTHER_TEAM, "k": key.key_id},
        )
        connection.execute(sa.text("UPDATE binance_accounts SET team_id = :t"), {"t": OTHER_TEAM})
    _settle(stack)
    before = _database(stack)
    url = stack.slack.response_url()
    response = client.post(
        menu_choice(f"{choice}:{key.key_id}", user_id=ADMIN, response_url=url, trigger_id="1.2.a")
    )
    assert response.status_code == 200
    said = _answers(stack, response, url)
    assert "does not exist" in said or "No incident is open" in said, said
    assert "theirs" not in said and key.masked not in said
    assert "Sorry, something went wrong" not in said
    assert _without_audit(_database(stack)) == _without_audit(before)
    assert stack.slack.calls_to("views.open") == []


# --- 5. audit verify: a row without a proper hash is tampering ----------------------------------


@pytest.fixture
def any_stack(database_url, make_stack):
    """A stack on each kind of database (made after it, so stopped before it is dropped)."""
    return make_stack(admin_user_ids=ADMIN, database_url=database_url)


TAMPERING = {
    "inserted": "INSERT INTO audit_events (team_id, at, actor, action, target, detail) "
    "VALUES ('T0TEST', :at, 'U0ALICE', 'key.remove', 'alices-key', '{}')",
    "inserted with an empty hash": "INSERT INTO audit_events "
    "(team_id, at, actor, action, target, detail, prev_hash, hash) "
    "VALUES ('T0TEST', :at, 'U0ALICE', 'key.remove', 'alices-key', '{}', '', '')",
    "edited": "UPDATE audit_events SET actor = 'U0BOB' "
    "WHERE id = (SELECT MIN(id) FROM audit_events)",
    "emptied": "UPDATE audit_events SET hash = NULL, prev_hash = NULL "
    "WHERE id = (SELECT MAX(id) FROM audit_events)",
    "hash blanked": "UPDATE audit_events SET hash = '' "
    "WHERE id = (SELECT MAX(id) FROM audit_events)",
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_audit_verify_reports_rows_without_a_proper_hash(any_stack, tampering):
    """Before: verify skipped rows whose hash was empty, so a forged key.remove inserted into
    the database was shown by `/apikey audit` while verify said "intact"."""
    from storage.models import utcnow

    stack = any_stack
    client = bot_client(stack)
    register_directly(stack, "alices-key", owner=ALICE)
    _, verdict = audit_verdict(stack, ADMIN)
    assert "properly chained" in verdict
    with stack.services.engine.begin() as connection:
        connection.execute(sa.text(TAMPERING[tampering]), {"at": utcnow()})
    trail = all_text(client.command("audit alices-key", user_id=ADMIN).json())
    if tampering.startswith("inserted"):
        assert "removed" in trail  # the forged row is shown by the trail...
    _, verdict = audit_verdict(stack, ADMIN)
    assert "tampered with" in verdict and "✅" not in verdict, verdict  # ...and caught
