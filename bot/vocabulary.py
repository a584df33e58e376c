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
    "ApprovalKind",
    "ApprovalState",
    "AuditAction",
    "DeliveryState",
    "IncidentOutcome",
    "IncidentState",
    "JobState",
    "KeyPurpose",
    "KeyStatus",
    "KeyType",
    "MintState",
    "PageState",
    "PendingPairState",
    "RotationState",
]


class KeyPurpose(StrEnum):
    """What the owner declares the key is for; Binance's answer is compared against it."""

    READ_ONLY = "read_only"
    TRADING = "trading"
    WITHDRAWALS = "withdrawals"
    # A master account's key that manages its sub-accounts' keys through Binance's API (the
    # governor). Binance marks those endpoints TRADE, so it needs Read and Spot & Margin
    # trading, restricted to the bot's own IP addresses; nothing else.
    GOVERNOR = "governor"


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


class ApprovalKind(StrEnum):
    """A change that waits for a second person (APPROVAL_REQUIRED_FOR names these)."""

    MOVES_FUNDS = "moves_funds"  # registering a key with the Withdraw tier or transfer rights
    BEYOND_PURPOSE = "beyond_purpose"  # accepting a key that can do more than its purpose
    DROPS_IP_WHITELIST = "drops_ip_whitelist"  # a rotation whose new key has no IP whitelist
    KEY_EDIT = "key_edit"  # widening a key's declared purpose or giving it another owner
    GOVERNOR = "governor"  # registering a master account's governor key


class ApprovalState(StrEnum):
    OPEN = "open"  # waiting for approvers; the held material is sealed in the row
    APPLIED = "applied"  # approved, re-checked with Binance and carried out
    DENIED = "denied"  # an approver said no: material shredded
    WITHDRAWN = "withdrawn"  # the requester took it back: material shredded
    EXPIRED = "expired"  # nobody decided in time: material shredded
    CHANGED = "changed"  # approved, but Binance's answer changed since: back to the requester


class MintState(StrEnum):
    """A sub-account key the governor creates in Binance: the intent is stored (private key
    sealed) before Binance is asked, so a crash between Binance's answer and the bot's commit
    never leaves a live key nobody knows about."""

    ASKING = "asking"  # Binance is being asked (or the bot died while it was)
    CREATED = "created"  # Binance made the key; it is stored as an api_keys row
    REFUSED = "refused"  # Binance refused: nothing exists there; the private key is shredded
    UNKNOWN = "unknown"  # the bot died or lost the answer: named to the admins for deletion


class Containment(StrEnum):
    """What the governor did to a key reported compromised."""

    CONTAINING = "containing"  # the bot is asking Binance now
    DELETED = "deleted"  # deleted in Binance through the API, proven by a probe
    QUARANTINED = "quarantined"  # its IP list cut to the bot's own addresses
    FAILED = "failed"  # Binance refused or was unreachable: a person must act


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


class AuditAction(StrEnum):
    """What an audit event records as its ``action``. The values are stored, exported (CSV,
    JSON lines) and forwarded to SIEMs: never change one (tests/test_audit_actions.py pins
    them); add new ones."""

    ACCESS_DENIED = "access.denied"
    APPROVAL_APPLIED = "approval.applied"  # quorum reached, re-checked, carried out
    APPROVAL_APPROVE = "approval.approve"  # one approver's yes
    APPROVAL_CHANGED = "approval.changed"  # Binance's answer changed since the request
    APPROVAL_DENY = "approval.deny"
    APPROVAL_EXPIRE = "approval.expire"
    APPROVAL_REFUSED = "approval.refused"  # a forged, replayed or self approval
    APPROVAL_REQUEST = "approval.request"
    APPROVAL_WITHDRAW = "approval.withdraw"
    ACTIVITY_REVIEW = "activity.review"
    AUDIT_CHECKPOINT = "audit.checkpoint"
    AUDIT_KEY_CREATED = "audit.key_created"
    COMMAND_SECRET_REFUSED = "command.secret_refused"  # noqa: S105 - an action name
    CREDENTIALS_DELIVERED = "credentials.delivered"
    CREDENTIALS_DELIVERY_FAILED = "credentials.delivery_failed"
    CREDENTIALS_DELIVERY_REFUSED = "credentials.delivery_refused"
    CREDENTIALS_SINK_CHOSEN = "credentials.sink_chosen"
    DRIFT_CHECK = "drift.check"
    GOVERNOR_CALL = "governor.call"
    GOVERNOR_MINT_UNKNOWN = "governor.mint_unknown"
    INCIDENT_ACTIVITY_REVIEW = "incident.activity_review"
    INCIDENT_CLOSE = "incident.close"
    INCIDENT_COMMANDER = "incident.commander"
    INCIDENT_CONTAINED = "incident.contained"
    INCIDENT_CONTAINMENT_FAILED = "incident.containment_failed"
    INCIDENT_FALSE_ALARM = "incident.false_alarm"
    INCIDENT_FALSE_ALARM_REFUSED = "incident.false_alarm_refused"
    INCIDENT_KEY_ACCEPTED_AGAIN = "incident.key_accepted_again"
    INCIDENT_KEY_DEAD = "incident.key_dead"  # before issue 21 (a rejection taken for a deletion)
    INCIDENT_KEY_REJECTED = "incident.key_rejected"
    INCIDENT_RAISE = "incident.raise"
    INCIDENT_TICK = "incident.tick"
    KEY_ANNOUNCE = "key.announce"
    KEY_CREATE = "key.create"
    KEY_EDIT = "key.edit"
    KEY_REGISTER = "key.register"
    KEY_REMOVE = "key.remove"
    KEY_ROTATE_COMPLETE = "key.rotate_complete"
    KEY_ROTATE_FAILED = "key.rotate_failed"
    KEY_ROTATE_OLD_KEY_ALIVE = "key.rotate_old_key_alive"
    KEY_ROTATE_OLD_KEY_DELETED = "key.rotate_old_key_deleted"
    KEY_ROTATE_OVERLAP_ENDED = "key.rotate_overlap_ended"
    KEY_ROTATE_START = "key.rotate_start"
    KEY_ROTATE_WAITING_FOR_DELIVERY = "key.rotate_waiting_for_delivery"
    KEY_STATUS = "key.status"
    KEYPAIR_EXPIRED = "keypair.expired"
    KEYPAIR_GENERATE = "keypair.generate"
    LEAK_DETECTED = "leak.detected"
    MASTER_KEY_REENCRYPT_BATCH = "master_key.reencrypt_batch"
    MASTER_KEY_RETIRE = "master_key.retire"
    PAGE_REFUSED = "page.refused"
    PAGE_RESOLVED = "page.resolved"
    PAGE_SENT = "page.sent"
    ROTATION_POLICY = "rotation.policy"
    ROTATION_REMINDER = "rotation.reminder"
    ROTATION_SNOOZE = "rotation.snooze"


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
