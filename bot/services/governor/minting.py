"""Zero-touch creation: the governor creates a sub-account key in Binance, and no person
sees or pastes anything.

1. Everything the bot can refuse without Binance is refused first (label, owner, purpose,
   the sub-account and its governor).
2. The bot generates an Ed25519 pair and writes the intent (``governor_mints``, private key
   sealed) with a check due later, BEFORE Binance is asked: whatever happens next, the bot
   knows a key named ``api_name`` may exist in that sub-account.
3. The governor asks Binance to create the key with exactly the flags the declared purpose
   needs and the IP list (the service's addresses plus the bot's own, BOT_EGRESS_IPS).
4. The new key is verified by apiRestrictions signed with it, then stored like a registered
   key (reminders, delivery to its sink, audit) in one transaction that completes the intent.
   If storing fails, the key is deleted again through the governor; if even that fails, the
   admins are told its name.
A creation whose answer never came (a crash, a lost connection) is settled by the mint check:
the admins are told which key to delete in Binance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.binance import GovernorGateway, SubAccountGrant
from bot.config import Settings
from bot.job_queue.kinds import mint_check
from bot.job_queue.queue import schedule_jobs
from bot.model.approvals import ApprovalView
from bot.model.findings import PURPOSE_NAMES
from bot.model.governor import LostMint
from bot.model.key_pairs import KeyAlgorithm
from bot.model.keys import RegisteredKey
from bot.services.approvals.holding import ApprovedChange, HeldForApproval, hold_change
from bot.services.custody.key_pairs import generate_pair
from bot.services.custody.keys import (
    RegistrationForm,
    label_and_account_problems,
    live_governor,
    open_credentials,
    refuse_before_binance,
    register_key,
)
from bot.services.errors import DomainError, InvalidInput, KeyNotUsable
from bot.services.governor.calls import CallContext, on_behalf_of
from bot.vocabulary import ApprovalKind, AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import (
    ApiKey,
    BinanceAccount,
    GovernorMint,
    KeyPurpose,
    KeyType,
    MintState,
    utcnow,
)

log = logging.getLogger(__name__)

# Binance answers within its timeout (BINANCE_TIMEOUT_SECONDS, at most 120 s): an intent
# still "asking" this long after it began lost its answer.
MINT_ANSWER_DEADLINE = timedelta(minutes=5)
# A key Binance has just made may take a moment to answer for itself.
VERIFY_WAITS = (0.2, 0.5, 1.0, 2.0)
EXTRAS = ("futures", "margin", "options", "transfer")


@dataclass(frozen=True)
class MintRequest:
    """The register form with "Create it in Binance for me" chosen."""

    team_id: str
    actor: str
    label: str
    sub_account: str  # the sub-account's alias or email
    owner_user_id: str
    purpose: KeyPurpose
    # Trading permissions beyond spot & margin ("futures", "margin", "options") and
    # "transfer" (universal transfer, which needs the owner's confirmation like any key).
    extras: frozenset[str] = frozenset()
    # The addresses of the service that will use the key; the bot's own are added.
    ip_addresses: tuple[str, ...] = ()
    # No IP restriction at all (the owner's explicit choice; Binance expires trading then).
    unrestricted: bool = False
    confirm_more: bool = False
    delivery: str | None = None
    source: str | None = None
    actor_is_admin: bool = False


def grant_for(purpose: KeyPurpose, extras: frozenset[str]) -> SubAccountGrant:
    """Exactly the flags the declared purpose needs (read-only: none; trading: spot & margin,
    plus futures, margin borrowing and options only when ticked; universal transfer only when
    asked for)."""
    unknown = sorted(extras - set(EXTRAS))
    if unknown:
        raise InvalidInput(f"Unknown permission(s): {', '.join(unknown)}.")
    if purpose == KeyPurpose.WITHDRAWALS:
        raise InvalidInput(
            "Binance's sub-account API cannot create a key that withdraws: create such a key "
            "by hand in Binance (rarely justified), then register it."
        )
    if purpose == KeyPurpose.GOVERNOR:
        raise InvalidInput("A governor is registered with `/apikey governor <account>`.")
    trading = purpose == KeyPurpose.TRADING
    if not trading and extras - {"transfer"}:
        raise InvalidInput(
            "A read-only key cannot trade: choose the trading purpose for futures, margin or "
            "options."
        )
    return SubAccountGrant(
        can_trade=trading,
        can_futures_trade=trading and "futures" in extras,
        can_margin_loan_repay=trading and "margin" in extras,
        can_vanilla_options=trading and "options" in extras,
        can_universal_transfer="transfer" in extras,
    )


def ip_list_for(settings: Settings, request: MintRequest) -> tuple[str, ...] | None:
    """The key's trusted IPs (the service's, then the bot's own), or None: unrestricted."""
    if request.unrestricted:
        if request.ip_addresses:
            raise InvalidInput(
                "Give the service's IP addresses, or choose no IP restriction; not both."
            )
        return None
    if not request.ip_addresses:
        raise InvalidInput(
            "Give the public IP addresses of the service that will use the key (the bot adds "
            "its own), or tick “no IP restriction” (Binance then removes trading after 30 days "
            "and nobody can tell who uses the key)."
        )
    return tuple(dict.fromkeys([*request.ip_addresses, *settings.bot_egress_ips]))


@dataclass(frozen=True)
class GovernedTarget:
    """A sub-account the bot can create keys in, with its governor."""

    account_id: str
    alias: str
    email: str
    governor_id: str
    governor_label: str


def governed_target(session: Session, team_id: str, sub_account: str) -> GovernedTarget:
    """The sub-account named by alias or email, linked to a master account with a governor."""
    wanted = sub_account.strip().casefold()
    accounts = session.exec(
        select(BinanceAccount).where(
            BinanceAccount.team_id == team_id,
            col(BinanceAccount.master_account_id).is_not(None),
        )
    ).all()
    for account in accounts:
        names = {account.alias.casefold(), (account.sub_account_email or "").casefold()}
        if wanted not in names or account.master_account_id is None:
            continue
        governor = live_governor(session, account.master_account_id)
        if governor is None:
            break
        return GovernedTarget(
            account_id=account.id,
            alias=account.alias,
            email=account.sub_account_email or account.alias,
            governor_id=governor.id,
            governor_label=governor.label,
        )
    raise InvalidInput(
        f"“{sub_account}” is not a sub-account of a master account with a governor. Choose "
        "one from the list (`/apikey governor` shows them), or register the key by hand."
    )


def mint_form(
    request: MintRequest, target: GovernedTarget, api_key: str, secret: str
) -> RegistrationForm:
    return RegistrationForm(
        team_id=request.team_id,
        actor=request.actor,
        label=request.label.strip(),
        account_alias=target.alias,
        owner_user_id=request.owner_user_id,
        purpose=request.purpose,
        key_type=KeyType.ED25519,
        api_key=api_key,
        secret=secret,
        source=request.source,
        actor_is_admin=request.actor_is_admin,
        delivery=request.delivery,
        confirm_beyond_purpose=request.confirm_more,
    )


def create_key(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    governor: GovernorGateway,
    settings: Settings,
    request: MintRequest,
    now: datetime | None = None,
    approved: ApprovedChange | None = None,
) -> RegisteredKey:
    """Create the key in Binance through the governor, verify it and store it (see the module
    docstring). Raises a DomainError with a polite message when anything refuses.

    A key that would move funds (universal transfer) is held for a second person before
    Binance is asked when APPROVAL_REQUIRED_FOR names moves_funds (HeldForApproval);
    ``approved``: that request, approved, being carried out."""
    now = now or utcnow()
    grant = grant_for(request.purpose, request.extras)
    ips = ip_list_for(settings, request)
    if request.unrestricted and request.actor != request.owner_user_id:
        raise InvalidInput(
            "A key with no IP restriction can be used by anyone who gets it, from anywhere: "
            "only its owner can choose that."
        )
    if grant.can_universal_transfer and not (
        request.confirm_more and request.actor == request.owner_user_id
    ):
        raise InvalidInput(
            "Universal transfer moves funds between accounts: only the key's owner can ask for "
            "it, by ticking the confirmation."
        )
    with Session(engine) as session:
        target = governed_target(session, request.team_id, request.sub_account)
    # A placeholder key passes the shape checks: the real one does not exist yet.
    applying = approved.request_id if approved is not None else None
    form = replace(mint_form(request, target, api_key="", secret=""), applying_request=applying)
    refuse_before_binance(engine, ring, form, label_and_account_problems(form))
    if (
        approved is None
        and grant.can_universal_transfer
        and ApprovalKind.MOVES_FUNDS in settings.approval_required_for
    ):
        raise HeldForApproval(_hold_creation(engine, settings, request, target, ips, now))

    def store(api_key: str, private_pem: str, within: Within) -> RegisteredKey:
        minted = mint_form(request, target, api_key, private_pem)
        return register_key(
            engine=engine,
            ring=ring,
            gateway=gateway,
            form=replace(minted, applying_request=applying),
            settings=settings,
            now=now,
            within=within,
            may_hold=False,
            approved=approved,
        )

    return mint_key(
        engine=engine,
        ring=ring,
        gateway=gateway,
        governor=governor,
        request=request,
        target=target,
        grant=grant,
        ips=ips,
        reason="register",
        now=now,
        store=store,
    )


def _hold_creation(
    engine: Engine,
    settings: Settings,
    request: MintRequest,
    target: GovernedTarget,
    ips: Sequence[str] | None,
    now: datetime,
) -> ApprovalView:
    """Hold a creation that would move funds before Binance is asked: nothing exists yet, so
    nothing is sealed; approving it creates exactly the key described here."""
    extras = sorted(request.extras)
    stake = [
        f"The governor would create it in the sub-account {target.alias} for "
        f"{PURPOSE_NAMES[request.purpose]}" + (f", with {', '.join(extras)}" if extras else ""),
        "It can move funds: Universal transfer",
        "IP list: " + (", ".join(ips) if ips else "none (unrestricted)"),
    ]
    with session_scope(engine) as session:
        return hold_change(
            session,
            None,
            settings,
            team_id=request.team_id,
            change="create",
            kinds=[ApprovalKind.MOVES_FUNDS],
            at_stake=stake,
            label=request.label.strip(),
            requested_by=request.actor,
            now=now,
            form=held_creation(request),
            permissions=None,
            account_alias=target.alias,
            owner_user_id=request.owner_user_id,
            source=request.source,
        )


def held_creation(request: MintRequest) -> dict[str, object]:
    """The request's fields, as an approval request keeps them (JSON)."""
    fields = asdict(request)
    fields["purpose"] = request.purpose.value
    fields["extras"] = sorted(request.extras)
    fields["ip_addresses"] = list(request.ip_addresses)
    return fields


def creation_from(fields: dict[str, Any]) -> MintRequest:
    """The MintRequest an approval request kept (``held_creation``)."""
    return MintRequest(
        **{
            **fields,
            "purpose": KeyPurpose(fields["purpose"]),
            "extras": frozenset(fields["extras"]),
            "ip_addresses": tuple(fields["ip_addresses"]),
        }
    )


# Runs inside the transaction that stores the new key (the mint completes itself there).
Within = Callable[[Session, ApiKey], None]
T = TypeVar("T")


def mint_key(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    governor: GovernorGateway,
    request: MintRequest,
    target: GovernedTarget,
    grant: SubAccountGrant,
    ips: Sequence[str] | None,
    reason: str,
    now: datetime,
    store: Callable[[str, str, Within], T],
    replaces_key_id: str | None = None,
) -> T:
    """Create a key in ``target`` through the governor and hand it to ``store`` (api key,
    private key PEM, ``within`` to call inside the storing transaction), which stores it:
    as a new key (``create_key``), or as the new credentials of a rotating or replaced key.
    The intent is written first; a key made but not stored is deleted again (see the module
    docstring). ``reason``: register, rotate or successor."""
    private_pem, public_pem = generate_pair(KeyAlgorithm.ED25519)
    mint_id = _write_intent(
        engine, ring, request, target, grant, ips, private_pem, reason, replaces_key_id, now
    )
    api_name = _api_name(mint_id)
    context = CallContext(
        team_id=request.team_id,
        actor=request.actor,
        why="create" if reason == "register" else reason,
        label=request.label,
    )
    with Session(engine) as session:
        governor_row = session.get(ApiKey, target.governor_id)
        if governor_row is None:
            raise InvalidInput("The sub-account's governor was removed a moment ago.")
        governor_creds = open_credentials(ring, governor_row)
    try:
        with on_behalf_of(context):
            created = governor.create_sub_account_key(
                governor_creds,
                email=target.email,
                api_name=api_name,
                public_key_pem=public_pem,
                grant=grant,
                ip_addresses=ips,
            )
    except binance.BinanceUnavailable as error:
        if error.reason in ("timeout", "connection"):
            # Sent, perhaps made: the answer is lost. The mint check names it to the admins.
            raise KeyNotUsable(
                f"Binance did not answer ({error.user_message}). The key may or may not have "
                f"been made: the bot checks and tells the admins which key "
                f"(“{api_name}” in {target.email}) to delete if it exists. Nothing was stored."
            ) from None
        _end(engine, mint_id, MintState.REFUSED, now, outcome=type(error).__name__)
        raise KeyNotUsable(error.user_message + " Nothing was created.") from None
    except binance.BinanceError as error:
        _end(
            engine, mint_id, MintState.REFUSED, now, outcome=f"{type(error).__name__} {error.code}"
        )
        raise KeyNotUsable(
            f"Binance refused to create the key: {error.user_message} Nothing was created."
        ) from None
    try:
        _wait_until_it_answers(gateway, created.api_key, private_pem)
        return store(
            created.api_key,
            private_pem,
            lambda session, row: _complete(session, mint_id, row, ips, now),
        )
    except Exception as exc:
        # Made in Binance but not stored: delete it again, so no key lives unknown.
        undone = _undo(governor, governor_creds, target, created.api_key, context)
        masked = binance.mask_api_key(created.api_key)
        if undone:
            _end(engine, mint_id, MintState.REFUSED, now, outcome="deleted again", masked=masked)
        else:
            _note(engine, mint_id, masked, "made but not stored; deleting it again failed")
        # Not deleted: the intent stays "asking", and the mint check names the key to the
        # admins (a live key nobody holds must not be forgotten).
        what = (
            "The key Binance made was deleted again."
            if undone
            else (
                f"The key Binance made (“{api_name}” in {target.email}) could not be deleted: "
                "delete it in Binance; the admins are told."
            )
        )
        if isinstance(exc, DomainError):
            why = exc.user_message.replace(" Nothing was stored.", "")
            raise KeyNotUsable(f"{why} {what}") from None
        if isinstance(exc, binance.BinanceError):
            raise KeyNotUsable(f"{exc.user_message} {what}") from None
        raise


def _wait_until_it_answers(gateway: binance.BinanceGateway, api_key: str, private_pem: str) -> None:
    creds = binance.Credentials(api_key, private_pem, binance.KeyType.ED25519)
    for wait in (*VERIFY_WAITS, None):
        try:
            gateway.api_restrictions(creds)
            return
        except binance.KeyRejected:
            if wait is None:
                return  # register_key asks once more and says why it refuses
            time.sleep(wait)


def _undo(
    governor: GovernorGateway,
    creds: binance.Credentials,
    target: GovernedTarget,
    api_key: str,
    context: CallContext,
) -> bool:
    try:
        with on_behalf_of(context):
            governor.delete_sub_account_key(creds, email=target.email, api_key=api_key)
        return True
    except binance.BinanceError:
        log.error("a key the governor made in %s could not be deleted again", target.email)
        return False


def _api_name(mint_id: str) -> str:
    """The name the key gets in Binance's API management: findable from the intent."""
    return f"apikey-bot-{mint_id[:16]}"


def _write_intent(
    engine: Engine,
    ring: KeyRing,
    request: MintRequest,
    target: GovernedTarget,
    grant: SubAccountGrant,
    ips: Sequence[str] | None,
    private_pem: str,
    reason: str,
    replaces_key_id: str | None,
    now: datetime,
) -> str:
    with session_scope(engine) as session:
        mint = GovernorMint(
            team_id=request.team_id,
            account_id=target.account_id,
            sub_account_email=target.email,
            api_name="",
            label=request.label,
            purpose=request.purpose.value,
            grant=grant.to_params(),
            ip_addresses=list(ips) if ips is not None else None,
            reason=reason,
            replaces_key_id=replaces_key_id,
            requested_by=request.actor,
            started_at=now,
        )
        mint.api_name = _api_name(mint.id)
        mint.private_key_sealed = ring.seal(private_pem, context=mint.private_key_context()).blob
        mint.seal_key_id = ring.active.key_id
        session.add(mint)
        schedule_jobs(
            session,
            [
                mint_check(
                    team_id=request.team_id, mint_id=mint.id, due_at=now + MINT_ANSWER_DEADLINE
                )
            ],
        )
        return mint.id


def _complete(
    session: Session, mint_id: str, row: ApiKey, ips: Sequence[str] | None, now: datetime
) -> None:
    mint = session.get(GovernorMint, mint_id, with_for_update=True)
    if mint is None or mint.state != MintState.ASKING.value:
        raise InvalidInput("That key creation was settled a moment ago.")
    row.created_via = "governor"
    row.ip_addresses = list(ips) if ips is not None else None
    mint.state = MintState.CREATED.value
    mint.private_key_sealed = None  # the key's own sealed copy is in api_keys now
    mint.seal_key_id = None
    mint.created_key_id = row.id
    mint.api_key_masked = row.api_key_masked
    mint.ended_at = now
    record_event(
        session,
        team_id=row.team_id,
        actor=mint.requested_by,
        action=AuditAction.KEY_CREATE,
        target=row.label,
        target_key_id=row.id,
        source="governor",
        detail={
            "sub_account": mint.sub_account_email,
            "api_name": mint.api_name,
            "masked": row.api_key_masked,
            "grant": mint.grant,
            "ip_addresses": mint.ip_addresses,
            "reason": mint.reason,
        },
    )


def _end(
    engine: Engine,
    mint_id: str,
    state: MintState,
    now: datetime,
    *,
    outcome: str,
    masked: str | None = None,
) -> None:
    with session_scope(engine) as session:
        mint = session.get(GovernorMint, mint_id, with_for_update=True)
        if mint is None or mint.state != MintState.ASKING.value:
            return
        mint.state = state.value
        mint.private_key_sealed = None
        mint.seal_key_id = None
        mint.ended_at = now
        mint.outcome = outcome[:300]
        mint.api_key_masked = masked


def _note(engine: Engine, mint_id: str, masked: str, outcome: str) -> None:
    """What is known of a mint still unsettled (the key Binance made, masked)."""
    with session_scope(engine) as session:
        mint = session.get(GovernorMint, mint_id, with_for_update=True)
        if mint is not None and mint.state == MintState.ASKING.value:
            mint.api_key_masked = masked
            mint.outcome = outcome


def settle_lost_mint(engine: Engine, mint_id: str, *, now: datetime) -> LostMint | None:
    """A creation still asking when its answer must have come: shred its private key, audit
    it, and return what the admins must look for in Binance (None: it was settled)."""
    with session_scope(engine) as session:
        mint = session.get(GovernorMint, mint_id, with_for_update=True)
        if mint is None or mint.state != MintState.ASKING.value:
            return None
        mint.state = MintState.UNKNOWN.value
        mint.private_key_sealed = None
        mint.seal_key_id = None
        mint.ended_at = now
        mint.outcome = mint.outcome or "no answer from Binance before the deadline"
        lost = LostMint(
            masked=mint.api_key_masked,
            label=mint.label,
            sub_account_email=mint.sub_account_email,
            api_name=mint.api_name,
            started_at=mint.started_at,
            requested_by=mint.requested_by,
        )
        record_event(
            session,
            team_id=mint.team_id,
            actor="bot",
            action=AuditAction.GOVERNOR_MINT_UNKNOWN,
            target=mint.label,
            source="governor",
            detail={
                "sub_account": mint.sub_account_email,
                "api_name": mint.api_name,
                "started_at": mint.started_at.isoformat(),
            },
        )
    return lost
