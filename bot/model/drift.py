"""The drift digest: what changed since the last check of every key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.model.findings import Severity

# A governed sub-account with no key the bot knows, as status and the digest say it.
UNMANAGED_TEXT = (
    "no key the bot knows: a key made there by hand is invisible to it (Binance's API does "
    "not list a sub-account's keys). Check the sub-account in Binance API Management, or "
    "create its keys through the bot."
)


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
    # Governed sub-accounts with no key the bot knows ("unmanaged").
    unmanaged: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.could_not_check and not self.unmanaged
