"""One click after containment: the governor makes a successor of a deleted key, with the
same permissions and IP list, under the same label, delivered to the same sink, so the
service that used the key is back before anyone opens Binance.

Only once the governor has deleted the key and a probe proved it (a quarantined key still
exists: a person decides about it first). The deleted key's row is retired (its secret
destroyed, its label and sink destination freed) before the successor is made; the incident
stays open and names the successor.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot import binance
from bot.binance import GovernorGateway, SubAccountGrant
from bot.config import Settings
from bot.job_queue.kinds import incident_activity
from bot.job_queue.queue import schedule_jobs
from bot.model.keys import RegisteredKey
from bot.services.access import Actor, deny
from bot.services.custody.delivery_plan import plan_cleanup
from bot.services.custody.keys import register_key
from bot.services.errors import InvalidInput
from bot.services.governor.containment import governed_incident
from bot.services.governor.minting import (
    GovernedTarget,
    MintRequest,
    Within,
    mint_form,
    mint_key,
)
from bot.vocabulary import Containment
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.master_keys import shred_api_key_row
from storage.models import (
    ApiKey,
    BinanceAccount,
    Incident,
    IncidentState,
    KeyPurpose,
    KeyStatus,
    utcnow,
)


def create_successor(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    governor: GovernorGateway,
    settings: Settings,
    actor: Actor,
    incident_id: str,
    now: datetime | None = None,
) -> RegisteredKey:
    """Make the deleted key's successor (its owner or an admin; see the module docstring)."""
    now = now or utcnow()
    with Session(engine) as session:
        incident = session.get(Incident, incident_id)
        if incident is None or incident.team_id != actor.team_id:
            raise InvalidInput("That incident does not exist.")
        old = session.get(ApiKey, incident.key_id)
        if old is None:
            raise InvalidInput("The reported key is gone; register a new one.")
        if not actor.may_manage(old.owner_user_id):
            raise deny(
                engine,
                actor,
                action="create a successor key",
                target=old.label,
                target_key_id=old.id,
                message=f"Only the owner of “{old.label}” or an admin can have the bot create its "
                "successor. Nothing was changed.",
            )
        if incident.state != IncidentState.OPEN.value:
            raise InvalidInput("This incident is closed: register a new key with the form.")
        if incident.successor_key_id is not None:
            raise InvalidInput(f"The successor of “{old.label}” was already created.")
        if incident.containment != Containment.DELETED.value:
            raise InvalidInput(
                f"“{old.label}” is not deleted by the bot yet: a successor is offered once "
                "Binance rejects the old key."
            )
        account = session.get(BinanceAccount, old.account_id)
        governed = governed_incident(session, incident_id)
        if account is None or governed is None:
            raise InvalidInput("The key's sub-account no longer has a governor.")
        seen = incident.permissions_at_raise or old.permissions_json or {}
        permissions = binance.KeyPermissions.from_dict(seen)
        if old.ip_addresses is None and permissions.ip_restrict:
            raise InvalidInput(
                f"The bot does not know which IP addresses “{old.label}” was restricted to "
                "(it was not made by the bot): create the successor with `/apikey register` "
                "and give them there."
            )
        target = GovernedTarget(
            account_id=account.id,
            alias=account.alias,
            email=governed.email,
            governor_id=governed.governor_id,
            governor_label="",
        )
        request = MintRequest(
            team_id=old.team_id,
            actor=actor.user_id,
            label=old.label,
            sub_account=account.alias,
            owner_user_id=old.owner_user_id or actor.user_id,
            purpose=KeyPurpose(old.purpose),
            confirm_more=True,  # exactly what the old key could do, as its owner accepted it
            delivery=old.delivery_sink or "nowhere",
            source="slack:incident",
            actor_is_admin=True,  # the owner stays the old key's, whoever presses
        )
        ips = list(old.ip_addresses) if old.ip_addresses is not None else None
        old_id = old.id
    _retire(engine, old_id, now)
    grant = SubAccountGrant.from_permissions(permissions)

    def store(api_key: str, private_pem: str, within: Within) -> RegisteredKey:
        def completing(session: Session, row: ApiKey) -> None:
            within(session, row)
            locked = session.get(Incident, incident_id, with_for_update=True)
            if locked is not None:
                locked.successor_key_id = row.id
                # Step 3 again, through the successor: the deleted key reads nothing now.
                schedule_jobs(
                    session,
                    [
                        incident_activity(
                            team_id=row.team_id,
                            key_id=row.id,
                            incident_id=incident_id,
                            due_at=now,
                            again="successor",
                        )
                    ],
                )

        form = mint_form(request, target, api_key, private_pem)
        return register_key(
            engine=engine,
            ring=ring,
            gateway=gateway,
            form=form,
            settings=settings,
            now=now,
            within=completing,
            may_hold=False,
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
        reason="successor",
        now=now,
        store=store,
        replaces_key_id=old_id,
    )


def _retire(engine: Engine, key_id: str, now: datetime) -> None:
    """The deleted key leaves the bot (Binance rejects it: it is revoked), freeing its label
    and its sink destination for the successor."""
    with session_scope(engine) as session:
        key = session.get(ApiKey, key_id, with_for_update=True)
        if key is None or key.status != KeyStatus.COMPROMISED.value:
            return
        shred_api_key_row(key)
        key.status = KeyStatus.REVOKED.value
        key.updated_at = now
        plan_cleanup(session, key, now=now)
