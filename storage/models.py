"""SQLModel tables. Tables are created by the Alembic migrations, never by ``create_all``.

Secrets live only in ``*_sealed`` columns (see storage.crypto); the API key itself is sealed
too and is findable through a keyed fingerprint, never stored in clear.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# The stored enums are the bot's vocabulary (bot/vocabulary.py), re-exported here for the
# code that reads them with the rows.
from bot.vocabulary import (
    ApprovalState as ApprovalState,
)
from bot.vocabulary import (
    Containment as Containment,
)
from bot.vocabulary import (
    DeliveryState as DeliveryState,
)
from bot.vocabulary import (
    IncidentOutcome as IncidentOutcome,
)
from bot.vocabulary import (
    IncidentState as IncidentState,
)
from bot.vocabulary import (
    JobState as JobState,
)
from bot.vocabulary import (
    KeyPurpose as KeyPurpose,
)
from bot.vocabulary import (
    KeyStatus as KeyStatus,
)
from bot.vocabulary import (
    KeyType as KeyType,
)
from bot.vocabulary import (
    MintState as MintState,
)
from bot.vocabulary import (
    PageState as PageState,
)
from bot.vocabulary import (
    PendingPairState as PendingPairState,
)
from bot.vocabulary import (
    RotationState as RotationState,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc_column(*, nullable: bool, index: bool = False) -> Any:
    return sa.Column(UTCDateTime(), nullable=nullable, index=index)


# Statuses whose label is free to be used again by a new registration.
RETIRED_STATUSES = (KeyStatus.REVOKED.value, KeyStatus.REMOVED.value)


class BinanceAccount(SQLModel, table=True):
    __tablename__ = "binance_accounts"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "alias", name="uq_binance_accounts_team_alias"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    alias: str = Field(max_length=80)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(nullable=False))
    # Whether any saved withdrawal address of the account is whitelisted (``whiteStatus``), as
    # last read from Binance's address list (None: never read), and when it was read. The
    # account's whitelist switch itself is not in Binance's API.
    withdraw_whitelist: bool | None = Field(default=None)
    withdraw_whitelist_checked_at: datetime | None = Field(
        default=None, sa_column=_utc_column(nullable=True)
    )
    # The daily activity review has covered the account's withdrawals up to this moment.
    activity_reviewed_until: datetime | None = Field(
        default=None, sa_column=_utc_column(nullable=True)
    )
    # A sub-account of a master account the bot governs: the master's account row and the
    # sub-account's email, which names it in Binance's sub-account API (None: not governed).
    master_account_id: str | None = Field(default=None, index=True, max_length=32)
    sub_account_email: str | None = Field(default=None, max_length=254)


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        sa.Index(
            "uq_api_keys_team_label_live",
            "team_id",
            "label",
            unique=True,
            sqlite_where=sa.text("status NOT IN ('revoked', 'removed')"),
            postgresql_where=sa.text("status NOT IN ('revoked', 'removed')"),
        ),
        # One live row per API key, even when replicas register it at the same moment.
        sa.Index(
            "uq_api_keys_team_fingerprint_live",
            "team_id",
            "api_key_fingerprint",
            unique=True,
            sqlite_where=sa.text("status NOT IN ('revoked', 'removed')"),
            postgresql_where=sa.text("status NOT IN ('revoked', 'removed')"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    label: str = Field(max_length=80)
    account_id: str = Field(foreign_key="binance_accounts.id", index=True, max_length=32)
    owner_user_id: str | None = Field(default=None, index=True, max_length=32)
    purpose: str = Field(max_length=16)
    key_type: str = Field(max_length=8)
    status: str = Field(default=KeyStatus.ACTIVE.value, index=True, max_length=16)

    # Sealed material: both sealed under the same master key, named by seal_key_id.
    api_key_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    secret_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    seal_key_id: str | None = Field(default=None, index=True, max_length=64)
    api_key_masked: str = Field(max_length=16)
    api_key_fingerprint: str | None = Field(default=None, index=True, max_length=64)
    secret_fingerprint: str | None = Field(default=None, index=True, max_length=64)

    # The last answer Binance gave about this key (KeyPermissions.to_dict()) and when.
    permissions_json: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    permissions_checked_at: datetime | None = Field(
        default=None, sa_column=_utc_column(nullable=True)
    )
    # The outcome of the last check: "ok", "rejected" or "unknown" (Binance not reachable).
    last_check_result: str | None = Field(default=None, max_length=16)

    created_by: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(nullable=False))
    last_rotated_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # Rotation policy: the key is due `rotation_period_days` after `last_rotated_at`.
    rotation_period_days: int = Field(default=90, sa_column_kwargs={"server_default": "90"})
    snoozed_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # Where its credentials are delivered for the service that uses them ("file", "aws"; see
    # bot.sinks), or None: kept by the bot only.
    delivery_sink: str | None = Field(default=None, max_length=16)
    # Made by the governor through Binance's sub-account API (None: made by a person), with
    # the trusted IP addresses it was given (None: unrestricted; Binance's permission answer
    # never lists them).
    created_via: str | None = Field(default=None, max_length=16)
    ip_addresses: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))

    def secret_context(self) -> str:
        return f"api_key:{self.id}:secret"

    def api_key_context(self) -> str:
        return f"api_key:{self.id}:api_key"


class AuditEvent(SQLModel, table=True):
    """Who did what to which key, when and from where. Never holds a secret."""

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    team_id: str = Field(index=True, max_length=32)
    at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(nullable=False, index=True))
    actor: str = Field(max_length=64)
    action: str = Field(index=True, max_length=64)
    target: str | None = Field(default=None, max_length=200)
    target_key_id: str | None = Field(default=None, index=True, max_length=32)
    source: str | None = Field(default=None, max_length=200)
    detail: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    # MAC chain (storage.audit): hash = HMAC-SHA256(audit key, prev_hash + this event), hex.
    prev_hash: str | None = Field(default=None, max_length=64)
    hash: str | None = Field(default=None, max_length=64)


class AuditKey(SQLModel, table=True):
    """The key that MACs the audit chain: random bytes, sealed under the master key ring like
    any secret (so re-encryption and KMS envelope sealing carry it across a master-key
    rotation). One row, written once at first start-up (see storage.audit_key)."""

    __tablename__ = "audit_keys"

    id: int = Field(default=1, primary_key=True)
    sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary, nullable=True))
    seal_key_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(nullable=False))

    def mac_key_context(self) -> str:
        return f"audit_key:{self.id}"


class CryptoCanary(SQLModel, table=True):
    """A known plaintext sealed under each master key: proves at start-up the keys still open."""

    __tablename__ = "crypto_canaries"

    key_id: str = Field(primary_key=True, max_length=64)
    sealed: bytes = Field(sa_column=sa.Column(sa.LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(nullable=False))


class StatusReportRecord(SQLModel, table=True):
    """A rendered-once status report, kept briefly so its pages can be browsed with buttons.

    Holds what Binance said about the keys (permissions, findings), never key material.
    """

    __tablename__ = "status_reports"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    requested_by: str = Field(max_length=32)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=_utc_column(nullable=False, index=True)
    )
    payload: dict[str, Any] = Field(sa_column=sa.Column(sa.JSON, nullable=False))


class ScheduledJob(SQLModel, table=True):
    """A unit of scheduled work (a reminder, a probe) with a due time.

    Every replica runs the same loop and claims due rows with a lease; ``dedupe_key`` makes
    "at most one reminder per key per step" a database guarantee.
    """

    __tablename__ = "scheduled_jobs"
    __table_args__ = (
        sa.UniqueConstraint("dedupe_key", name="uq_scheduled_jobs_dedupe_key"),
        sa.Index("ix_scheduled_jobs_state_due", "state", "due_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    key_id: str | None = Field(default=None, index=True, max_length=32)
    dedupe_key: str = Field(max_length=200)
    due_at: datetime = Field(sa_column=_utc_column(nullable=False))
    state: str = Field(default=JobState.PENDING.value, max_length=16)
    claimed_by: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    attempts: int = Field(default=0)
    late: bool = Field(default=False)
    done_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    payload: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    last_error: str | None = Field(default=None, max_length=500)


class Rotation(SQLModel, table=True):
    """One rotation of a key: the old credentials, sealed, kept only until Binance rejects
    them (proof the old key was deleted), then shredded."""

    __tablename__ = "rotations"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    key_id: str = Field(foreign_key="api_keys.id", index=True, max_length=32)
    state: str = Field(default=RotationState.PROBING.value, index=True, max_length=16)
    started_by: str = Field(max_length=32)
    started_at: datetime = Field(sa_column=_utc_column(nullable=False))
    grace_until: datetime = Field(sa_column=_utc_column(nullable=False))
    completed_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    old_masked: str = Field(max_length=16)
    old_key_type: str = Field(max_length=8)
    old_api_key_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    old_secret_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    seal_key_id: str | None = Field(default=None, index=True, max_length=64)
    last_probe_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_probe_result: str | None = Field(default=None, max_length=200)
    stale_alerted_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))

    def secret_context(self) -> str:
        return f"rotation:{self.id}:secret"

    def api_key_context(self) -> str:
        return f"rotation:{self.id}:api_key"


class CredentialDelivery(SQLModel, table=True):
    """One version of a key's credentials, to be written to its sink.

    Holds no credentials: the delivery reads them from the key's sealed columns when it
    writes, so nothing secret is copied. ``id`` is the idempotency token the sink gets, so a
    retried write never makes a second version.
    """

    __tablename__ = "credential_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("key_id", "version", name="uq_credential_deliveries_key_version"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    key_id: str = Field(foreign_key="api_keys.id", index=True, max_length=32)
    version: int
    sink: str = Field(max_length=16)
    destination: str = Field(max_length=600)
    reason: str = Field(max_length=16)  # registration, rotation, sink_chosen
    state: str = Field(default=DeliveryState.PENDING.value, index=True, max_length=16)
    api_key_masked: str = Field(max_length=16)  # which key it carries (masked)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    attempts: int = Field(default=0)
    first_failed_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_error: str | None = Field(default=None, max_length=300)
    delivered_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    sink_version: str | None = Field(default=None, max_length=100)  # the sink's version id


class PendingKeyPair(SQLModel, table=True):
    """A key pair the bot generated for a registration: its private key, sealed, waits here
    until the person creates the self-generated API key in Binance and hands back the API key
    (or until it expires, when it is shredded). Never leaves the bot but into api_keys."""

    __tablename__ = "pending_key_pairs"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    state: str = Field(default=PendingPairState.PENDING.value, index=True, max_length=16)
    label: str = Field(max_length=80)
    account_alias: str = Field(max_length=80)
    owner_user_id: str = Field(max_length=32)
    purpose: str = Field(max_length=32)
    algorithm: str = Field(max_length=16)  # names the key type too (Ed25519 or RSA)
    public_key_pem: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    private_key_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    seal_key_id: str | None = Field(default=None, index=True, max_length=64)
    created_by: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=_utc_column(nullable=False))
    channel: str | None = Field(default=None, max_length=32)
    completed_key_id: str | None = Field(default=None, max_length=32)
    ended_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # A pair for rotating this registered key (None: for a new registration), and whether its
    # owner accepted in the rotate form that the new key may do more than the old one.
    rotate_key_id: str | None = Field(default=None, max_length=32)
    confirm_more: bool = Field(default=False)
    # Where the registered key's credentials go, as chosen in the form (see RegistrationForm).
    delivery: str | None = Field(default=None, max_length=16)

    def private_key_context(self) -> str:
        return f"pending_pair:{self.id}:private_key"


class Incident(SQLModel, table=True):
    """A compromised key and the emergency checklist run for it in Slack."""

    __tablename__ = "incidents"
    __table_args__ = (
        sa.Index(
            "uq_incidents_open_key",
            "key_id",
            unique=True,
            sqlite_where=sa.text("state = 'open'"),
            postgresql_where=sa.text("state = 'open'"),
        ),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    key_id: str = Field(foreign_key="api_keys.id", index=True, max_length=32)
    label: str = Field(max_length=80)
    account_alias: str = Field(max_length=80)
    state: str = Field(default=IncidentState.OPEN.value, index=True, max_length=16)
    raised_by: str = Field(max_length=32)
    raised_at: datetime = Field(sa_column=_utc_column(nullable=False))
    raised_in: str | None = Field(default=None, max_length=32)
    activity_since: datetime = Field(sa_column=_utc_column(nullable=False))
    key_dead_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_probe_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_probe_result: str | None = Field(default=None, max_length=200)
    # Where the live checklist is posted: [{"channel": ..., "ts": ...}]
    messages: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    # The account's other keys at raise time: [{"label", "tier", "status"}]
    other_keys: list[dict[str, Any]] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    # The read-only activity review: {"source", "rows": [...], "error"}
    activity: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    closed_by: str | None = Field(default=None, max_length=32)
    closed_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    close_note: str | None = Field(default=None, max_length=2000)
    # Who leads the response: whoever raised it, until someone hands it over.
    commander: str | None = Field(default=None, max_length=32)
    # How a closed incident ended: IncidentOutcome (None while open).
    outcome: str | None = Field(default=None, max_length=16)
    # What Binance last said the key could do before it was reported (a copy: checks since
    # overwrite the key's own column): a false alarm must show exactly these again.
    permissions_at_raise: dict[str, Any] | None = Field(
        default=None, sa_column=sa.Column(sa.JSON, nullable=True)
    )
    # What the governor did to a governed key (Containment), when it was proven, and, for a
    # quarantine, the IP list to give back if the report was a false alarm.
    containment: str | None = Field(default=None, max_length=16)
    containment_started_at: datetime | None = Field(
        default=None, sa_column=_utc_column(nullable=True)
    )
    contained_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    containment_note: str | None = Field(default=None, max_length=300)
    quarantined_from: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    # The key the governor made to replace a deleted one (one click on the checklist).
    successor_key_id: str | None = Field(default=None, max_length=32)


class IncidentStep(SQLModel, table=True):
    """One ticked step of an incident's checklist (a row per step: concurrent ticks of
    different steps never overwrite each other)."""

    __tablename__ = "incident_steps"

    incident_id: str = Field(foreign_key="incidents.id", primary_key=True, max_length=32)
    step: int = Field(primary_key=True)
    ticked_by: str = Field(max_length=32)
    ticked_at: datetime = Field(sa_column=_utc_column(nullable=False))
    automatic: bool = Field(default=False)


class SlackDelivery(SQLModel, table=True):
    """A request Slack delivered (an event, a command, a click, a form), by its identity.

    Slack delivers again (``X-Slack-Retry-Num``) when an answer was slow or lost; whichever
    replica gets the second copy finds the first here and does nothing. Rows are pruned after
    a day: Slack stops retrying within minutes.
    """

    __tablename__ = "slack_deliveries"

    delivery_key: str = Field(primary_key=True, max_length=200)
    received_at: datetime = Field(
        default_factory=utcnow, sa_column=_utc_column(nullable=False, index=True)
    )


class AuditForwardCursor(SQLModel, table=True):
    """How far the audit forwarder got for one destination: the id of the last event the
    destination accepted, and which replica holds the lease to send (one sender at a time)."""

    __tablename__ = "audit_forward_cursors"

    destination: str = Field(primary_key=True, max_length=64)  # a digest of the URL
    endpoint: str = Field(max_length=200)  # scheme://host:port, for people (no path or query)
    last_id: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    sent: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_utc_column(nullable=False))


class Page(SQLModel, table=True):
    """A critical condition paged out (PagerDuty Events API v2 and/or a webhook).

    ``dedup_key`` is the key PagerDuty correlates a trigger and its resolve by: one per
    incident, per key whose withdrawals were enabled, per rotation whose old key outlived its
    grace. The sending itself is a job (bot.job_queue.kinds.page_event), retried with backoff.
    """

    __tablename__ = "pages"

    dedup_key: str = Field(primary_key=True, max_length=255)
    team_id: str = Field(index=True, max_length=32)
    reason: str = Field(max_length=32)  # incident, withdrawals_enabled, old_key_alive, ...
    key_id: str | None = Field(default=None, max_length=32)
    summary: str = Field(max_length=1024)
    state: str = Field(default=PageState.OPEN.value, index=True, max_length=16)
    triggers: int = Field(default=1)  # how many times it was (re)opened
    opened_at: datetime = Field(sa_column=_utc_column(nullable=False))
    resolved_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class GovernorMint(SQLModel, table=True):
    """A sub-account key the governor asks Binance to create. Written (private key sealed)
    BEFORE Binance is asked, so that whatever happens next the bot knows a key may exist: the
    ``api_name`` given to Binance carries this row's id, and a mint left ``asking`` is named
    to the admins for deletion. Completed into an ``api_keys`` row in one transaction."""

    __tablename__ = "governor_mints"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    state: str = Field(default=MintState.ASKING.value, index=True, max_length=16)
    account_id: str = Field(max_length=32)  # the sub-account's binance_accounts row
    sub_account_email: str = Field(max_length=254)
    api_name: str = Field(max_length=64)
    label: str = Field(max_length=80)
    purpose: str = Field(max_length=16)
    grant: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON))
    ip_addresses: list[str] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    private_key_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    seal_key_id: str | None = Field(default=None, index=True, max_length=64)
    # Why it is made: "register" (a new key) or "rotate" / "successor" (replacing key_id).
    reason: str = Field(max_length=16)
    replaces_key_id: str | None = Field(default=None, max_length=32)
    requested_by: str = Field(max_length=32)
    started_at: datetime = Field(sa_column=_utc_column(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    api_key_masked: str | None = Field(default=None, max_length=16)
    created_key_id: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=300)

    def private_key_context(self) -> str:
        return f"governor_mint:{self.id}:private_key"


class ApprovalRequest(SQLModel, table=True):
    """A change that waits for a second person (README: Approvals). What it would store is
    held here, the credentials sealed with this row's own context, and reaches ``api_keys``
    only once enough other people approved and Binance confirmed the key is as approved.
    Denied, withdrawn, expired or changed: the sealed material is shredded."""

    __tablename__ = "approval_requests"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=32)
    team_id: str = Field(index=True, max_length=32)
    state: str = Field(default=ApprovalState.OPEN.value, index=True, max_length=16)
    change: str = Field(max_length=16)  # "register", "rotate" or "edit"
    kinds: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    # What is at stake, in words (no secret): the permissions, the purpose, the owner.
    at_stake: list[str] = Field(default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False))
    label: str = Field(max_length=80)
    account_alias: str | None = Field(default=None, max_length=80)
    key_id: str | None = Field(default=None, index=True, max_length=32)  # rotate / edit
    api_key_masked: str | None = Field(default=None, max_length=16)
    owner_user_id: str | None = Field(default=None, max_length=32)
    requested_by: str = Field(max_length=32)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    expires_at: datetime = Field(sa_column=_utc_column(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    ended_by: str | None = Field(default=None, max_length=32)
    approved_by: list[str] = Field(
        default_factory=list, sa_column=sa.Column(sa.JSON, nullable=False)
    )
    quorum: int = Field(default=1)
    # The held change's plain fields (no secret), and Binance's answer when it was asked.
    form: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(sa.JSON))
    permissions_json: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    api_key_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    secret_sealed: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary))
    seal_key_id: str | None = Field(default=None, index=True, max_length=64)
    applied_key_id: str | None = Field(default=None, max_length=32)
    outcome: str | None = Field(default=None, max_length=300)

    def api_key_context(self) -> str:
        return f"approval:{self.id}:api_key"

    def secret_context(self) -> str:
        return f"approval:{self.id}:secret"
