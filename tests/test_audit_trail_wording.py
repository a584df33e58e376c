"""The audit trail reads as sentences: one event of every AuditAction, with the detail its
writer stores (grep ``record_event(`` / ``record_events(``), rendered and read like a person
would, with nothing raw: no Slack id outside a mention, no Python literal, no internal step
name, no ISO timestamp."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from bot.blocks.audit import audit_trail
from bot.blocks.message import Message
from bot.model.audit import AuditEntry
from bot.vocabulary import AuditAction

AT = datetime(2026, 12, 1, 9, 30, 12, 345678, tzinfo=UTC)
INCIDENT = "0123456789abcdef0123456789abcdef"
PENDING = "fedcba9876543210fedcba9876543210"
LATER = "2026-12-10T06:46:01.243478+00:00"

# One detail dict per action, with the keys (and kinds of values) its writer stores.
DETAILS: dict[AuditAction, dict[str, object]] = {
    AuditAction.ACCESS_DENIED: {"attempted": "read the audit trail"},
    AuditAction.APPROVAL_APPLIED: {
        "request": "f" * 32,
        "change": "register",
        "approved_by": ["U0OLIVIA"],
    },
    AuditAction.APPROVAL_APPROVE: {"request": "f" * 32, "approvals": 1, "quorum": 2},
    AuditAction.APPROVAL_CHANGED: {
        "request": "f" * 32,
        "change": "rotate",
        "shredded": True,
        "outcome": "Binance's answer about the key changed",
    },
    AuditAction.APPROVAL_DENY: {
        "request": "f" * 32,
        "change": "edit",
        "shredded": True,
        "outcome": None,
    },
    AuditAction.APPROVAL_EXPIRE: {
        "request": "f" * 32,
        "change": "register",
        "shredded": True,
        "outcome": None,
    },
    AuditAction.APPROVAL_REFUSED: {"request": "f" * 32, "reason": "self-approval"},
    AuditAction.APPROVAL_REQUEST: {
        "request": "f" * 32,
        "change": "register",
        "kinds": ["moves_funds"],
        "at_stake": ["It can move funds: Withdrawals", "IP whitelist: yes"],
        "masked": "vmPU…Eh8A",
        "quorum": 1,
        "expires_at": LATER,
    },
    AuditAction.APPROVAL_WITHDRAW: {
        "request": "f" * 32,
        "change": "create",
        "shredded": True,
        "outcome": None,
    },
    AuditAction.ACTIVITY_REVIEW: {
        "accounts_checked": 3,
        "withdrawals": 5,
        "reported": 2,
        "new_addresses": 1,
        "large": 1,
        "could_not_check": ["main", "hedge"],
        "posted": True,
    },
    AuditAction.AUDIT_CHECKPOINT: {},
    AuditAction.AUDIT_KEY_CREATED: {"rekeyed_events": 0, "old_chain_broken_at": None},
    AuditAction.COMMAND_SECRET_REFUSED: {"matched_registered_key": False},
    AuditAction.CREDENTIALS_DELIVERED: {
        "sink": "file",
        "destination": "/run/secrets/bot.json",
        "version": 2,
        "sink_version": None,
        "masked": "vmPU…Eh8A",
        "attempts": 1,
        "reason": "rotation",
    },
    AuditAction.CREDENTIALS_DELIVERY_FAILED: {
        "sink": "aws",
        "destination": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:bot",
        "version": 3,
        "reason": "AccessDenied",
    },
    AuditAction.CREDENTIALS_DELIVERY_REFUSED: {
        "sink": "file",
        "destination": "/run/secrets/bot.json",
        "held_by": "other-bot",
    },
    AuditAction.CREDENTIALS_SINK_CHOSEN: {
        "sink": None,
        "previous": "file",
        "destination": None,
    },
    AuditAction.DRIFT_CHECK: {"checked": 12, "changes": 0, "could_not_check": 1},
    AuditAction.GOVERNOR_CALL: {
        "method": "DELETE",
        "endpoint": "/sapi/v1/sub-account/subAccountApi",
        "sub_account": "bot1@example.com",
        "key": "abcd…wxyz",
        "governor": "gov1…gov2",
        "outcome": "ok",
        "why": "contain",
        "label": "trading-bot",
        "incident_id": INCIDENT,
    },
    AuditAction.GOVERNOR_MINT_UNKNOWN: {
        "sub_account": "bot1@example.com",
        "api_name": "trading-bot-2",
        "started_at": LATER,
    },
    AuditAction.INCIDENT_ACTIVITY_REVIEW: {
        "incident": INCIDENT,
        "rows": 4,
        "new_addresses": 1,
        "source": "hedge-reader",
    },
    AuditAction.INCIDENT_CLOSE: {
        "incident": INCIDENT,
        "binance": "rejects the key",
        "shredded": True,
        "key_status": "revoked",
    },
    AuditAction.INCIDENT_COMMANDER: {"incident": INCIDENT, "from": "U0SANDBOX", "to": "U0OLIVIA"},
    AuditAction.INCIDENT_CONTAINED: {
        "incident": INCIDENT,
        "how": "quarantined",
        "seconds_from_report": 4.25,
        "binance": "ip list set",
    },
    AuditAction.INCIDENT_CONTAINMENT_FAILED: {"incident": INCIDENT, "why": "Binance said -2015"},
    AuditAction.INCIDENT_FALSE_ALARM: {
        "incident": INCIDENT,
        "proof": "Binance accepts the key and reports the same permissions and IP restriction",
        "key_status": "active",
    },
    AuditAction.INCIDENT_FALSE_ALARM_REFUSED: {
        "incident": INCIDENT,
        "reason": "its permissions changed",
    },
    AuditAction.INCIDENT_KEY_ACCEPTED_AGAIN: {"incident": INCIDENT},
    AuditAction.INCIDENT_KEY_DEAD: {"incident": INCIDENT},
    AuditAction.INCIDENT_KEY_REJECTED: {
        "incident": INCIDENT,
        "binance": "-2015 Invalid API-key, IP, or permissions for action.",
        "meaning": "deleted, or this bot's address is not on the key's IP list",
    },
    AuditAction.INCIDENT_RAISE: {"incident": INCIDENT, "masked": "vmPU…Eh8A"},
    AuditAction.INCIDENT_TICK: {"incident": INCIDENT, "step": 2},
    AuditAction.KEY_ANNOUNCE: {
        "what": "registered",
        "tier": "WITHDRAW",
        "channel": "C0ALERTS",
        "told": ["U0SANDBOX"],
    },
    AuditAction.KEY_CREATE: {
        "sub_account": "bot1@example.com",
        "api_name": "trading-bot-2",
        "masked": "abcd…wxyz",
        "grant": {"can_trade": True, "can_futures_trade": False},
        "ip_addresses": ["203.0.113.7", "203.0.113.8"],
        "reason": "rotate",
    },
    AuditAction.KEY_EDIT: {"field": "owner", "from": "U0ALICE", "to": "U0BOB"},
    AuditAction.KEY_REGISTER: {
        "owner": "U0OLIVIA",
        "purpose": "trading",
        "key_type": "ED25519",
        "account": "main",
        "masked": "vmPU…Eh8A",
        "tier": "TRADE",
        "confirmed_beyond_purpose": False,
        "accepted": [],
        "announced": False,
    },
    AuditAction.KEY_REMOVE: {"masked": "vmPU…Eh8A", "announced": True},
    AuditAction.KEY_ROTATE_COMPLETE: {"old": "vmPU…Eh8A", "proof": "Binance rejects the old key"},
    AuditAction.KEY_ROTATE_OLD_KEY_ALIVE: {"old": "vmPU…Eh8A"},
    AuditAction.KEY_ROTATE_FAILED: {
        "step": "delete old",
        "why": "Binance could not be reached. Try again later.",
        "retry_at": LATER,
    },
    AuditAction.KEY_ROTATE_OLD_KEY_DELETED: {"old": "vmPU…Eh8A", "early": True},
    AuditAction.KEY_ROTATE_OVERLAP_ENDED: {"old": "vmPU…Eh8A"},
    AuditAction.KEY_ROTATE_START: {
        "old": "vmPU…Eh8A",
        "new": "abcd…wxyz",
        "tier": "TRADE",
        "confirmed_more_permissions": True,
        "accepted": ["its Trade tier exceeds the declared purpose (read-only analysis)"],
    },
    AuditAction.KEY_ROTATE_WAITING_FOR_DELIVERY: {"old": "vmPU…Eh8A", "sink": "aws"},
    AuditAction.KEY_STATUS: {"keys": 3, "critical": 1, "warnings": 0, "unknown": 1},
    AuditAction.KEYPAIR_EXPIRED: {"pending": PENDING, "created_by": "U0ALICE", "shredded": True},
    AuditAction.KEYPAIR_GENERATE: {
        "pending": PENDING,
        "rotation": False,
        "algorithm": "Ed25519",
        "owner": "U0ALICE",
        "purpose": "read_only",
        "expires_at": LATER,
    },
    AuditAction.LEAK_DETECTED: {"matched_registered_key": True},
    AuditAction.MASTER_KEY_REENCRYPT_BATCH: {
        "table": "api_keys",
        "rows": 12,
        "to_key": "k2",
        "from_keys": ["k1"],
    },
    AuditAction.MASTER_KEY_RETIRE: {"key": "k1"},
    AuditAction.PAGE_REFUSED: {
        "dedup_key": "page:trigger:abc",
        "reason": "incident",
        "destinations": ["opsgenie"],
    },
    AuditAction.PAGE_RESOLVED: {
        "dedup_key": "page:resolve:abc",
        "reason": "incident",
        "destinations": ["pagerduty", "opsgenie"],
    },
    AuditAction.PAGE_SENT: {
        "dedup_key": "page:trigger:abc",
        "reason": "incident",
        "destinations": ["pagerduty"],
    },
    AuditAction.ROTATION_POLICY: {"period_days": 30, "previous_period_days": None},
    AuditAction.ROTATION_REMINDER: {"step": "lead_14d", "late": True, "owner_gone": False},
    AuditAction.ROTATION_SNOOZE: {"until": LATER},
}

FORBIDDEN = {
    "a Python literal": re.compile(r"\b(True|False|None)\b|\[\]|\{\}|\['|\{'"),
    "an ISO timestamp": re.compile(r"\d{4}-\d{2}-\d{2}T\d|\d:\d{2}:\d{2}\.\d"),
    "a Slack id outside a mention": re.compile(r"(?<![@#])\b[UWC]0[A-Z0-9]{3,}\b"),
    "an internal name": re.compile(r"\b[a-z]+_[a-z0-9_]+\b"),
    "a whole internal id": re.compile(r"[0-9a-f]{32}"),
    "a doubled or stray period, or a gap": re.compile(r"\.\.|\. \(|  |: \("),
}


def _rendered(action: AuditAction, detail: dict[str, object]) -> str:
    entry = AuditEntry(
        id=1, at=AT, actor="U0SANDBOX", action=action.value, target="trading-bot", detail=detail
    )
    payload = audit_trail([entry], label=None, days=7).as_kwargs()
    return "\n".join(block["text"]["text"] for block in payload["blocks"][1:])


def test_every_action_has_a_detail_here():
    assert set(DETAILS) == set(AuditAction)


@pytest.mark.parametrize("action", list(AuditAction), ids=lambda a: a.value)
def test_every_action_reads_as_a_sentence_with_nothing_raw(action):
    text = _rendered(action, DETAILS[action])
    for what, pattern in FORBIDDEN.items():
        found = pattern.search(text)
        assert found is None, f"{what} ({found.group(0)!r}) in: {text}"
    assert "`2026-12-01 09:30 UTC`" in text and "<@U0SANDBOX>" in text
    for key in DETAILS[action]:  # every stored key is said in the sentence, not listed
        listed = re.compile(rf"(?<!\d )\b{re.escape(key.replace('_', ' '))}: ")
        assert not listed.search(text), (key, text)
    assert text.rstrip().endswith("."), text


def test_people_channels_lists_and_times_read_in_words():
    told = _rendered(AuditAction.KEY_ANNOUNCE, DETAILS[AuditAction.KEY_ANNOUNCE])
    assert "<#C0ALERTS>" in told and "<@U0SANDBOX>" in told
    handed = _rendered(AuditAction.INCIDENT_COMMANDER, DETAILS[AuditAction.INCIDENT_COMMANDER])
    assert "from <@U0SANDBOX> to <@U0OLIVIA>" in handed
    paged = _rendered(AuditAction.PAGE_RESOLVED, DETAILS[AuditAction.PAGE_RESOLVED])
    assert "pagerduty and opsgenie" in paged
    review = _rendered(AuditAction.ACTIVITY_REVIEW, DETAILS[AuditAction.ACTIVITY_REVIEW])
    assert "main and hedge" in review
    snooze = _rendered(AuditAction.ROTATION_SNOOZE, DETAILS[AuditAction.ROTATION_SNOOZE])
    assert "2026-12-10 06:46 UTC" in snooze
    reminder = _rendered(AuditAction.ROTATION_REMINDER, DETAILS[AuditAction.ROTATION_REMINDER])
    assert "14 days before" in reminder and "late" in reminder
    rotated = _rendered(AuditAction.KEY_ROTATE_START, DETAILS[AuditAction.KEY_ROTATE_START])
    assert "exceeds the declared purpose" in rotated


def test_an_unknown_detail_is_still_shown_without_python_values():
    text = _rendered(
        AuditAction.KEY_REMOVE,
        {"masked": "vmPU…Eh8A", "announced": False, "later_flag": True, "people": ["U0BOB"]},
    )
    assert "True" not in text and "['" not in text and "<@U0BOB>" in text
    assert json.dumps(text)  # renders at all


def incident_trail() -> Message:
    """Raised, handed over, reviewed, ticked, closed as a false alarm: the screen an admin
    reads (golden: tests/golden/audit_trail_incident.json, via tests/test_blocks.py)."""
    steps = [
        ("U0SANDBOX", AuditAction.INCIDENT_RAISE),
        ("U0SANDBOX", AuditAction.INCIDENT_COMMANDER),
        ("bot", AuditAction.INCIDENT_ACTIVITY_REVIEW),
        ("U0OLIVIA", AuditAction.INCIDENT_TICK),
        ("U0OLIVIA", AuditAction.INCIDENT_FALSE_ALARM),
    ]
    events = [
        AuditEntry(
            id=n,
            at=AT.replace(minute=30 + n),
            actor=actor,
            action=action.value,
            target="trading-bot",
            detail=DETAILS[action],
        )
        for n, (actor, action) in enumerate(steps, start=1)
    ]
    return audit_trail(list(reversed(events)), label="trading-bot", days=7)


def test_the_incident_timeline_has_every_hand_over_and_the_false_alarm():
    text = json.dumps(incident_trail().as_kwargs(), ensure_ascii=False)
    assert "handed over the incident command" in text and "as a false alarm" in text
    assert "from <@U0SANDBOX> to <@U0OLIVIA>" in text
