"""The audit trail as it is read: entries (never rows of the table) and the chain's verdict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.audit import ChainReport
from storage.models import AuditEvent

__all__ = ["AuditEntry", "ChainReport"]


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEntry:
        return cls(
            id=row.id or 0,
            at=row.at,
            actor=row.actor,
            action=row.action,
            target=row.target,
            detail=dict(row.detail or {}),
        )
