"""The App Home tab's picture: the viewer's keys and incidents, and the team's for admins."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.model.approvals import ApprovalView
from bot.model.findings import Finding, Severity
from bot.model.key_pairs import PendingPair
from bot.model.keys import KeySummary
from bot.model.rotation import RotationRow

UNKNOWN_TIER = "Not checked yet"


@dataclass(frozen=True)
class HomeKey:
    summary: KeySummary
    findings: list[Finding]
    rotation: RotationRow
    open_incident_id: str | None

    @property
    def worst(self) -> Severity:
        return max((f.severity for f in self.findings), default=Severity.OK)


@dataclass(frozen=True)
class OpenIncident:
    incident_id: str
    label: str
    owner_user_id: str | None
    raised_at: datetime
    key_rejected: bool  # Binance rejects the key from the bot's address (not: deleted)
    steps_done: int
    last_probe_result: str | None = None  # "alive" / "rejected" / "unknown"; None: not yet


@dataclass(frozen=True)
class TeamPicture:
    key_count: int
    by_tier: dict[str, int]  # "Read" / "Trade" / "Withdraw" / UNKNOWN_TIER -> count
    critical: list[tuple[HomeKey, list[Finding]]]  # keys with critical findings
    overdue: list[RotationRow]
    open_incidents: list[OpenIncident]
    # Keys with a switched-on permission Binance added that the bot does not know (possibly
    # risky: the tier may understate them).
    with_new_permissions: int = 0


@dataclass(frozen=True)
class HomePicture:
    user_id: str
    is_admin: bool
    own_keys: list[HomeKey]
    own_incidents: list[OpenIncident]
    team_key_count: int
    team: TeamPicture | None  # admins only
    # Generated key pairs the viewer made or will own, still waiting for Binance's API key.
    waiting_pairs: list[PendingPair] = field(default_factory=list)
    # Changes held for approval that the viewer may approve and has not (never their own).
    waiting_approvals: tuple[ApprovalView, ...] = ()
