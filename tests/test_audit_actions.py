"""Audit actions are one enum (bot.vocabulary.AuditAction) whose stored values never change:
exports (CSV, JSON lines) and SIEMs read them. These tests pin the values, make every write
go through the enum, and read them back from a real export."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bot.blocks.audit import ACTION_WORDS
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.db import session_scope
from tests.test_audit_export import _export

ROOT = Path(__file__).resolve().parent.parent

# The stored values as exports and SIEM rules know them. Add new actions here; never edit or
# remove one (old events keep their action, and rules downstream match on it).
PINNED = {
    "access.denied",
    "approval.applied",
    "approval.approve",
    "approval.changed",
    "approval.deny",
    "approval.expire",
    "approval.refused",
    "approval.request",
    "approval.withdraw",
    "activity.review",
    "audit.checkpoint",
    "audit.key_created",
    "command.secret_refused",
    "credentials.delivered",
    "credentials.delivery_failed",
    "credentials.delivery_refused",
    "credentials.sink_chosen",
    "drift.check",
    "governor.call",
    "governor.mint_unknown",
    "incident.activity_review",
    "incident.close",
    "incident.commander",
    "incident.contained",
    "incident.containment_failed",
    "incident.false_alarm",
    "incident.false_alarm_refused",
    "incident.key_accepted_again",
    "incident.key_dead",
    "incident.key_rejected",
    "incident.raise",
    "incident.tick",
    "key.announce",
    "key.create",
    "key.edit",
    "key.register",
    "key.remove",
    "key.rotate_complete",
    "key.rotate_failed",
    "key.rotate_old_key_alive",
    "key.rotate_old_key_deleted",
    "key.rotate_overlap_ended",
    "key.rotate_start",
    "key.rotate_waiting_for_delivery",
    "key.status",
    "keypair.expired",
    "keypair.generate",
    "leak.detected",
    "master_key.reencrypt_batch",
    "master_key.retire",
    "page.refused",
    "page.resolved",
    "page.sent",
    "rotation.policy",
    "rotation.reminder",
    "rotation.snooze",
}


def test_the_stored_values_are_pinned():
    assert {action.value for action in AuditAction} == PINNED


def test_every_action_reads_as_words_in_the_trail():
    assert set(ACTION_WORDS) == set(AuditAction)


def test_no_action_is_written_as_free_text():
    """Every audit write names an AuditAction member: no "x.y" literal as an action."""
    literal = re.compile(r"""(?:\baction\s*=\s*|["']action["']\s*:\s*)["'][a-z_]+\.[a-z_.]+["']""")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in ("bot", "storage")
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if literal.search(line)
    ]
    assert not offenders, offenders


def test_an_unknown_action_is_refused_before_anything_is_written(engine):
    with pytest.raises(ValueError), session_scope(engine) as session:
        record_event(session, team_id="T0TEST", actor="U0A", action="key.regster")


def test_every_action_leaves_the_export_as_it_is_stored(engine, database_url, tmp_path):
    with session_scope(engine) as session:
        for action in AuditAction:
            record_event(session, team_id="T0TEST", actor="U0ALICE", action=action)
    result = _export(database_url, tmp_path, "--since", "1d", "--output", "trail.jsonl")
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "trail.jsonl").read_text(encoding="utf-8").splitlines()
    exported = [json.loads(line)["action"] for line in lines]
    assert [a for a in exported if a in PINNED] == [a.value for a in AuditAction]
