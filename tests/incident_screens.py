"""The emergency playbook's screens, as golden cases for tests/test_blocks.py: the live
checklist (open, Binance rejecting the key, handed over, closed as a false alarm), the close
and hand-over forms, the closing summaries and `/apikey incidents`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from bot.blocks.response.incidents import (
    close_modal,
    closed_summary,
    commander_modal,
    commander_note,
    false_alarm_closed_view,
    false_alarm_refused_view,
    incident_message,
    incidents_list,
)
from bot.model.incidents import STEPS, IncidentFacts, IncidentView, StepView
from bot.services.response.incidents import summarise

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
RAISED = NOW - timedelta(minutes=42)
ADMINS = ("U0BOSS",)

OPEN = IncidentFacts(
    id="9f2c4e1a" * 4,
    team_id="T0TEST",
    key_id="k" * 32,
    label="payout-bot",
    account_alias="treasury",
    state="open",
    raised_by="U0MAX",
    raised_at=RAISED,
    raised_in="C0GENERAL",
    activity_since=RAISED - timedelta(days=7),
    key_dead_at=None,
    last_probe_at=NOW - timedelta(minutes=1),
    last_probe_result="alive",
    messages=({"channel": "C0ALERTS", "ts": "1764849600.000100"},),
    other_keys=({"label": "dashboard", "tier": "Read", "status": "active", "checked": True},),
    activity=None,
    closed_by=None,
    closed_at=None,
    close_note=None,
    commander="U0MAX",
    outcome=None,
    permissions_at_raise={"enableReading": True, "enableWithdrawals": True, "ipRestrict": True},
)


def _view(facts: IncidentFacts, ticked: dict[int, str]) -> IncidentView:
    steps = [
        StepView(
            step=s,
            ticked_by=ticked.get(s.number),
            ticked_at=RAISED + timedelta(minutes=5 * s.number) if s.number in ticked else None,
            automatic=ticked.get(s.number) == "bot",
        )
        for s in STEPS
    ]
    return IncidentView(incident=facts, owner_user_id="U0OLIVIA", steps=steps)


HANDED_OVER = replace(OPEN, commander="U0OLIVIA")
# Binance answers -2015: deleted, or the key's IP whitelist no longer admits the bot.
REJECTED = replace(OPEN, key_dead_at=RAISED + timedelta(minutes=9), last_probe_result="rejected")
HANDLED = replace(
    OPEN,
    state="closed",
    key_dead_at=RAISED + timedelta(minutes=9),
    closed_by="U0OLIVIA",
    closed_at=NOW,
    close_note="The key was in a public gist; every key of the account was rotated.",
    outcome="handled",
)
FALSE_ALARM = replace(
    OPEN,
    state="closed",
    closed_by="U0BOSS",
    closed_at=NOW,
    close_note="Max pasted a test key from the docs, not ours.",
    outcome="false_alarm",
)
ALL_DONE = {1: "U0OLIVIA", 2: "U0MAX", 3: "U0OLIVIA", 4: "U0BOSS", 5: "U0BOSS"}

INCIDENT_SCREENS = {
    "incident_checklist_open": lambda: incident_message(
        _view(OPEN, {2: "U0MAX"}), admins=ADMINS, now=NOW
    ),
    "incident_checklist_rejected": lambda: incident_message(
        _view(REJECTED, {2: "U0MAX"}), admins=ADMINS, now=NOW
    ),
    "incident_checklist_handed_over": lambda: incident_message(
        _view(HANDED_OVER, {}), admins=ADMINS, now=NOW
    ),
    "incident_checklist_false_alarm": lambda: incident_message(
        _view(FALSE_ALARM, {}), admins=ADMINS, now=NOW
    ),
    "incident_close_modal_admin": lambda: close_modal(
        OPEN.id, OPEN.label, may_call_false_alarm=True
    ),
    "incident_close_modal_member": lambda: close_modal(
        OPEN.id, OPEN.label, may_call_false_alarm=False
    ),
    "incident_commander_modal": lambda: commander_modal(OPEN.id, OPEN.label, OPEN.commander),
    "incident_commander_note": lambda: commander_note(
        OPEN.label, commander="U0OLIVIA", previous="U0MAX", by="U0BOSS"
    ),
    "incident_summary_handled": lambda: closed_summary(summarise(_view(HANDLED, ALL_DONE))),
    "incident_summary_false_alarm": lambda: closed_summary(summarise(_view(FALSE_ALARM, {}))),
    "incident_false_alarm_closed_view": lambda: false_alarm_closed_view(
        summarise(_view(FALSE_ALARM, {}))
    ),
    "incident_false_alarm_refused_view": lambda: false_alarm_refused_view(
        "Binance reports “payout-bot” differently than before it was reported: the Withdrawals "
        "permission was turned on. Someone changed the key, so it stays marked compromised "
        "and the incident open: follow the checklist."
    ),
    "incidents_list": lambda: incidents_list(
        [OPEN, HANDLED, FALSE_ALARM],
        {OPEN.id: 1},
        len(STEPS),
        links={OPEN.id: "https://example.slack.com/archives/C0ALERTS/p1764849600000100"},
    ),
}
