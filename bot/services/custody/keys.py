"""Registering, listing, finding and removing keys."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from bot import binance
from bot.commands import label_problem
from bot.config import Settings
from bot.ids import Block
from bot.job_queue.kinds import KEY_LIFECYCLE_KINDS, key_announce
from bot.job_queue.queue import cancel_jobs, schedule_jobs
from bot.model.approvals import ApprovalView
from bot.model.findings import PURPOSE_NAMES, permission_name
from bot.model.keys import MAX_ALIAS_LENGTH, KeySummary, RegisteredKey
from bot.secret_shapes import API_KEY, PEM_PRIVATE_KEY, find_secret_shape
from bot.services.access import Actor, deny, require_manage, require_manage_key
from bot.services.approvals.holding import (
    ApprovedChange,
    ChangedSinceRequest,
    HeldForApproval,
    finish_applied,
    hold_change,
    open_registration_labels,
    permissions_at_stake,
    registration_kinds,
)
from bot.services.custody.delivery_plan import plan_cleanup, plan_delivery
from bot.services.errors import (
    InvalidInput,
    KeyAlreadyRegistered,
    KeyNotFound,
    KeyNotUsable,
    LabelTaken,
    NeedsConfirmation,
)
from bot.services.oversight.activity_plan import plan_team_review
from bot.services.oversight.drift_plan import plan_team_check
from bot.services.oversight.findings import assess, governor_refusals, purpose_excess
from bot.services.response.paging import resolve_page, withdrawals_page_key
from bot.services.rotation.reminder_plan import plan_reminders
from bot.services.rows import account_row
from bot.vocabulary import ApprovalKind, AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing, mask_api_key
from storage.db import session_scope
from storage.master_keys import seal_api_key_row, shred_api_key_row
from storage.models import (
    RETIRED_STATUSES,
    ApiKey,
    BinanceAccount,
    KeyPurpose,
    KeyStatus,
    KeyType,
    PendingKeyPair,
    PendingPairState,
    utcnow,
)


@dataclass(frozen=True)
class RegistrationForm:
    """What the register modal collected. The two secret fields never show in repr."""

    team_id: str
    actor: str
    label: str
    account_alias: str
    owner_user_id: str
    purpose: KeyPurpose
    key_type: KeyType
    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    source: str | None = None
    actor_is_admin: bool = False
    # The generated pair this registration completes (its own label is not "taken").
    completing_pair: str | None = None
    # Where its credentials go: "file", "aws" or "nowhere" as chosen in the form; None when
    # the form did not ask (no sink configured): SINK_DEFAULT then.
    delivery: str | None = None
    # The owner ticked "I accept permissions beyond the purpose" (only the owner's tick counts).
    confirm_beyond_purpose: bool = False
    # The approval request this registration carries out (its own label is not "taken").
    applying_request: str | None = None

    def held_fields(self) -> dict[str, object]:
        """What an approval request keeps of the form, besides the sealed key and secret."""
        return {
            "label": self.label,
            "account_alias": self.account_alias,
            "owner_user_id": self.owner_user_id,
            "purpose": self.purpose.value,
            "key_type": self.key_type.value,
            "source": self.source,
            "delivery": self.delivery,
            "confirm_beyond_purpose": self.confirm_beyond_purpose,
        }

    def credentials(self) -> binance.Credentials:
        return binance.Credentials(
            api_key=self.api_key,
            secret=self.secret,
            key_type=binance.KeyType(self.key_type.value),
        )


def chosen_sink(settings: Settings, delivery: str | None) -> str | None:
    """The sink a new key is delivered to: the form's choice, else SINK_DEFAULT."""
    if delivery is None:
        return settings.sink_default.value if settings.sink_default else None
    return None if delivery == "nowhere" else delivery


def delivery_problem(settings: Settings, delivery: str | None) -> dict[str, str]:
    """A sink chosen in the form that this bot does not have (a stale or forged form)."""
    if delivery is None or delivery == "nowhere" or delivery in set(settings.sinks):
        return {}
    return {Block.DELIVERY: "That place is not configured on this bot; please choose again."}


def validate_registration(form: RegistrationForm) -> dict[str, str]:
    """Problems with the form, by modal block id (empty when it can go to Binance)."""
    problems = label_and_account_problems(form)
    problems.update(credential_problems(form.api_key, form.secret, form.key_type))
    # (a governor held for approval came from a pair too: its request carries it out)
    if (
        form.purpose == KeyPurpose.GOVERNOR
        and form.completing_pair is None
        and form.applying_request is None
    ):
        problems[Block.PURPOSE] = (
            "A governor is registered by an admin with `/apikey governor <account>`, from a key "
            "pair the bot generates; please choose another purpose."
        )
    return problems


def label_and_account_problems(form: RegistrationForm) -> dict[str, str]:
    """Problems with the label and the account's name, by modal block id."""
    problems: dict[str, str] = {}
    if (why := label_problem(form.label)) is not None:
        problems[Block.LABEL] = why
    if (why := _alias_problem(form.account_alias)) is not None:
        problems[Block.ACCOUNT] = why
    return problems


def credential_problems(api_key: str, secret: str, key_type: KeyType) -> dict[str, str]:
    """Shape problems of an API key and its secret / private key, by modal block id."""
    problems: dict[str, str] = {}
    if not API_KEY.match(api_key):
        problems[Block.API_KEY] = "A Binance API key is 64 letters and digits."
    if key_type == KeyType.HMAC:
        if not API_KEY.match(secret):
            problems[Block.SECRET] = "An HMAC secret key is 64 letters and digits."
    elif not PEM_PRIVATE_KEY.match(secret.replace("\r", "")):
        problems[Block.SECRET] = (
            f"For an {key_type.value} key, paste your PEM private key "
            "(-----BEGIN PRIVATE KEY----- …), not the public key."
        )
    if api_key and api_key == secret:
        problems[Block.SECRET] = "The secret cannot be the API key itself."
    return problems


def _alias_problem(alias: str) -> str | None:
    if not alias or len(alias) > MAX_ALIAS_LENGTH:
        return f"Give the Binance account a short name (1-{MAX_ALIAS_LENGTH} characters)."
    if any(unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"} for ch in alias):
        return "An account name cannot contain control, zero-width or text-direction characters."
    if find_secret_shape(alias):
        return "That account name looks like a key or secret; please choose a plain name."
    return None


def normalise_form(form: RegistrationForm) -> RegistrationForm:
    """Trim what people paste (spaces, CRLF) before validating."""
    secret = form.secret.strip().replace("\r\n", "\n")
    return replace(
        form,
        label=form.label.strip(),
        account_alias=form.account_alias.strip(),
        api_key=form.api_key.strip(),
        secret=secret,
    )


def check_owner_choice(engine: Engine, form: RegistrationForm) -> None:
    """Only admins may register a key on someone else's behalf."""
    if form.owner_user_id == form.actor or form.actor_is_admin:
        return
    actor = Actor(user_id=form.actor, team_id=form.team_id, is_admin=False)
    error = deny(
        engine,
        actor,
        action="register a key on someone else's behalf",
        target=form.label,
        message="Only admins can register a key on someone else's behalf: choose yourself as "
        "the owner, or ask an admin. Nothing was stored.",
    )
    error.field = Block.OWNER
    raise error


def ensure_unique(session: Session, ring: KeyRing, form: RegistrationForm) -> None:
    live = col(ApiKey.status).not_in(RETIRED_STATUSES)
    taken = pick_label(
        list(
            session.exec(
                select(ApiKey.label).where(
                    ApiKey.team_id == form.team_id, labelled(form.label), live
                )
            ).all()
        ),
        form.label,
        str,
    )
    if taken:
        case_note = "" if taken[0] == form.label else " (labels must differ by more than case)"
        raise LabelTaken(
            f"A key labelled “{taken[0]}” is already registered{case_note}. Choose another "
            "label, or remove the old key first.",
            field=Block.LABEL,
        )
    waiting = [
        pair.label
        for pair in session.exec(
            select(PendingKeyPair).where(
                PendingKeyPair.team_id == form.team_id,
                PendingKeyPair.state == PendingPairState.PENDING.value,
                PendingKeyPair.rotate_key_id.is_(None),  # type: ignore[union-attr]
            )
        ).all()
        if pair.id != form.completing_pair and pair.label.casefold() == form.label.casefold()
    ]
    if waiting:
        raise LabelTaken(
            f"A generated key pair for “{waiting[0]}” is waiting for its API key. Finish that "
            "one (its message has an “Enter the API key” button), or choose another label.",
            field=Block.LABEL,
        )
    held = [
        label
        for request_id, label in open_registration_labels(session, form.team_id)
        if request_id != form.applying_request and label.casefold() == form.label.casefold()
    ]
    if held:
        raise LabelTaken(
            f"A key labelled “{held[0]}” is waiting for approval (`/apikey approvals`). Choose "
            "another label, or wait until that request is decided.",
            field=Block.LABEL,
        )
    duplicate = session.exec(
        select(ApiKey.label).where(
            ApiKey.team_id == form.team_id,
            col(ApiKey.api_key_fingerprint).in_(ring.fingerprints(form.api_key)),
            live,
        )
    ).first()
    if duplicate:
        raise KeyAlreadyRegistered(
            f"This API key is already registered as “{duplicate}”.", field=Block.API_KEY
        )


def refuse_before_binance(
    engine: Engine, ring: KeyRing, form: RegistrationForm, problems: dict[str, str]
) -> None:
    """What registration refuses without asking Binance: the first of the form's ``problems``,
    a key on someone else's behalf (unless admin), a label or API key already registered."""
    if problems:
        block, message = next(iter(problems.items()))
        raise InvalidInput(message, field=block)
    check_owner_choice(engine, form)
    with Session(engine) as session:
        ensure_unique(session, ring, form)


def refusal_for(error: binance.BinanceError) -> KeyNotUsable:
    """Why Binance would not accept the key, attached to the modal field to fix."""
    if isinstance(error, binance.BadSignature):
        return KeyNotUsable(
            "Binance says the signature is wrong: this secret (or private key) does not belong "
            "to this API key. Nothing was stored.",
            field=Block.SECRET,
        )
    if isinstance(error, binance.BadKeyFormat | binance.KeyRejected):
        return KeyNotUsable(error.user_message + " Nothing was stored.", field=Block.API_KEY)
    return KeyNotUsable(error.user_message + " Nothing was stored.", field=Block.API_KEY)


def register_key(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    form: RegistrationForm,
    settings: Settings,
    now: datetime | None = None,
    within: Callable[[Session, ApiKey], None] | None = None,
    approved: ApprovedChange | None = None,
    may_hold: bool = True,
) -> RegisteredKey:
    """Check the key with Binance, then store it sealed with an audit event.

    Nothing is stored unless Binance accepts the key. Raises InvalidInput, LabelTaken,
    KeyAlreadyRegistered or KeyNotUsable (each naming the modal field to fix). ``within`` runs
    in the storing transaction (a generated pair completes itself there).

    A key that needs a second person (APPROVAL_REQUIRED_FOR) is held instead, sealed in an
    approval request: HeldForApproval. ``approved``: that request, approved, being carried
    out; Binance must still say what the approvers saw (else ChangedSinceRequest).
    ``may_hold`` False: a key the governor has just created in Binance (its mint completes
    here; the governor's calls are announced and audited on their own).
    """
    now = now or utcnow()
    form = normalise_form(form)
    problems = {**validate_registration(form), **delivery_problem(settings, form.delivery)}
    refuse_before_binance(engine, ring, form, problems)
    try:
        permissions = gateway.api_restrictions(form.credentials())
    except binance.BinanceError as error:
        raise refusal_for(error) from None
    if form.purpose == KeyPurpose.GOVERNOR and (unfit := governor_refusals(permissions)):
        raise KeyNotUsable(
            "This key cannot be a governor: " + "; ".join(unfit) + ". Change it in Binance API "
            "Management and enter the API key again. Nothing was stored.",
            field=Block.API_KEY,
        )
    beyond = purpose_excess(permissions, form.purpose)
    require_owner_confirmation(
        beyond,
        confirmed=form.confirm_beyond_purpose,
        actor=form.actor,
        owner=form.owner_user_id,
        what=f"This key can do more than its declared purpose ({PURPOSE_NAMES[form.purpose]}) "
        "needs",
        fix="Reduce its permissions in Binance or choose the purpose it really serves",
        field=Block.REGISTER_CONFIRM,
        after=" Nothing was stored.",
    )
    if approved is not None:
        # (a creation approved before Binance made the key has no answer to compare with)
        if approved.permissions is not None and approved.permissions != permissions.to_dict():
            raise ChangedSinceRequest(
                f"Binance's answer about “{form.label}” changed since the request was made, so "
                "what was approved is not what would be stored. Nothing was stored: the "
                "request goes back to its requester."
            )
    elif may_hold and (
        kinds := registration_kinds(
            settings, permissions=permissions, purpose=form.purpose, beyond=beyond
        )
    ):
        raise HeldForApproval(
            _hold_registration(
                engine, ring, settings, form, permissions, kinds=kinds, beyond=beyond, now=now
            )
        )
    approvers: list[str] = []
    try:
        with session_scope(engine) as session:
            ensure_unique(session, ring, form)  # again: someone may have been faster
            account = _account(session, form.team_id, form.account_alias)
            if form.purpose == KeyPurpose.GOVERNOR:
                refuse_second_governor(session, account)
            row = ApiKey(
                team_id=form.team_id,
                label=form.label,
                account_id=account.id,
                owner_user_id=form.owner_user_id,
                purpose=form.purpose.value,
                key_type=form.key_type.value,
                api_key_masked=mask_api_key(form.api_key),
                permissions_json=permissions.to_dict(),
                permissions_checked_at=now,
                created_by=form.actor,
                created_at=now,
                updated_at=now,
                last_rotated_at=now,
                rotation_period_days=settings.default_rotation_days,
                delivery_sink=chosen_sink(settings, form.delivery),
            )
            seal_api_key_row(ring, row, api_key=form.api_key, secret=form.secret)
            session.add(row)
            session.flush()
            plan_reminders(session, row, settings, now=now)
            plan_delivery(session, row, settings=settings, reason="registration", now=now)
            if within is not None:
                within(session, row)
            if approved is not None:
                approvers = finish_applied(session, approved, key_id=row.id, now=now).approved_by
            announced = announce_if_moves_funds(
                session, row, permissions, "registered", actor=form.actor, now=now
            )
            plan_team_check(
                session,
                form.team_id,
                interval=timedelta(hours=settings.drift_check_hours),
                now=now,
            )
            if permissions.flag("enableReading"):
                plan_team_review(session, form.team_id, now=now)
            record_event(
                session,
                team_id=form.team_id,
                actor=form.actor,
                action=AuditAction.KEY_REGISTER,
                target=form.label,
                target_key_id=row.id,
                source=form.source,
                detail={
                    "owner": form.owner_user_id,
                    "purpose": form.purpose.value,
                    "key_type": form.key_type.value,
                    "account": form.account_alias,
                    "masked": row.api_key_masked,
                    "tier": permissions.tier.name,
                    "confirmed_beyond_purpose": bool(beyond),
                    "accepted": beyond,
                    "announced": announced,
                    **(
                        {"approval": approved.request_id, "approved_by": approvers}
                        if approved is not None
                        else {}
                    ),
                },
            )
            key_id, masked = row.id, row.api_key_masked
    except IntegrityError:
        # Another replica stored the same label or the same API key a moment ago: say which.
        with Session(engine) as session:
            ensure_unique(session, ring, form)
        # Neither: the database refused the write for another reason. That is not the
        # person's label to change: the caller apologises (nothing was stored).
        raise
    return RegisteredKey(
        key_id=key_id,
        label=form.label,
        masked=masked,
        account_alias=form.account_alias,
        owner_user_id=form.owner_user_id,
        purpose=form.purpose,
        key_type=form.key_type,
        permissions=permissions,
        findings=assess(
            purpose=form.purpose, now=now, permissions=permissions, key_type=form.key_type
        ),
    )


def _hold_registration(
    engine: Engine,
    ring: KeyRing,
    settings: Settings,
    form: RegistrationForm,
    permissions: binance.KeyPermissions,
    *,
    kinds: list[ApprovalKind],
    beyond: list[str],
    now: datetime,
) -> ApprovalView:
    """Hold the registration as an approval request, the key and secret sealed in it; a
    generated pair it completes hands its private key over (its row is shredded)."""
    with session_scope(engine) as session:
        ensure_unique(session, ring, form)
        if form.completing_pair is not None:
            pair = session.get(PendingKeyPair, form.completing_pair, with_for_update=True)
            if pair is None or pair.state != PendingPairState.PENDING.value:
                raise InvalidInput("That key pair was completed or destroyed a moment ago.")
            pair.private_key_sealed = None
            pair.seal_key_id = None
            pair.state = PendingPairState.COMPLETED.value  # its key is held for approval
            pair.ended_at = now
        return hold_change(
            session,
            ring,
            settings,
            team_id=form.team_id,
            change="register",
            kinds=kinds,
            at_stake=permissions_at_stake(permissions, beyond),
            label=form.label,
            requested_by=form.actor,
            now=now,
            form=form.held_fields(),
            permissions=permissions,
            account_alias=form.account_alias,
            masked=mask_api_key(form.api_key),
            owner_user_id=form.owner_user_id,
            api_key=form.api_key,
            secret=form.secret,
            source=form.source,
        )


def require_owner_confirmation(
    excess: list[str],
    *,
    confirmed: bool,
    actor: str,
    owner: str | None,
    what: str,
    fix: str,
    field: str,
    after: str = "",
) -> None:
    """A key that can do more than it should needs its owner's tick on the form (registration
    and rotation ask the same way): refused with the reasons otherwise."""
    if not excess or (confirmed and (not owner or actor == owner)):
        return
    who = "you" if not owner or owner == actor else f"the owner <@{owner}>"
    raise NeedsConfirmation(
        f"{what}: " + "; ".join(excess) + f". {fix}, or {who} must tick the confirmation." + after,
        field=field,
    )


def moves_funds(permissions: binance.KeyPermissions) -> bool:
    """Withdraw tier or transfer rights: a leak of such a key can move funds."""
    return permissions.tier >= binance.Tier.WITHDRAW or bool(permissions.transfer_rights)


def announce_if_moves_funds(
    session: Session,
    row: ApiKey,
    permissions: binance.KeyPermissions,
    what: str,
    *,
    actor: str,
    now: datetime,
) -> bool:
    """Schedule (in the caller's transaction) the announcement to the owner and the alert
    channel that a key that can move funds was ``what``; True if one was scheduled."""
    if not moves_funds(permissions):
        return False
    account = session.get(BinanceAccount, row.account_id)
    powers = [n for n in ("enableWithdrawals",) if permissions.flag(n)]
    powers += list(permissions.transfer_rights)
    facts = {
        "label": row.label,
        "masked": row.api_key_masked,
        "account": account.alias if account is not None else None,
        "owner": row.owner_user_id,
        "actor": actor,
        "tier": permissions.tier.name,
        "powers": [permission_name(n) for n in powers],
    }
    schedule_jobs(
        session,
        [key_announce(team_id=row.team_id, key_id=row.id, what=what, facts=facts, due_at=now)],
    )
    return True


def live_governor(session: Session, account_id: str) -> ApiKey | None:
    """The master account's governor key, if one is registered and not retired or reported."""
    return session.exec(
        select(ApiKey).where(
            ApiKey.account_id == account_id,
            ApiKey.purpose == KeyPurpose.GOVERNOR.value,
            col(ApiKey.status).in_((KeyStatus.ACTIVE.value, KeyStatus.ROTATING.value)),
        )
    ).first()


def refuse_second_governor(session: Session, account: BinanceAccount) -> None:
    """One governor per master account, and none on a sub-account (Binance lets only a master
    account manage sub-account keys)."""
    if account.master_account_id is not None:
        raise InvalidInput(
            f"“{account.alias}” is a sub-account: only its master account can have a governor. "
            "Nothing was stored."
        )
    existing = live_governor(session, account.id)
    if existing is not None:
        raise InvalidInput(
            f"“{account.alias}” already has a governor (“{existing.label}”). Remove it first to "
            "register another. Nothing was stored."
        )


def _account(session: Session, team_id: str, alias: str) -> BinanceAccount:
    existing = session.exec(
        select(BinanceAccount).where(
            BinanceAccount.team_id == team_id, BinanceAccount.alias == alias
        )
    ).first()
    if existing is not None:
        return existing
    account = BinanceAccount(team_id=team_id, alias=alias)
    session.add(account)
    session.flush()
    return account


def account_aliases(session: Session, team_id: str) -> list[str]:
    return list(
        session.exec(
            select(BinanceAccount.alias)
            .where(BinanceAccount.team_id == team_id)
            .order_by(BinanceAccount.alias)
        ).all()
    )


def live_keys(session: Session, team_id: str) -> list[tuple[ApiKey, BinanceAccount]]:
    rows = session.exec(
        select(ApiKey, BinanceAccount)
        .join(BinanceAccount, col(BinanceAccount.id) == ApiKey.account_id)
        .where(ApiKey.team_id == team_id, col(ApiKey.status).not_in(RETIRED_STATUSES))
        .order_by(ApiKey.label)
    ).all()
    return list(rows)


def list_keys(session: Session, team_id: str) -> list[KeySummary]:
    return [summarise(key, account) for key, account in live_keys(session, team_id)]


def summarise(key: ApiKey, account: BinanceAccount) -> KeySummary:
    last_tier: binance.Tier | None = None
    new_on: tuple[str, ...] = ()
    if key.permissions_json:
        observed = binance.KeyPermissions.from_dict(key.permissions_json)
        last_tier, new_on = observed.tier, observed.new_flags_on
    return KeySummary(
        key_id=key.id,
        label=key.label,
        owner_user_id=key.owner_user_id,
        purpose=KeyPurpose(key.purpose),
        key_type=KeyType(key.key_type),
        status=KeyStatus(key.status),
        masked=key.api_key_masked,
        account_alias=account.alias,
        created_at=key.created_at,
        last_tier=last_tier,
        checked_at=key.permissions_checked_at,
        new_permissions_on=new_on,
    )


T = TypeVar("T")


def unknown_label(label: str, close: list[str] | None = None) -> str:
    """No key has this label; ``close``: registered labels it may be a typing mistake of."""
    if close:
        names = " or ".join(f"“{c}”" for c in close)
        return f"No registered key is labelled “{label}”. Did you mean {names}?"
    return f"No registered key is labelled “{label}”. `/apikey list` shows the labels."


def close_labels(session: Session, team_id: str, label: str) -> list[str]:
    """Up to two live labels that ``label`` is probably a mistyping of (difflib's ratio)."""
    labels = session.exec(
        select(ApiKey.label).where(
            ApiKey.team_id == team_id, col(ApiKey.status).not_in(RETIRED_STATUSES)
        )
    ).all()
    by_folded = {name.casefold(): name for name in labels}
    close = difflib.get_close_matches(label.casefold(), list(by_folded), n=2, cutoff=0.75)
    return [by_folded[c] for c in close]


def labelled(label: str) -> sa.ColumnElement[bool]:
    """SQL filter: the label as written, or the same label in another case (``pick_label``
    then prefers the exact one)."""
    return sa.or_(col(ApiKey.label) == label, sa.func.lower(ApiKey.label) == label.lower())


def pick_label(rows: list[T], label: str, label_of: Callable[[T], str]) -> list[T]:
    """The rows labelled exactly ``label``, else those labelled the same regardless of case."""
    exact = [r for r in rows if label_of(r) == label]
    return exact or [r for r in rows if label_of(r).casefold() == label.casefold()]


def find_live_key(
    session: Session, team_id: str, label: str, *, not_found: str | None = None
) -> tuple[ApiKey, BinanceAccount]:
    """The live key labelled ``label`` (in any case when no exact match), with its account;
    ``not_found`` replaces the standard message when there is none."""
    rows = session.exec(
        select(ApiKey, BinanceAccount)
        .join(BinanceAccount, col(BinanceAccount.id) == ApiKey.account_id)
        .where(
            ApiKey.team_id == team_id,
            labelled(label),
            col(ApiKey.status).not_in(RETIRED_STATUSES),
        )
    ).all()
    found = pick_label(list(rows), label, lambda row: row[0].label)
    if not found:
        if not_found is not None:
            raise KeyNotFound(not_found)
        raise KeyNotFound(unknown_label(label, close_labels(session, team_id, label)))
    if len(found) > 1:
        names = ", ".join(f"“{row[0].label}”" for row in found)
        raise KeyNotFound(f"Several keys match “{label}”: {names}. Write the label exactly.")
    return found[0]


def remove_key(
    *, engine: Engine, actor: Actor, key_id: str, source: str | None = None
) -> KeySummary:
    """Crypto-shred the key's sealed material and mark it removed; the audit trail stays.
    Only its owner or an admin may."""
    team_id = actor.team_id
    with Session(engine) as session:
        key = session.get(ApiKey, key_id)
        if key is not None and key.team_id == team_id:
            require_manage_key(engine, actor, key, action="remove")
    with session_scope(engine) as session:
        key = session.get(ApiKey, key_id, with_for_update=True)
        if key is None or key.team_id != team_id:
            raise KeyNotFound("That key does not exist (any more).")
        if key.status in RETIRED_STATUSES:
            raise KeyNotFound(f"“{key.label}” was already removed; nothing changed.")
        shred_api_key_row(key)
        key.status = KeyStatus.REMOVED.value
        key.updated_at = utcnow()
        cancel_jobs(session, key_id=key.id, kinds=KEY_LIFECYCLE_KINDS)
        plan_cleanup(session, key, now=key.updated_at)
        last_seen = binance.KeyPermissions.from_dict(key.permissions_json or {})
        announced = announce_if_moves_funds(
            session, key, last_seen, "removed", actor=actor.user_id, now=key.updated_at
        )
        resolve_page(session, dedup_key=withdrawals_page_key(key.id), now=key.updated_at)
        record_event(
            session,
            team_id=team_id,
            actor=actor.user_id,
            action=AuditAction.KEY_REMOVE,
            target=key.label,
            target_key_id=key.id,
            source=source,
            detail={"masked": key.api_key_masked, "announced": announced},
        )
        return summarise(key, account_row(session, key))


def open_credentials(ring: KeyRing, key: ApiKey) -> binance.Credentials:
    """The key's credentials, opened for one Binance call. Never log or keep the result."""
    if key.api_key_sealed is None or key.secret_sealed is None:
        raise KeyNotFound(f"“{key.label}” has no stored secret any more.")
    return binance.Credentials(
        api_key=ring.open_text(key.api_key_sealed, context=key.api_key_context()),
        secret=ring.open_text(key.secret_sealed, context=key.secret_context()),
        key_type=binance.KeyType(key.key_type),
    )


def get_summary(session: Session, team_id: str, key_id: str) -> KeySummary:
    key = session.get(ApiKey, key_id)
    if key is None or key.team_id != team_id:
        raise KeyNotFound("That key does not exist (any more).")
    return summarise(key, account_row(session, key))


# --- reads for listeners: each opens its own session (see README, "Architecture") -----------


def known_accounts(engine: Engine, team_id: str) -> list[str]:
    """The team's Binance account aliases, for the register form's menu."""
    with Session(engine) as session:
        return account_aliases(session, team_id)


def registered_keys(engine: Engine, team_id: str) -> list[KeySummary]:
    with Session(engine) as session:
        return list_keys(session, team_id)


def key_summary(engine: Engine, team_id: str, key_id: str) -> KeySummary:
    with Session(engine) as session:
        return get_summary(session, team_id, key_id)


def key_to_report(engine: Engine, actor: Actor, *, key_id: str) -> KeySummary:
    """The live key ``key_id`` of the actor's team, to report compromised: anyone may (a leak
    never waits for permission); a key of another team, or one gone, is not found."""
    with Session(engine) as session:
        summary = get_summary(session, actor.team_id, key_id)
    if summary.status in RETIRED_STATUSES:
        raise KeyNotFound("That key does not exist (any more).")
    return summary


def key_to_manage(
    engine: Engine,
    actor: Actor,
    *,
    action: str,
    label: str | None = None,
    key_id: str | None = None,
) -> KeySummary:
    """The live key named by ``label`` (or ``key_id``), if ``actor`` may ``action`` it: its
    owner or an admin; anyone else is refused (audited, nothing changed)."""
    with Session(engine) as session:
        if label is not None:
            summary = summarise(*find_live_key(session, actor.team_id, label))
        elif key_id is not None:
            summary = get_summary(session, actor.team_id, key_id)
            if summary.status in (KeyStatus.REMOVED, KeyStatus.REVOKED):  # an old menu or button
                raise KeyNotFound(
                    f"“{summary.label}” is no longer registered ({summary.status.value}); "
                    "nothing was changed."
                )
        else:
            raise KeyNotFound("Which key? Name it by its label.")
    require_manage(
        engine,
        actor,
        action=action,
        label=summary.label,
        owner_user_id=summary.owner_user_id,
        key_id=summary.key_id,
    )
    return summary


def check_unique(engine: Engine, ring: KeyRing, form: RegistrationForm) -> None:
    """Refuse a label or API key already registered, before asking Binance."""
    with Session(engine) as session:
        ensure_unique(session, ring, form)
