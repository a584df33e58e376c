"""An incident as its checklist shows it: the playbook's steps, who ticked what, and a snapshot
of the incident (never the database row itself)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.model.keys import BINANCE_API_MANAGEMENT
from bot.vocabulary import IncidentOutcome, IncidentState

__all__ = [
    "BINANCE_API_MANAGEMENT",
    "KEY_DELETED_STEP",
    "REJECTED_MEANING",
    "STEPS",
    "ClosedIncident",
    "IncidentFacts",
    "IncidentOutcome",
    "IncidentState",
    "IncidentView",
    "Step",
    "StepView",
]


@dataclass(frozen=True)
class IncidentFacts:
    """What is known of an incident, read once from its row."""

    id: str
    team_id: str
    key_id: str
    label: str
    account_alias: str
    state: str
    raised_by: str
    raised_at: datetime
    raised_in: str | None
    activity_since: datetime
    # Since when Binance rejects the key from the bot's address (None: not seen, or accepted
    # again since); the name predates issue 21: a rejection is not known to be a deletion.
    key_dead_at: datetime | None
    last_probe_at: datetime | None
    last_probe_result: str | None
    messages: tuple[dict[str, Any], ...]
    other_keys: tuple[dict[str, Any], ...]
    activity: dict[str, Any] | None
    closed_by: str | None
    closed_at: datetime | None
    close_note: str | None
    commander: str  # who leads the response (whoever raised it, until handed over)
    outcome: str | None  # IncidentOutcome once closed
    permissions_at_raise: (
        dict[str, Any] | None
    )  # what Binance said the key could do, before the report

    # What the governor did to a governed key (Containment), when it was proven and how.
    containment: str | None = None
    contained_at: datetime | None = None
    containment_note: str | None = None
    successor_key_id: str | None = None  # the key the governor made to replace it

    @property
    def false_alarm(self) -> bool:
        return self.outcome == IncidentOutcome.FALSE_ALARM

    @property
    def time_to_contain(self) -> timedelta | None:
        """From the report to the proof that the key is contained (None: not contained)."""
        if self.contained_at is None:
            return None
        return self.contained_at - self.raised_at


@dataclass(frozen=True)
class Step:
    number: int
    title: str
    detail: str


STEPS = (
    Step(
        1,
        "Delete the compromised key in Binance",
        "In Binance API Management delete this key, and every other key of the account if the "
        "account itself may be breached. The bot says when Binance rejects the key; mark this "
        "done once it is deleted.",
    ),
    Step(2, "Change the Binance account password", "And review 2FA and the account's devices."),
    Step(
        3,
        "Review abnormal trades and withdrawals",
        "The bot posts the account's recent withdrawals and deposits below.",
    ),
    Step(4, "Contact Binance support if assets were lost", "Freeze the account if needed."),
    Step(5, "Investigate the leak source and record it", "Where was the key stored or pasted?"),
)


KEY_DELETED_STEP = 1

# What a rejection (-2015 "Invalid API-key, IP, or permissions for action",
# https://developers.binance.com/docs/binance-spot-api-docs/errors) can mean for a key the bot
# could use before: no more than this, so the bot never calls a rejected key deleted.
REJECTED_MEANING = "deleted, or its IP whitelist no longer admits the bot"


@dataclass(frozen=True)
class StepView:
    step: Step
    ticked_by: str | None
    ticked_at: datetime | None
    automatic: bool


@dataclass(frozen=True)
class IncidentView:
    """Everything the checklist message shows."""

    incident: IncidentFacts
    owner_user_id: str | None
    steps: list[StepView]

    @property
    def done(self) -> int:
        return sum(1 for s in self.steps if s.ticked_by)

    @property
    def all_done(self) -> bool:
        return self.done == len(STEPS)


@dataclass(frozen=True)
class ClosedIncident:
    view: IncidentView
    timeline: list[tuple[datetime, str]]
    time_to_revoke: timedelta | None
    open_questions: list[str]
