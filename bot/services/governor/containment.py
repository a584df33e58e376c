"""Containment in seconds: a governed key reported compromised is deleted (or quarantined) in
Binance by the governor at once, and the deletion is proven by probing.

Policy ``CONTAIN_ON_REPORT``:
- ``delete`` (default): the governor deletes the key
  (DELETE /sapi/v1/sub-account/subAccountApi); then the bot signs apiRestrictions with the
  key itself. Binance deleted it on the governor's request and now rejects it: that is proof,
  so step 1 of the checklist is ticked "deleted by the bot through the API".
- ``quarantine``: the key's IP list is cut to the bot's own addresses (BOT_EGRESS_IPS), proven
  by reading the list back; the old list is kept so a false alarm can give it back
  (``restore_after_false_alarm``).

Exactly one attempt runs at a time (``claim``: the incident row's ``containment`` goes from
nothing, or from a failure or a stale attempt, to "containing"), whether it comes from the
listener that raised the incident (at once) or from the job that retries it. A failure is
recorded with Binance's words, told on the checklist, and retried by the job with backoff;
the person's path (delete it in Binance by hand) stays open all along.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import binance
from bot.binance.governor import GovernorGateway
from bot.config import Settings
from bot.model.incidents import KEY_DELETED_STEP
from bot.services.context import Services
from bot.services.custody.keys import live_governor, open_credentials
from bot.services.errors import InvalidInput
from bot.services.governor.calls import CallContext, on_behalf_of
from bot.vocabulary import AuditAction, Containment
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import (
    ApiKey,
    BinanceAccount,
    Incident,
    IncidentState,
    IncidentStep,
    utcnow,
)

log = logging.getLogger(__name__)

# An attempt "containing" for longer than this died with its replica: another may take over.
STALE_ATTEMPT = timedelta(minutes=2)
# Retries of a failed containment by the job: back off, then every 5 minutes.
RETRY_DELAYS = (5, 15, 30, 60, 120, 300)
DELETED_NOTE = "deleted by the bot through Binance's API"
# The probe after a deletion: Binance may take a moment to forget a key everywhere.
PROOF_WAITS = (0.0, 0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Governed:
    """A governed key's incident and what containing it needs (never the secrets)."""

    incident_id: str
    team_id: str
    key_id: str
    label: str
    email: str
    governor_id: str
    raised_at: datetime


@dataclass(frozen=True)
class ContainmentResult:
    containment: Containment
    note: str
    contained_at: datetime | None


def governed_incident(session: Session, incident_id: str) -> Governed | None:
    """The incident's key, if it lives in a sub-account whose master has a governor."""
    incident = session.get(Incident, incident_id)
    if incident is None or incident.state != IncidentState.OPEN.value:
        return None
    key = session.get(ApiKey, incident.key_id)
    account = session.get(BinanceAccount, key.account_id) if key is not None else None
    if key is None or account is None or account.master_account_id is None:
        return None
    governor = live_governor(session, account.master_account_id)
    if governor is None or key.api_key_sealed is None:
        return None
    return Governed(
        incident_id=incident.id,
        team_id=incident.team_id,
        key_id=key.id,
        label=key.label,
        email=account.sub_account_email or account.alias,
        governor_id=governor.id,
        raised_at=incident.raised_at,
    )


def is_governed(engine: Engine, incident_id: str) -> bool:
    with Session(engine) as session:
        return governed_incident(session, incident_id) is not None


def still_to_contain(engine: Engine, incident_id: str) -> bool:
    """The incident is open, its key governed, and not contained yet."""
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.containment in (
            Containment.DELETED.value,
            Containment.QUARANTINED.value,
        ):
            return False
        return governed_incident(session, incident_id) is not None


def claim(engine: Engine, incident_id: str, now: datetime) -> Governed | None:
    """Take the incident's containment for this attempt (None: nothing to do, or another
    attempt runs or succeeded)."""
    with session_scope(engine) as session:
        incident = session.get(Incident, incident_id, with_for_update=True)
        if incident is None:
            return None
        state = incident.containment
        if state in (Containment.DELETED.value, Containment.QUARANTINED.value):
            return None
        started = incident.containment_started_at
        if state == Containment.CONTAINING.value and started and now - started < STALE_ATTEMPT:
            return None
        governed = governed_incident(session, incident_id)
        if governed is None:
            return None
        incident.containment = Containment.CONTAINING.value
        incident.containment_started_at = now
        return governed


def contain(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    governor: GovernorGateway,
    settings: Settings,
    incident_id: str,
    actor: str,
    clock: Callable[[], datetime] = utcnow,
) -> ContainmentResult | None:
    """Contain the incident's key now, if it is governed and not contained yet (None: not
    governed, or another attempt runs or succeeded)."""
    now = clock()
    governed = claim(engine, incident_id, now)
    if governed is None:
        return None
    with Session(engine) as session:
        key = session.get(ApiKey, governed.key_id)
        governor_row = session.get(ApiKey, governed.governor_id)
        if key is None or governor_row is None:
            return _failed(engine, governed, "the key or its governor was removed", now)
        key_creds = open_credentials(ring, key)
        governor_creds = open_credentials(ring, governor_row)
    quarantine = settings.contain_on_report == "quarantine"
    context = CallContext(
        team_id=governed.team_id,
        actor=actor,
        why="quarantine" if quarantine else "contain",
        key_id=governed.key_id,
        label=governed.label,
        incident_id=governed.incident_id,
    )
    try:
        with on_behalf_of(context):
            if quarantine:
                return _quarantine(
                    engine, governor, governor_creds, key_creds, governed, settings, clock
                )
            return _delete(engine, gateway, governor, governor_creds, key_creds, governed, clock)
    except binance.BinanceError as error:
        return _failed(engine, governed, error.user_message, clock())


def _delete(
    engine: Engine,
    gateway: binance.BinanceGateway,
    governor: GovernorGateway,
    governor_creds: binance.Credentials,
    key_creds: binance.Credentials,
    governed: Governed,
    clock: Callable[[], datetime],
) -> ContainmentResult:
    try:
        governor.delete_sub_account_key(
            governor_creds, email=governed.email, api_key=key_creds.api_key
        )
    except binance.KeyRejected as error:
        # Binance knows no such key of this sub-account: deleted already (by a person, or by
        # an earlier attempt whose answer was lost). The probe below decides.
        log.info("governor delete: Binance rejected the key (%s); probing", error.code)
    proof = _prove_rejected(gateway, key_creds)
    if proof is None:
        return _failed(
            engine,
            governed,
            "Binance accepted the deletion, but still accepts the key: checking again",
            clock(),
        )
    return _succeeded(engine, governed, Containment.DELETED, DELETED_NOTE, clock(), proof)


def _prove_rejected(gateway: binance.BinanceGateway, creds: binance.Credentials) -> str | None:
    """Binance's words rejecting the key signed by itself (None: it still accepts it)."""
    for wait in PROOF_WAITS:
        time.sleep(wait)
        try:
            gateway.api_restrictions(creds)
        except binance.KeyRejected as rejected:
            return rejected.binance_said or "rejected"
    return None


def _quarantine(
    engine: Engine,
    governor: GovernorGateway,
    governor_creds: binance.Credentials,
    key_creds: binance.Credentials,
    governed: Governed,
    settings: Settings,
    clock: Callable[[], datetime],
) -> ContainmentResult:
    bot_ips = tuple(settings.bot_egress_ips)
    if not bot_ips:
        return _failed(engine, governed, "BOT_EGRESS_IPS is not set", clock())
    email, api_key = governed.email, key_creds.api_key
    before = governor.ip_restriction(governor_creds, email=email, api_key=api_key)
    _remember_list(engine, governed, before.ip_list if before.restricted else None)
    governor.restrict_ips(governor_creds, email=email, api_key=api_key, ip_addresses=bot_ips)
    others = [ip for ip in before.ip_list if ip not in bot_ips]
    if others:
        governor.remove_ips(governor_creds, email=email, api_key=api_key, ip_addresses=others)
    after = governor.ip_restriction(governor_creds, email=email, api_key=api_key)
    if not after.restricted or set(after.ip_list) - set(bot_ips):
        return _failed(engine, governed, "Binance still lists other addresses for the key", clock())
    note = "quarantined: Binance now accepts it only from the bot's addresses " + ", ".join(bot_ips)
    return _succeeded(engine, governed, Containment.QUARANTINED, note, clock(), None)


def _remember_list(engine: Engine, governed: Governed, ips: tuple[str, ...] | None) -> None:
    with session_scope(engine) as session:
        incident = session.get(Incident, governed.incident_id, with_for_update=True)
        if incident is not None and incident.quarantined_from is None:
            # ["*"]: it had no IP restriction at all (a false alarm lifts it again).
            incident.quarantined_from = list(ips) if ips is not None else ["*"]


def _succeeded(
    engine: Engine,
    governed: Governed,
    containment: Containment,
    note: str,
    at: datetime,
    binance_said: str | None,
) -> ContainmentResult:
    with session_scope(engine) as session:
        incident = session.get(Incident, governed.incident_id, with_for_update=True)
        if incident is None:
            return ContainmentResult(containment, note, at)
        incident.containment = containment.value
        incident.contained_at = at
        incident.containment_note = note
        if containment is Containment.DELETED:
            incident.key_dead_at = incident.key_dead_at or at
            incident.last_probe_at = at
            incident.last_probe_result = "rejected"
            if session.get(IncidentStep, (incident.id, KEY_DELETED_STEP)) is None:
                session.add(
                    IncidentStep(
                        incident_id=incident.id,
                        step=KEY_DELETED_STEP,
                        ticked_by="bot",
                        ticked_at=at,
                        automatic=True,
                    )
                )
        seconds = round((at - incident.raised_at).total_seconds(), 3)
        record_event(
            session,
            team_id=incident.team_id,
            actor="bot",
            action=AuditAction.INCIDENT_CONTAINED,
            target=incident.label,
            target_key_id=incident.key_id,
            source="governor",
            detail={
                "incident": incident.id,
                "how": containment.value,
                "seconds_from_report": seconds,
                **({"binance": binance_said} if binance_said else {}),
            },
        )
    return ContainmentResult(containment, note, at)


def _failed(engine: Engine, governed: Governed, why: str, at: datetime) -> ContainmentResult:
    note = f"the bot could not contain it through Binance's API: {why}"[:300]
    with session_scope(engine) as session:
        incident = session.get(Incident, governed.incident_id, with_for_update=True)
        if incident is not None:
            incident.containment = Containment.FAILED.value
            incident.containment_note = note
            record_event(
                session,
                team_id=incident.team_id,
                actor="bot",
                action=AuditAction.INCIDENT_CONTAINMENT_FAILED,
                target=incident.label,
                target_key_id=incident.key_id,
                source="governor",
                detail={"incident": incident.id, "why": why[:200]},
            )
    return ContainmentResult(Containment.FAILED, note, None)


def contain_with(services: Services, incident_id: str, *, actor: str) -> ContainmentResult | None:
    """``contain`` with the process's gateways, settings and clock."""
    return contain(
        engine=services.engine,
        ring=services.ring,
        gateway=services.gateway,
        governor=services.governor_gateway,
        settings=services.settings,
        incident_id=incident_id,
        actor=actor,
        clock=services.clock,
    )


def lift_quarantine(
    *,
    engine: Engine,
    ring: KeyRing,
    governor: GovernorGateway,
    settings: Settings,
    incident_id: str,
    actor: str,
) -> None:
    """A false alarm: give the quarantined key its IP list back (as it was when reported), and
    prove it by reading the list back. Raises InvalidInput (nothing else changed) if Binance
    does not do it."""
    with Session(engine) as session:
        governed = governed_incident(session, incident_id)
        incident = session.get(Incident, incident_id)
        if governed is None or incident is None or incident.quarantined_from is None:
            raise InvalidInput(
                "The bot no longer governs this key, so it cannot give its IP list back. "
                "Close the incident as handled."
            )
        original = list(incident.quarantined_from)
        key = session.get(ApiKey, governed.key_id)
        governor_row = session.get(ApiKey, governed.governor_id)
        if key is None or governor_row is None:
            raise InvalidInput("The key or its governor was removed meanwhile.")
        key_creds = open_credentials(ring, key)
        governor_creds = open_credentials(ring, governor_row)
    email, api_key = governed.email, key_creds.api_key
    context = CallContext(
        team_id=governed.team_id,
        actor=actor,
        why="restore",
        key_id=governed.key_id,
        label=governed.label,
        incident_id=incident_id,
    )
    unrestricted = original == ["*"]
    try:
        with on_behalf_of(context):
            if unrestricted:
                after = governor.lift_ip_restriction(governor_creds, email=email, api_key=api_key)
            else:
                governor.restrict_ips(
                    governor_creds, email=email, api_key=api_key, ip_addresses=original
                )
                extra = [ip for ip in settings.bot_egress_ips if ip not in original]
                if extra:
                    governor.remove_ips(
                        governor_creds, email=email, api_key=api_key, ip_addresses=extra
                    )
                after = governor.ip_restriction(governor_creds, email=email, api_key=api_key)
    except binance.BinanceError as error:
        raise InvalidInput(
            f"Binance did not give the key its IP list back: {error.user_message} The key "
            "stays quarantined and the incident open; try again in a minute."
        ) from None
    restored = not after.restricted if unrestricted else set(after.ip_list) == set(original)
    if not restored:
        raise InvalidInput(
            "Binance does not show the key's old IP list back yet: it stays quarantined and the "
            "incident open; try again in a minute."
        )
    with session_scope(engine) as session:
        row = session.get(Incident, incident_id, with_for_update=True)
        if row is not None:
            row.containment_note = ((row.containment_note or "") + "; IP list given back")[:300]
