"""`/apikey edit <label> owner|purpose|account …`: admins correct a key's owner, purpose or
account through signed requests; audited; reminders and findings follow at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from bot.job_queue.scheduler import FixedClock
from storage.models import ApiKey, AuditEvent, BinanceAccount, KeyPurpose, utcnow
from tests.e2e import ALICE, BOB, all_text, register_directly
from tests.factories import TRADE

ADMIN = "U0ADMIN"
ALERTS = "C0ALERTS"


@pytest.fixture
def stack_settings() -> dict[str, object]:
    return dict(alert_channel=ALERTS, admin_user_ids=ADMIN, default_rotation_days=30)


def _edit(stack, client, text: str, *, user: str = ADMIN) -> str:
    return _command(stack, client, f"edit {text}", user=user)


def _command(stack, client, text: str, *, user: str = ADMIN) -> str:
    url = stack.slack.response_url(command=True)
    ack = client.command(text, user_id=user, response_url=url)
    assert ack.status_code == 200
    (reply,) = stack.slack.wait_for(
        "response_url", predicate=lambda c: c.params.get("_response_url") == url, timeout=10
    )
    return all_text(reply.params)


def _key(stack, label="bot") -> ApiKey:
    with Session(stack.services.engine) as session:
        return session.exec(select(ApiKey).where(ApiKey.label == label)).one()


def _edits(stack) -> list[AuditEvent]:
    with Session(stack.services.engine) as session:
        return list(session.exec(select(AuditEvent).where(AuditEvent.action == "key.edit")))


def test_an_admin_gives_a_key_a_new_owner_who_is_told_and_gets_the_reminders(stack, client):
    t0 = utcnow()
    register_directly(stack, "bot", owner=ALICE, now=t0)
    answer = _edit(stack, client, f"bot owner <@{BOB}|bob>")
    assert f"is now <@{BOB}>" in answer and f"was <@{ALICE}>" in answer
    assert _key(stack).owner_user_id == BOB
    (event,) = _edits(stack)
    assert event.actor == ADMIN and event.target == "bot"
    assert event.detail == {"field": "owner", "from": ALICE, "to": BOB}
    assert stack.wait_idle(timeout=10)
    opened = stack.slack.calls_to("conversations.open")
    assert [c.params["users"] for c in opened] == [BOB]
    (note,) = stack.slack.calls_to("chat.postMessage")
    assert "made you the owner" in all_text(note.params) and f"<@{ADMIN}>" in all_text(note.params)
    # The next rotation reminder goes to the new owner, not the old one.
    stack.tick(FixedClock(t0 + timedelta(days=16, minutes=1)))
    dms = [c.params["users"] for c in stack.slack.calls_to("conversations.open")]
    assert dms == [BOB, BOB] or dms == [BOB]  # the DM channel may be reused
    reminder = stack.slack.calls_to("chat.postMessage")[-1]
    assert "due in 14 days" in all_text(reminder.params)


def test_a_purpose_change_reassesses_the_stored_permissions_at_once(stack, client):
    register_directly(stack, "bot", permissions=TRADE)  # declared for trading: no excess
    requests_before = len(stack.simulator.request_log)
    answer = _edit(stack, client, "bot purpose read_only")
    assert "read-only analysis" in answer and "was trading bot" in answer
    assert "beyond" in answer.lower()  # trading rights exceed the new purpose
    assert _key(stack).purpose == "read_only"
    assert len(stack.simulator.request_log) == requests_before  # from what is stored
    (event,) = _edits(stack)
    assert event.detail == {"field": "purpose", "from": "trading", "to": "read_only"}
    # The status report (a fresh Binance check) judges the key against its new purpose too.
    status = _command(stack, client, "status bot")
    assert "beyond" in status.lower() and "read-only analysis" in status


def test_an_admin_moves_a_key_to_another_account(stack, client):
    register_directly(stack, "bot", account="main")
    answer = _edit(stack, client, "bot account sub-1")
    assert "“sub-1”" in answer and "“main”" in answer and "No key was on that account" in answer
    with Session(stack.services.engine) as session:
        account = session.get(BinanceAccount, _key(stack).account_id)
    assert account.alias == "sub-1"
    assert _edits(stack)[0].detail == {"field": "account", "from": "main", "to": "sub-1"}


@pytest.mark.parametrize(
    ("text", "user", "fragment"),
    [
        ("bot owner <@U0BOB>", ALICE, "Only admins"),
        ("bot purpose withdrawals", ALICE, "Only admins"),
        ("ghost owner <@U0BOB>", ADMIN, "No registered key is labelled “ghost”"),
        ("bot owner <@U0NOBODY>", ADMIN, "not a member of this workspace"),
        ("bot owner @bob", ADMIN, "mention list"),
        ("bot purpose admin", ADMIN, "not a purpose"),
        ("bot purpose trading", ADMIN, "already declared"),
        ("bot owner <@U0ALICE>", ADMIN, "already owns"),
        ("bot account main", ADMIN, "already belongs"),
        ("bot colour blue", ADMIN, "What should change?"),
    ],
)
def test_bad_edits_are_refused_politely_and_change_nothing(stack, client, text, user, fragment):
    register_directly(stack, "bot", owner=ALICE, account="main")
    before = _key(stack)
    url = stack.slack.response_url(command=True)
    ack = client.command(f"edit {text}", user_id=user, response_url=url)
    assert ack.status_code == 200
    answers = all_text(ack.json()) if ack.text else ""
    if fragment not in answers:
        (reply,) = stack.slack.wait_for(
            "response_url", predicate=lambda c: c.params.get("_response_url") == url, timeout=10
        )
        answers = all_text(reply.params)
    assert fragment in answers
    assert "Traceback" not in answers
    assert stack.wait_idle(timeout=10)
    after = _key(stack)
    assert (after.owner_user_id, after.purpose, after.account_id) == (
        before.owner_user_id,
        before.purpose,
        before.account_id,
    )
    assert _edits(stack) == []
    assert stack.slack.calls_to("chat.postMessage") == []


def _finding_lines(text: str) -> set[str]:
    """The findings of a message (``all_text``'s JSON): its lines that begin with a severity
    icon, in any text of its blocks."""
    import json
    import re

    from bot.blocks.text import SEVERITY_ICON

    icons = tuple(SEVERITY_ICON.values())

    def texts(node) -> list[str]:
        if isinstance(node, dict):
            return [t for value in node.values() for t in texts(value)]
        if isinstance(node, list):
            return [t for value in node for t in texts(value)]
        return [node] if isinstance(node, str) else []

    blocks = json.loads(text).get("blocks") or []
    lines = (line.strip() for t in texts(blocks) for line in t.splitlines())
    heading = re.compile(r"^\S+ \*[^*]+\* · ")  # a key's own line: "🔴 *vault* · Withdraw tier"
    return {line for line in lines if line.startswith(icons) and not heading.match(line)}


def test_an_edit_answers_with_the_findings_status_then_shows(stack, client):
    """A Withdraw-tier HMAC key whose account has no whitelisted withdrawal address: the edit's
    answer lists every finding the status report that follows lists, not a subset."""
    from tests.factories import WITHDRAW

    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    register_directly(stack, "payouts", permissions=WITHDRAW, account="treasury")
    _command(stack, client, "status all")  # Binance asked once: what it said is stored
    for edit in ("vault purpose trading", f"vault owner <@{BOB}|bob>", "vault account treasury"):
        answer = _edit(stack, client, edit)
        status = _command(stack, client, "status vault")
        shown, expected = _finding_lines(answer), _finding_lines(status)
        assert expected, status
        assert shown == expected, (edit, shown, expected)


def test_moving_a_key_to_an_account_never_read_says_its_whitelist_is_not_known_yet(stack, client):
    from tests.factories import WITHDRAW

    register_directly(stack, "vault", permissions=WITHDRAW, purpose=KeyPurpose.WITHDRAWALS)
    _command(stack, client, "status vault")
    answer = _edit(stack, client, "vault account cold-storage")
    assert "not read yet for the account “cold-storage”" in answer
    assert "is off" not in answer  # the old account's reading is not the new one's
