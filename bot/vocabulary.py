"""The words the database stores: the kinds and states of keys, jobs, rotations, deliveries,
generated key pairs, incidents and pages, as plain string enums.

At the bottom of the bot's layers, with no ORM import: ``storage`` persists these values,
``bot.model`` (the typed results that blocks render) names them, and neither has to import the
other for it. The values are stored: never change one without a migration."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

__all__ = [
    "DeliveryState",
    "IncidentOutcome",
    "IncidentState",
    "JobState",
    "KeyPurpose",
    "KeyStatus",
    "KeyType",
    "PageState",
    "PendingPairState",
    "RotationState",
]


class KeyPurpose(StrEnum):
    """What the owner declares the key is for; Binance's answer is compared against it."""

    READ_ONLY = "read_only"
    TRADING = "trading"
    WITHDRAWALS = "withdrawals"


class KeyType(StrEnum):
    HMAC = "HMAC"
    ED25519 = "ED25519"
    RSA = "RSA"


class KeyStatus(StrEnum):
    ACTIVE = "active"
    ROTATING = "rotating"
    COMPROMISED = "compromised"
    REVOKED = "revoked"
    REMOVED = "removed"


class JobState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    CANCELLED = "cancelled"


class RotationState(StrEnum):
    PROBING = "probing"  # new key stored; waiting for Binance to reject the old one
    COMPLETE = "complete"
    ABANDONED = "abandoned"


class DeliveryState(StrEnum):
    PENDING = "pending"  # not written yet (or failing: see first_failed_at), retried
    DELIVERED = "delivered"  # the sink confirmed this version
    SUPERSEDED = "superseded"  # newer credentials (or another sink) replaced it before
    CANCELLED = "cancelled"  # the key was removed, revoked or stopped being delivered


class PendingPairState(StrEnum):
    PENDING = "pending"  # the public key is with the person, waiting for Binance's API key
    COMPLETED = "completed"  # registered: the private key moved, sealed, into api_keys
    EXPIRED = "expired"  # not completed in time: the private key was shredded


class IncidentState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class IncidentOutcome(StrEnum):
    """How a closed incident ended."""

    HANDLED = "handled"  # the key leaked (or may have): the checklist was followed to the end
    FALSE_ALARM = "false_alarm"  # it did not leak: Binance showed it unchanged, back in use


class PageState(StrEnum):
    OPEN = "open"  # triggered; resolved when its condition clears
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head as it was at one moment, kept outside the database (a witness)."""

    events: int  # how many events the chain held
    head: str  # the MAC of the last of them (GENESIS when none)
    at: datetime
    head_id: int | None = None  # the id of that event, for people reading the report


@dataclass(frozen=True)
class ChainReport:
    events: int  # rows in the table (all of them were read)
    broken_at: int | None  # id of the first event that does not fit the chain
    reason: str | None
    checkpoints_checked: int = 0
    # What the checkpoints show that the chain cannot: deleted newest events, a rollback.
    witness_problems: tuple[str, ...] = field(default=())
    verified: int = 0  # events that fit the chain, before the first that does not

    @property
    def ok(self) -> bool:
        return self.broken_at is None and not self.witness_problems
