"""The governor as people see it: master accounts with a governor key and their sub-accounts,
and keys the governor made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class GovernedAccount:
    alias: str
    email: str  # the sub-account's email, which names it in Binance's API


@dataclass(frozen=True)
class GovernorSummary:
    label: str
    masked: str
    account_alias: str  # the master account
    registered_at: datetime
    sub_accounts: tuple[GovernedAccount, ...] = ()
