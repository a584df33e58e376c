"""Key pairs born inside the bot: the private key never passes through a person or Slack.

1. ``start_generated_registration``: the bot generates an Ed25519 (or RSA 2048 / 4096) pair,
   seals the private key at once into ``pending_key_pairs`` and hands out only the public key,
   for the person to create a "self-generated" API key in Binance's API management.
2. ``complete_pending_pair``: the person gives back the API key Binance showed; the bot signs a
   real apiRestrictions request with the sealed private key and registers the key only if
   Binance accepts it (in the same transaction the pending row is completed and its copy of
   the private key destroyed). Refused: the pair stays usable until it expires.
3. ``expire_pending_pair``: a pair not completed within 24 hours is shredded and audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.config import Settings
from bot.ids import Block
from bot.job_queue.kinds import pending_pair_expiry
from bot.job_queue.queue import schedule_jobs
from bot.model.key_pairs import KeyAlgorithm, PendingPair
from bot.model.keys import RegisteredKey
from bot.model.rotation import RotationStarted
from bot.services.access import Actor, deny
from bot.services.approvals.holding import HeldForApproval
from bot.services.custody.keys import (
    RegistrationForm,
    label_and_account_problems,
    refuse_before_binance,
    register_key,
)
from bot.services.errors import DomainError, InvalidInput, KeyNotFound
from bot.services.rotation.rotate import (
    RotationForm,
    require_may_rotate,
    rotatable_key,
    start_rotation,
)
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import (
    ApiKey,
    BinanceAccount,
    KeyPurpose,
    PendingKeyPair,
    PendingPairState,
    utcnow,
)

PAIR_LIFETIME = timedelta(hours=24)
_API_KEY_LENGTH = 64


def generate_pair(algorithm: KeyAlgorithm) -> tuple[str, str]:
    """(private key as PKCS#8 PEM, public key as SubjectPublicKeyInfo PEM): the formats
    Binance's API management takes for a self-generated key and python-binance signs with."""
    private: ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
    if algorithm is KeyAlgorithm.ED25519:
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        bits = 4096 if algorithm is KeyAlgorithm.RSA_4096 else 2048
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return private_pem, public_pem


@dataclass(frozen=True)
class PairRequest:
    """The register form with "the bot generates the key pair" chosen."""

    team_id: str
    actor: str
    label: str
    account_alias: str
    owner_user_id: str
    purpose: KeyPurpose
    algorithm: KeyAlgorithm
    channel: str | None = None
    source: str | None = None
    actor_is_admin: bool = False
    delivery: str | None = None  # as in RegistrationForm
    # The register form's "I accept permissions beyond the purpose" was ticked.
    confirm_more: bool = False

    def as_form(self) -> RegistrationForm:
        return RegistrationForm(
            team_id=self.team_id,
            actor=self.actor,
            label=self.label.strip(),
            account_alias=self.account_alias.strip(),
            owner_user_id=self.owner_user_id,
            purpose=self.purpose,
            key_type=self.algorithm.key_type,
            api_key="",
            secret="",
            source=self.source,
            actor_is_admin=self.actor_is_admin,
            delivery=self.delivery,
            confirm_beyond_purpose=self.confirm_more,
        )


def pending_view(row: PendingKeyPair) -> PendingPair:
    """What a person may see of a pending pair (never its private key)."""
    return PendingPair(
        pending_id=row.id,
        label=row.label,
        account_alias=row.account_alias,
        owner_user_id=row.owner_user_id,
        created_by=row.created_by,
        purpose=KeyPurpose(row.purpose),
        algorithm=KeyAlgorithm(row.algorithm),
        public_key_pem=row.public_key_pem,
        expires_at=row.expires_at,
        channel=row.channel,
        rotate_key_id=row.rotate_key_id,
    )


def start_generated_registration(
    *,
    engine: Engine,
    ring: KeyRing,
    request: PairRequest,
    now: datetime | None = None,
    governor: bool = False,
) -> PendingPair:
    """Generate the pair, seal its private key, and return what the person may see.
    ``governor``: asked by bot.services.governor.registration, which checked who asks (a
    governor pair comes from nowhere else, whatever a form says)."""
    now = now or utcnow()
    form = request.as_form()
    if (request.purpose == KeyPurpose.GOVERNOR) != governor:
        raise InvalidInput(
            "A governor is registered by an admin with `/apikey governor <account>`; please "
            "choose another purpose.",
            field=Block.PURPOSE,
        )
    # Refused there too: a label already registered, or waiting for another generated pair.
    refuse_before_binance(engine, ring, form, label_and_account_problems(form))
    return _store_pair(engine, ring, request, form, now=now, confirm_more=request.confirm_more)


def _store_pair(
    engine: Engine,
    ring: KeyRing,
    request: PairRequest,
    form: RegistrationForm,
    *,
    now: datetime,
    rotate_key_id: str | None = None,
    confirm_more: bool = False,
) -> PendingPair:
    private_pem, public_pem = generate_pair(request.algorithm)
    with session_scope(engine) as session:
        row = PendingKeyPair(
            rotate_key_id=rotate_key_id,
            confirm_more=confirm_more,
            team_id=form.team_id,
            label=form.label,
            account_alias=form.account_alias,
            owner_user_id=form.owner_user_id,
            purpose=form.purpose.value,
            algorithm=request.algorithm.value,
            public_key_pem=public_pem,
            created_by=form.actor,
            created_at=now,
            expires_at=now + PAIR_LIFETIME,
            channel=request.channel,
            delivery=form.delivery,
        )
        row.private_key_sealed = ring.seal(private_pem, context=row.private_key_context()).blob
        row.seal_key_id = ring.active.key_id
        session.add(row)
        session.flush()
        schedule_jobs(
            session,
            [pending_pair_expiry(team_id=row.team_id, pending_id=row.id, due_at=row.expires_at)],
        )
        record_event(
            session,
            team_id=form.team_id,
            actor=form.actor,
            action=AuditAction.KEYPAIR_GENERATE,
            target=form.label,
            source=form.source,
            detail={
                "pending": row.id,
                "rotation": rotate_key_id is not None,
                "algorithm": request.algorithm.shown,
                "owner": form.owner_user_id,
                "purpose": form.purpose.value,
                "expires_at": row.expires_at.isoformat(),
            },
        )
        return pending_view(row)


def start_generated_rotation(
    *,
    engine: Engine,
    ring: KeyRing,
    actor: Actor,
    key_id: str,
    algorithm: KeyAlgorithm,
    confirm_more: bool = False,
    channel: str | None = None,
    now: datetime | None = None,
) -> PendingPair:
    """Rotation with a generated pair: the new pair for a registered key (its owner or an admin
    only); completing it starts the rotation as a pasted key would."""
    now = now or utcnow()
    rotation = RotationForm(
        team_id=actor.team_id,
        actor=actor.user_id,
        key_id=key_id,
        key_type=algorithm.key_type,
        api_key="",
        secret="",
        actor_is_admin=actor.is_admin,
    )
    require_may_rotate(engine, rotation, channel=channel)
    with Session(engine) as session:
        key = rotatable_key(session, actor.team_id, key_id)
        account = session.get(BinanceAccount, key.account_id)
        waiting = session.exec(
            select(PendingKeyPair).where(
                PendingKeyPair.rotate_key_id == key_id,
                PendingKeyPair.state == PendingPairState.PENDING.value,
            )
        ).first()
        request = PairRequest(
            team_id=actor.team_id,
            actor=actor.user_id,
            actor_is_admin=actor.is_admin,
            label=key.label,
            account_alias=account.alias if account is not None else "?",
            owner_user_id=key.owner_user_id or actor.user_id,
            purpose=KeyPurpose(key.purpose),
            algorithm=algorithm,
            channel=channel,
            source="slack:modal",
        )
    if waiting is not None:
        raise InvalidInput(
            f"A generated key pair for rotating “{waiting.label}” is already waiting for its API "
            "key: finish that one (its message has an “Enter the API key” button).",
            field=Block.KEY_TYPE,
        )
    return _store_pair(
        engine,
        ring,
        request,
        request.as_form(),
        now=now,
        rotate_key_id=key_id,
        confirm_more=confirm_more,
    )


def load_pending_pair(engine: Engine, actor: Actor, pending_id: str) -> PendingPair:
    """The waiting pair, if ``actor`` made it, owns it or is an admin (else refused)."""
    with Session(engine) as session:
        row = session.get(PendingKeyPair, pending_id)
        if row is None or row.team_id != actor.team_id:
            raise KeyNotFound("That key pair does not exist (any more).")
        pending = pending_view(row)
        state = PendingPairState(row.state)
    _require_may_complete(engine, actor, pending)
    if state is PendingPairState.COMPLETED:
        raise InvalidInput(f"The key pair for “{pending.label}” is registered already.")
    if state is PendingPairState.EXPIRED:
        raise InvalidInput(
            f"The key pair for “{pending.label}” expired and was destroyed: register the key "
            "again to get a new one."
        )
    return pending


def _require_may_complete(engine: Engine, actor: Actor, pending: PendingPair) -> None:
    if actor.is_admin or actor.user_id in (pending.created_by, pending.owner_user_id):
        return
    raise deny(
        engine,
        actor,
        action="complete a generated key pair",
        target=pending.label,
        message="Only the person who generated this key pair, the key's owner or an admin can "
        f"finish registering “{pending.label}”. Nothing was changed.",
    )


def complete_pending_pair(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    settings: Settings,
    actor: Actor,
    pending_id: str,
    api_key: str,
    confirm_more: bool = False,
    source: str | None = None,
    now: datetime | None = None,
) -> RegisteredKey | RotationStarted:
    """Register the key Binance made from the public key (or, for a rotation's pair, start the
    rotation to it); the pair stays usable if refused. ``confirm_more``: the small form's box
    (a key beyond its purpose, or beyond the old key) was ticked; a tick on the form that made
    the pair counts too. Either way only the owner's tick is accepted, as for a pasted key."""
    now = now or utcnow()
    pending = load_pending_pair(engine, actor, pending_id)
    if now >= pending.expires_at:
        raise InvalidInput(
            f"The key pair for “{pending.label}” expired: register the key again to get a new one.",
            field=Block.PAIR_API_KEY,
        )
    api_key = api_key.strip()
    if len(api_key) != _API_KEY_LENGTH or not api_key.isalnum():
        raise InvalidInput(
            "Paste the API key Binance showed: 64 letters and digits.", field=Block.PAIR_API_KEY
        )
    with Session(engine) as session:
        row = session.get(PendingKeyPair, pending_id)
        sealed = row.private_key_sealed if row is not None else None
        context = row.private_key_context() if row is not None else ""
        confirm_more = confirm_more or (bool(row.confirm_more) if row is not None else False)
        delivery = row.delivery if row is not None else None
    if sealed is None:
        raise KeyNotFound("That key pair was destroyed.")

    def complete(session: Session, key: ApiKey) -> None:
        row = session.get(PendingKeyPair, pending_id, with_for_update=True)
        if row is None or row.state != PendingPairState.PENDING.value:
            raise InvalidInput("That key pair was completed or destroyed a moment ago.")
        _shred(row, PendingPairState.COMPLETED, now)
        row.completed_key_id = key.id

    if pending.rotate_key_id is not None:
        rotation = RotationForm(
            team_id=actor.team_id,
            actor=actor.user_id,
            key_id=pending.rotate_key_id,
            key_type=pending.algorithm.key_type,
            api_key=api_key,
            secret=ring.open_text(sealed, context=context),
            confirm_more_permissions=confirm_more,
            source=source,
            actor_is_admin=actor.is_admin,
        )
        try:
            return start_rotation(
                engine=engine,
                ring=ring,
                gateway=gateway,
                settings=settings,
                form=rotation,
                now=now,
                within=complete,
            )
        except HeldForApproval:
            raise  # not a refusal: the key waits for approval
        except DomainError as exc:
            raise _on_the_api_key_input(exc, pending) from None
    form = RegistrationForm(
        team_id=actor.team_id,
        actor=actor.user_id,
        label=pending.label,
        account_alias=pending.account_alias,
        owner_user_id=pending.owner_user_id,
        purpose=pending.purpose,
        key_type=pending.algorithm.key_type,
        api_key=api_key,
        secret=ring.open_text(sealed, context=context),
        source=source,
        # the owner was chosen when the pair was made, by someone allowed to
        actor_is_admin=True,
        completing_pair=pending_id,
        delivery=delivery,
        confirm_beyond_purpose=confirm_more,
    )

    try:
        return register_key(
            engine=engine,
            ring=ring,
            gateway=gateway,
            form=form,
            settings=settings,
            now=now,
            within=complete,
        )
    except HeldForApproval:
        raise  # not a refusal: the key waits for approval (the pair was handed over)
    except DomainError as exc:
        raise _on_the_api_key_input(exc, pending) from None


def _on_the_api_key_input(exc: DomainError, pending: PendingPair) -> DomainError:
    """A refusal, told on the small form's input it concerns, with what remains possible."""
    text = exc.user_message
    until = pending.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    if exc.field in (Block.ROTATE_CONFIRM, Block.REGISTER_CONFIRM):  # the owner must accept
        return type(exc)(
            f"{text} The key pair stays usable until {until}.",
            field=Block.PAIR_CONFIRM,
        )
    if exc.field == Block.SECRET:  # Binance: the signature does not match the API key
        text = (
            "Binance says the signature is wrong: this API key was not created from the public "
            "key the bot gave you (check you pasted the right one). Nothing was stored."
        )
    return type(exc)(f"{text} The key pair stays usable until {until}.", field=Block.PAIR_API_KEY)


def _shred(row: PendingKeyPair, state: PendingPairState, now: datetime) -> None:
    row.private_key_sealed = None
    row.seal_key_id = None
    row.state = state.value
    row.ended_at = now


def expire_pending_pair(engine: Engine, pending_id: str, now: datetime) -> PendingPair | None:
    """Shred the pair if it is still waiting past its time (audited); the pair, or None."""
    with session_scope(engine) as session:
        row = session.get(PendingKeyPair, pending_id, with_for_update=True)
        if row is None or row.state != PendingPairState.PENDING.value:
            return None
        if now < row.expires_at:
            return None
        _shred(row, PendingPairState.EXPIRED, now)
        record_event(
            session,
            team_id=row.team_id,
            actor="bot",
            action=AuditAction.KEYPAIR_EXPIRED,
            target=row.label,
            detail={"pending": row.id, "created_by": row.created_by, "shredded": True},
        )
        return pending_view(row)


def waiting_pairs(engine: Engine, team_id: str) -> list[PendingPair]:
    with Session(engine) as session:
        rows = session.exec(
            select(PendingKeyPair)
            .where(
                PendingKeyPair.team_id == team_id,
                PendingKeyPair.state == PendingPairState.PENDING.value,
            )
            .order_by(col(PendingKeyPair.created_at))
        ).all()
        return [pending_view(r) for r in rows]


__all__ = [
    "PAIR_LIFETIME",
    "PairRequest",
    "PendingPair",
    "complete_pending_pair",
    "expire_pending_pair",
    "generate_pair",
    "load_pending_pair",
    "start_generated_registration",
    "start_generated_rotation",
    "waiting_pairs",
]
