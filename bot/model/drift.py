"""The drift digest: what changed since the last check of every key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.model.findings import Severity


@dataclass(frozen=True)
class Change:
    label: str
    owner_user_id: str | None
    severity: Severity
    text: str


@dataclass
class Digest:
    team_id: str
    checked: int = 0
    changes: list[Change] = field(default_factory=list)
    could_not_check: list[tuple[str, str]] = field(default_factory=list)
    # What to record once the digest is delivered: key id -> (permissions or None, result).
    observed: dict[str, tuple[dict[str, Any] | None, str]] = field(default_factory=dict)
    # And the address list read per account: account id -> a saved address is whitelisted.
    whitelists: dict[str, bool] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.could_not_check
