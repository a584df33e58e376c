"""The incident's activity review: withdrawals and deposits since the leak, read through a
still-working key of the account, withdrawals to new addresses flagged; and what the account's
other keys can do now."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bot import binance
from bot.services.custody.keys import open_credentials
from bot.services.rows import incident_row, key_row
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import KeyRing
from storage.db import session_scope
from storage.models import RETIRED_STATUSES, ApiKey

KNOWN_ADDRESS_LOOKBACK = timedelta(days=90)


def review_activity(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    incident_id: str,
    now: datetime,
) -> dict[str, Any]:
    """Withdrawals and deposits since ``activity_since``, read through a working key of the
    account; withdrawals to addresses not used in the 90 days before are flagged."""
    with Session(engine) as session:
        incident = incident_row(session, incident_id)
        compromised = key_row(session, incident.key_id)
        candidates = session.exec(
            select(ApiKey).where(
                ApiKey.account_id == compromised.account_id,
                col(ApiKey.status).not_in(RETIRED_STATUSES),
                col(ApiKey.secret_sealed).is_not(None),
            )
        ).all()
        since = incident.activity_since
    _refresh_other_keys(
        engine, ring, gateway, incident_id, [k for k in candidates if k.id != compromised.id]
    )
    # Prefer keys that are not compromised; the compromised key itself is the last resort.
    candidates = sorted(candidates, key=lambda k: k.id == compromised.id)
    last_error = "no other registered key of this account can read it"
    activity: dict[str, Any] = {
        "source": None,
        "since": since.isoformat(),
        "rows": [],
        "error": last_error,
    }
    for key in candidates:
        creds = open_credentials(ring, key)
        try:
            withdrawals = gateway.withdraw_history(
                creds, start=since - KNOWN_ADDRESS_LOOKBACK, end=now, account=key.account_id
            )
            deposits = gateway.deposit_history(creds, start=since, end=now)
        except binance.BinanceError as error:
            activity["error"] = f"“{key.label}”: {error.user_message}"
            if isinstance(error, binance.RateLimited):
                break  # a limit of the account or IP, not of this key: the others would wait too
            continue
        known = {w.address for w in withdrawals if w.time and w.time < since and w.address}
        rows = [
            _row(w, new_address=bool(w.address) and w.address not in known)
            for w in withdrawals
            if w.time is None or w.time >= since
        ]
        rows += [_row(d, new_address=False) for d in deposits]
        rows.sort(key=lambda r: r["time"] or "", reverse=True)
        activity = {"source": key.label, "since": since.isoformat(), "rows": rows, "error": None}
        break
    with session_scope(engine) as session:
        incident = incident_row(session, incident_id, for_update=True)
        incident.activity = activity
        record_event(
            session,
            team_id=incident.team_id,
            actor="bot",
            action=AuditAction.INCIDENT_ACTIVITY_REVIEW,
            target=incident.label,
            target_key_id=incident.key_id,
            detail={
                "incident": incident_id,
                "rows": len(activity["rows"]),
                "new_addresses": sum(1 for r in activity["rows"] if r["new_address"]),
                "source": activity["source"],
            },
        )
    return activity


def _refresh_other_keys(
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    incident_id: str,
    others: list[ApiKey],
) -> None:
    """Ask Binance what the account's other keys can do now (the team must delete them too if
    the account is breached); a key Binance cannot be asked about keeps its last known tier."""
    if not others:
        return
    results = gateway.check_many([open_credentials(ring, k) for k in others])
    current = {}
    for key, result in zip(others, results, strict=True):
        if result.permissions is not None:
            current[key.label] = result.permissions.tier.name.title()
        elif isinstance(result.error, binance.KeyRejected):
            current[key.label] = "rejected by Binance"
    with session_scope(engine) as session:
        incident = incident_row(session, incident_id, for_update=True)
        incident.other_keys = [
            {
                **row,
                "tier": current.get(row["label"], row["tier"]),
                "checked": row["label"] in current,
            }
            for row in incident.other_keys
        ]


def _row(row: binance.TransferRow, *, new_address: bool) -> dict[str, Any]:
    return {
        "kind": row.kind.value,
        "amount": str(row.amount) if row.amount is not None else "?",
        "coin": row.coin or "?",
        "address": row.address or "",
        "network": row.network or "",
        "time": row.time.isoformat() if row.time else None,
        "status": row.status_text,
        "new_address": new_address,
    }
