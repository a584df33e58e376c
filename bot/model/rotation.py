"""Rotation as people see it: each key's schedule, who a reminder goes to, a started rotation."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bot.binance import permissions as binance
from bot.model.findings import Finding


class RotationState(StrEnum):
    OK = "ok"
    DUE_SOON = "due soon"
    OVERDUE = "overdue"
    ROTATING = "rotating"


@dataclass(frozen=True)
class RotationRow:
    key_id: str
    label: str
    owner_user_id: str | None
    period_days: int
    last_rotated_at: datetime
    due_at: datetime
    state: RotationState
    snoozed_until: datetime | None

    def days_left(self, now: datetime) -> int:
        """Days until due, rounded up (negative: whole days overdue; 0: due today)."""
        seconds = (self.due_at - now).total_seconds()
        if seconds > 0:
            return math.ceil(seconds / 86400)
        return -math.floor(-seconds / 86400)


class Audience(StrEnum):
    OWNER = "owner"  # a direct message to the owner
    CHANNEL_OWNER = "channel_owner"  # the alert channel, mentioning the owner
    CHANNEL_ADMINS = "channel_admins"  # … and the admins
    CHANNEL_ALL = "channel_all"  # … and the whole channel


@dataclass(frozen=True)
class RotationStarted:
    rotation_id: str
    label: str
    old_masked: str
    new_masked: str
    permissions: binance.KeyPermissions
    findings: list[Finding]
    grace_until: datetime
    # Where the new credentials are being written for the service (None: delivered nowhere),
    # e.g. 'AWS Secrets Manager `apikey-bot/main/bot`'.
    delivered_to: str | None = None
