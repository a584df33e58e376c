"""`/apikey status`: ask Binance about the chosen keys and judge them (least privilege).

The report is a plain data object: rendering is bot/blocks' job. It is stored briefly so
that its pages can be browsed with buttons without asking Binance again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bot import binance
from bot.commands import StatusTarget, TargetKind
from bot.model.delivery import DeliveryView
from bot.model.findings import KIND_ORDER, Finding, FindingKind, Severity
from bot.model.status import KeyReport, StatusReport
from bot.services.access import Actor, deny
from bot.services.custody.delivery_view import delivery_finding, delivery_view, delivery_views
from bot.services.custody.keys import (
    close_labels,
    live_keys,
    open_credentials,
    pick_label,
    unknown_label,
)
from bot.services.errors import KeyNotFound
from bot.services.oversight.findings import assess
from bot.services.oversight.unmanaged import unmanaged_sub_accounts
from bot.services.oversight.withdrawal_controls import (
    WhitelistReading,
    read_whitelists,
    store_whitelists,
)
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.crypto import CryptoError, KeyRing
from storage.db import session_scope
from storage.models import (
    ApiKey,
    BinanceAccount,
    KeyPurpose,
    KeyStatus,
    KeyType,
    StatusReportRecord,
    new_id,
    utcnow,
)

REPORT_RETENTION = timedelta(days=1)


def describe_target(target: StatusTarget, actor: str) -> str:
    if target.kind == TargetKind.ALL:
        return "all keys"
    if target.kind == TargetKind.MINE:
        return f"keys of <@{actor}>"
    if target.kind == TargetKind.USER:
        return f"keys of <@{target.value}>"
    return f"“{target.value}”"


def _one_key(target: StatusTarget) -> bool:
    """One key asked for by name or chosen from a menu: reported in full."""
    return target.kind in (TargetKind.LABEL, TargetKind.KEY_ID)


def _target_user(target: StatusTarget, actor: str) -> str | None:
    if target.kind == TargetKind.MINE:
        return actor
    return target.value if target.kind == TargetKind.USER else None


def _select(
    session: Session, team_id: str, target: StatusTarget, actor: str
) -> list[tuple[ApiKey, BinanceAccount]]:
    rows = live_keys(session, team_id)
    if target.kind == TargetKind.LABEL:
        label = target.value or ""  # the parser always gives a label here
        rows = pick_label(rows, label, lambda row: row[0].label)
        if not rows:
            raise KeyNotFound(unknown_label(label, close_labels(session, team_id, label)))
    elif target.kind == TargetKind.KEY_ID:  # of this team only: a forged id finds nothing
        rows = [(k, a) for k, a in rows if k.id == target.value]
        if not rows:
            raise KeyNotFound(
                "That key does not exist (any more). Run `/apikey status` for a fresh report."
            )
    elif target.kind in (TargetKind.USER, TargetKind.MINE):
        owner = target.value if target.kind == TargetKind.USER else actor
        rows = [(k, a) for k, a in rows if k.owner_user_id == owner]
    return rows


def run_status(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    target: StatusTarget,
    viewer: Actor,
    source: str | None = None,
    now: datetime | None = None,
) -> StatusReport:
    """Ask Binance about every selected key at once, judge each, remember what it said.

    One key (by label, or by id from a key's menu) is reported in full, more one line each.
    Keys the viewer neither owns nor administers are reported as a summary (tier and how
    serious), without their details."""
    now = now or utcnow()
    team_id, actor = viewer.team_id, viewer.user_id
    # Asked and judged in a call of its own: every key's row, opened secret and Binance answer
    # are gone before the report is stored (10,000 keys: ~40 MB not held while it is).
    judged = _ask_and_judge(
        engine=engine, ring=ring, gateway=gateway, target=target, viewer=viewer, now=now
    )
    reports = [r if viewer.may_see_details(r.owner_user_id) else redact(r) for r in judged.reports]
    reports.sort(key=lambda r: (-r.severity, r.label.lower()))
    report = StatusReport(
        report_id=new_id(),
        scope=describe_target(judged.target, actor),
        created_at=now,
        keys=reports,
        scope_user_id=_target_user(judged.target, actor),
        detailed=_one_key(judged.target),
        unmanaged=_unmanaged(engine, team_id) if target.kind == TargetKind.ALL else [],
    )
    _remember(
        engine,
        report,
        team_id=team_id,
        actor=actor,
        source=source,
        observed=judged.observed,
        whitelists=judged.whitelists,
    )
    return report


@dataclass(frozen=True)
class _Judged:
    target: StatusTarget  # as asked, a key chosen by id said by its label
    reports: list[KeyReport]  # in the order of the keys, before redaction
    observed: dict[str, dict[str, Any]]  # key id -> what Binance said (KeyPermissions.to_dict())
    whitelists: dict[str, WhitelistReading]


def _ask_and_judge(
    *,
    engine: Engine,
    ring: KeyRing,
    gateway: binance.BinanceGateway,
    target: StatusTarget,
    viewer: Actor,
    now: datetime,
) -> _Judged:
    team_id, actor = viewer.team_id, viewer.user_id
    with Session(engine) as session:
        rows = _select(session, team_id, target, actor)
        if target.kind == TargetKind.KEY_ID:  # said by its label, as if typed
            target = StatusTarget(TargetKind.LABEL, rows[0][0].label)
        deliveries = delivery_views(session, [key for key, _account in rows])
    credentials: list[binance.Credentials | None] = []
    for key, _account in rows:
        try:
            credentials.append(open_credentials(ring, key))
        except (CryptoError, KeyNotFound):
            credentials.append(None)
    checkable = [(k, c) for (k, _a), c in zip(rows, credentials, strict=True) if c is not None]
    results = gateway.check_many([c for _k, c in checkable])
    answered = [
        (key, creds, result.permissions)
        for (key, creds), result in zip(checkable, results, strict=True)
        if result.permissions is not None
    ]
    whitelists = read_whitelists(gateway, answered)
    results_iter = iter(results)
    reports = []
    observed: dict[str, dict[str, Any]] = {}
    for (key, account), creds in zip(rows, credentials, strict=True):
        if creds is None:
            findings = [
                Finding(
                    kind=FindingKind.UNREACHABLE,
                    severity=Severity.UNKNOWN,
                    text="The stored secret could not be opened, so the key was not checked.",
                )
            ]
            reports.append(_report(key, account.alias, None, findings))
            continue
        result = next(results_iter)
        permissions = result.permissions
        findings = key_findings(
            key,
            now=now,
            permissions=permissions,
            error=result.error,
            whitelist=whitelists.get(key.account_id, WhitelistReading(account.withdraw_whitelist)),
            delivery=deliveries.get(key.id),
        )
        as_dict = permissions.to_dict() if permissions is not None else None
        if as_dict is not None:
            observed[key.id] = as_dict
        reports.append(
            replace(
                _report(key, account.alias, as_dict, findings),
                delivery=deliveries.get(key.id),
            )
        )
    return _Judged(target=target, reports=reports, observed=observed, whitelists=whitelists)


def key_findings(
    key: ApiKey,
    *,
    now: datetime,
    permissions: binance.KeyPermissions | None,
    error: binance.BinanceError | None,
    whitelist: WhitelistReading,
    delivery: DeliveryView | None,
) -> list[Finding]:
    """Every finding of one key, worst first, from what Binance said about it (just now, or
    as stored) and what the bot knows: the one judgement that status and edits both show."""
    findings = assess(
        purpose=KeyPurpose(key.purpose),
        now=now,
        permissions=permissions,
        error=error,
        previous=key.permissions_json,
        compromised=key.status == KeyStatus.COMPROMISED.value,
        key_type=KeyType(key.key_type),
        withdraw_whitelist=whitelist.any_whitelisted,
        whitelist_error=whitelist.error,
    )
    if (undelivered := delivery_finding(delivery)) is not None:
        findings = sorted([*findings, undelivered], key=lambda f: (-f.severity, KIND_ORDER[f.kind]))
    return findings


def stored_findings(
    session: Session, key: ApiKey, account: BinanceAccount, now: datetime
) -> list[Finding]:
    """``key_findings`` from Binance's last stored answer (nothing is asked): what
    `/apikey status <label>` would show if Binance says the same again. An account whose
    withdrawal addresses were never read says so (status reads them)."""
    permissions = (
        binance.KeyPermissions.from_dict(key.permissions_json) if key.permissions_json else None
    )
    return key_findings(
        key,
        now=now,
        permissions=permissions,
        error=None,
        whitelist=WhitelistReading(
            account.withdraw_whitelist,
            None
            if account.withdraw_whitelist_checked_at is not None
            else f"not read yet for the account “{account.alias}”; "
            f"`/apikey status {key.label}` reads it.",
        ),
        delivery=delivery_view(session, key),
    )


def redact(report: KeyReport) -> KeyReport:
    """The summary a non-owner may see: label, owner, tier and how serious, no details."""
    tier = report.tier
    worst_finding = max(report.findings, key=lambda f: f.severity, default=None)
    count = len(report.findings)
    summary = []
    if worst_finding is not None:
        summary = [
            Finding(
                kind=worst_finding.kind,
                severity=worst_finding.severity,
                text=f"{count} finding{'s' if count != 1 else ''}.",
            )
        ]
    return replace(
        report,
        masked="…",
        permissions=None,
        findings=summary,
        redacted=True,
        delivery=None,
        redacted_tier=tier.name if tier is not None else None,
    )


def _report(
    key: ApiKey, alias: str, permissions: dict[str, Any] | None, findings: list[Finding]
) -> KeyReport:
    return KeyReport(
        key_id=key.id,
        label=key.label,
        account_alias=alias,
        owner_user_id=key.owner_user_id,
        purpose=KeyPurpose(key.purpose),
        key_type=key.key_type,
        masked=key.api_key_masked,
        created_at=key.created_at,
        checked=permissions is not None,
        permissions=permissions,
        findings=findings,
        status=key.status,
    )


def _remember(
    engine: Engine,
    report: StatusReport,
    *,
    team_id: str,
    actor: str,
    source: str | None,
    observed: dict[str, dict[str, Any]],
    whitelists: dict[str, WhitelistReading],
) -> None:
    """Store the observations, the report (for paging) and one audit event, together."""
    with session_scope(engine) as session:
        store_whitelists(session, whitelists, report.created_at)
        _store_observations(session, observed, report.created_at)
        session.add(
            StatusReportRecord(
                id=report.report_id,
                team_id=team_id,
                requested_by=actor,
                created_at=report.created_at,
                payload=report.to_dict(),
            )
        )
        session.exec(
            sa.delete(StatusReportRecord).where(
                col(StatusReportRecord.created_at) < report.created_at - REPORT_RETENTION
            )
        )
        record_event(
            session,
            team_id=team_id,
            actor=actor,
            action=AuditAction.KEY_STATUS,
            target=report.scope,
            source=source,
            detail={
                "keys": len(report.keys),
                "critical": report.count(Severity.CRITICAL),
                "warnings": report.count(Severity.WARNING),
                "unknown": report.count(Severity.UNKNOWN),
            },
        )


def _store_observations(
    session: Session, observed: dict[str, dict[str, Any]], checked_at: datetime
) -> None:
    """Each key's new observation in one UPDATE per key, without loading the rows: a team-wide
    check must not hold a second copy of every key's row (a key deleted meanwhile matches
    nothing)."""
    if not observed:
        return
    table = sa.inspect(ApiKey).local_table
    assert isinstance(table, sa.Table)
    session.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("observed_key_id"))
        .values(permissions_json=sa.bindparam("observed"), permissions_checked_at=checked_at),
        [{"observed_key_id": key_id, "observed": perms} for key_id, perms in observed.items()],
    )


def load_report(engine: Engine, *, actor: Actor, report_id: str) -> StatusReport:
    """A stored report, for the person who asked for it (or an admin)."""
    with Session(engine) as session:
        record = session.get(StatusReportRecord, report_id)
        if (
            record is not None
            and record.team_id == actor.team_id
            and record.requested_by != actor.user_id
            and not actor.is_admin
        ):
            raise deny(
                engine,
                actor,
                action="read another person's status report",
                message="That status report belongs to someone else. Run `/apikey status` "
                "for your own.",
            )
        if record is None or record.team_id != actor.team_id:
            raise KeyNotFound(
                "That status report has expired. Run `/apikey status` again for a fresh one."
            )
        return StatusReport.from_dict(record.payload)


def _unmanaged(engine: Engine, team_id: str) -> list[str]:
    with Session(engine) as session:
        return unmanaged_sub_accounts(session, team_id)
