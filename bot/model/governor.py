"""The governor as people see it: master accounts with a governor key and their sub-accounts,
and keys the governor made."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The register form's key source for "Create it in Binance for me" (a governed sub-account).
CREATE_IN_BINANCE = "create_in_binance"
# Its extra permissions (checkboxes), and the choice of no IP restriction at all.
CREATE_EXTRAS = {
    "futures": "Futures trading",
    "margin": "Margin borrowing and repaying",
    "options": "Options trading",
    "transfer": "Universal transfer (moves funds; owner only)",
    "unrestricted": "No IP restriction (Binance removes trading after 30 days)",
}


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


@dataclass(frozen=True)
class LostMint:
    """A key creation whose answer never came: the key may exist in Binance, unknown."""

    label: str
    sub_account_email: str
    api_name: str  # the name it has in Binance's API management, if it exists
    started_at: datetime
    requested_by: str
    masked: str | None = None  # the key Binance made, when its answer came
