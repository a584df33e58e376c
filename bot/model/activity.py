"""The daily activity review: withdrawals worth a look, per Binance account."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True)
class NotableWithdrawal:
    account_alias: str
    coin: str
    amount: Decimal | None
    address: str
    network: str
    time: datetime | None
    status: str  # Binance's status, in words
    new_address: bool  # not used by the account in the 90 days before the reviewed period
    large: Decimal | None  # the threshold it reached, when it is a large withdrawal


@dataclass
class ActivityDigest:
    team_id: str
    accounts_checked: int = 0
    withdrawals_seen: int = 0
    notable: list[NotableWithdrawal] = field(default_factory=list)
    could_not_check: list[tuple[str, str]] = field(default_factory=list)  # (alias, why)
    # What to record once the digest is delivered: account id -> reviewed up to.
    reviewed: dict[str, datetime] = field(default_factory=dict)
    # Accounts never reviewed that could not be read: where their unreviewed period starts.
    unreviewed_since: dict[str, datetime] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.notable and not self.could_not_check
