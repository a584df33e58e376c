"""The outcome of an admin changing a key's owner, purpose or account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.commands import EditField
from bot.model.findings import Finding


@dataclass(frozen=True)
class KeyEdited:
    label: str
    field: EditField
    before: str | None  # a user id (None: had no owner), a purpose value or an account alias
    after: str
    owner_user_id: str | None  # after the change
    rotation_due_at: datetime
    # The key's findings after the change, as `/apikey status <label>` would show them if
    # Binance said again what it reported at ``checked_at`` (None: never checked).
    findings: tuple[Finding, ...] = ()
    checked_at: datetime | None = None
    new_account: bool = False  # the alias named no account of the team before
