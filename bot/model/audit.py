"""The audit trail as it is read: entries (never rows of the table) and the chain's verdict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bot.vocabulary import ChainReport, Checkpoint

__all__ = ["AuditEntry", "ChainReport", "Checkpoint", "Witness", "WitnessState"]


class WitnessState(StrEnum):
    NONE = "none"  # no alert channel: nothing outside the database holds checkpoints
    READ = "read"  # the alert channel's checkpoints were read back
    UNREADABLE = "unreadable"  # there is a channel, but Slack did not let the bot read it


@dataclass(frozen=True)
class Witness:
    """What outside the database vouches for the chain: the checkpoints read back."""

    state: WitnessState
    channel: str | None = None
    checkpoints: tuple[Checkpoint, ...] = ()
    problem: str | None = None  # why they could not be read (a Slack error code, say)
    incomplete: bool = False  # the channel's history was longer than the bot reads


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]
