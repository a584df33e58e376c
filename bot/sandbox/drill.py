"""The sandbox's workspace for rehearsals: its people, its channels, a clock the console moves,
and ``demo drill``, a scripted walk through a key's life and a leak incident.

The scheduler of the sandbox runs on ``SandboxClock``: this machine's time plus however far the
console has moved it (``advance 1d``), so reminders due in weeks can be seen in a minute, while
the bot's own work due "now" (an incident's Binance checks) runs at the next ``tick``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.sandbox.requests import SANDBOX_CHANNEL, SANDBOX_CHANNEL_NAME, SANDBOX_USER
from storage.models import JobState, ScheduledJob

ALERT_CHANNEL = "C0ALERTS"
ALERT_CHANNEL_NAME = "alerts"


@dataclass(frozen=True)
class Person:
    name: str
    user_id: str
    role: str  # how the banner and `who` describe them


# You are an admin (ADMIN_USER_IDS); Olivia owns the key the drill registers; Max is a member.
PEOPLE = (
    Person("you", SANDBOX_USER, "admin"),
    Person("olivia", "U0OLIVIA", "key owner"),
    Person("max", "U0MAX", "member"),
)
CHANNELS = {SANDBOX_CHANNEL: SANDBOX_CHANNEL_NAME, ALERT_CHANNEL: ALERT_CHANNEL_NAME}
ROLE_NAMES = {"admin": "you", "owner": "olivia", "member": "max"}


def find_person(ref: str) -> Person | None:
    """The person ``ref`` names: @name, a role (admin, owner, member) or a user id."""
    wanted = ref.strip().lstrip("@").lower()
    wanted = ROLE_NAMES.get(wanted, wanted)
    return next((p for p in PEOPLE if wanted in {p.name, p.user_id.lower()}), None)


def channel_id(ref: str) -> str | None:
    """The id of the channel ``ref`` names (#name or an id); None when it is not one."""
    name = ref.strip().lstrip("#").lower()
    for cid, known in CHANNELS.items():
        if name in {known, cid.lower()}:
            return cid
    if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,79}", name):  # Slack's channel-name characters
        return "C0" + re.sub(r"[^A-Z0-9]", "", name.upper())[:9]
    return None


class SandboxClock:
    """This machine's time, moved forward by ``advance``: the clock the scheduler ticks on."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def move_to(self, when: datetime) -> None:
        """Move forward to ``when`` (never back)."""
        self.offset = max(self.offset, when - datetime.now(UTC))


def next_due(engine: Engine) -> datetime | None:
    """When the bot's next pending job is due (None when none is pending)."""
    statement = sa.select(sa.func.min(col(ScheduledJob.due_at))).where(
        col(ScheduledJob.state) == JobState.PENDING.value
    )
    with engine.connect() as connection:
        due = connection.execute(statement).scalar()
    if due is None:
        return None
    return due if due.tzinfo else due.replace(tzinfo=UTC)


UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta | None:
    """``1d``, ``12h``, ``30m``, ``2w`` (or ``1 d``); None when it is not a duration."""
    match = re.fullmatch(r"\s*(\d{1,4})\s*(m|min|h|d|w)\s*", text.lower())
    if not match:
        return None
    return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


# `demo drill`: console lines, run as if typed. Lines starting with "##" are said, not run;
# the answers to a form follow its command, one a line, like a script on stdin.
DRILL = """\
## 1. Olivia, a key owner, registers the trading bot's key (a fake one, made on the simulator).
as @olivia
demo-key hmac trade
/apikey register
drill-bot
demo

2
HMAC
!demo
!demo

/apikey status drill-bot
## 2. Olivia wants it rotated every 16 days. Two days pass: the bot reminds her, 14 days ahead.
/apikey rotate drill-bot every 16d
advance 2d
## 3. Olivia rotates it: a new key made on Binance, pasted into the rotate form.
demo-key hmac trade
/apikey rotate drill-bot
HMAC
!demo
!demo

## Olivia sets the period back to 90 days and deletes the old key in Binance; at its next
##  check (an hour later) the bot completes the rotation.
/apikey rotate drill-bot every 90d
binance delete demo-1
advance 1h
## 4. Max pastes the new key's secret in #sandbox: the bot spots the leak. Olivia raises an
##    incident; its checklist goes to #alerts.
as @max
say #sandbox here is the bot's secret: !demo
as @olivia
/apikey compromised drill-bot
tick
## 5. Olivia deletes the key on Binance; the bot hears Binance reject it and says so. A
##    rejection could also be an IP whitelist without the bot's address, so Olivia, who
##    deleted it, ticks step 1 herself.
binance delete demo-2
advance 1m
press 1
## 6. Several people work the rest of the checklist in #alerts: each presses its first
##    "Mark done" ([1]).
as @max
press 1
as @olivia
press 1
as @you
press 1
press 1
## 7. The admin closes the incident: handled (Enter; an admin may also call it a false
##    alarm), with a note; the summary goes to #alerts.
press 1

Drill: the secret was pasted in #sandbox; key deleted and rotated.
"""


def drill_lines() -> list[str]:
    return DRILL.splitlines()
