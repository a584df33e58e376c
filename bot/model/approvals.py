"""A change waiting for a second person, as messages, lists and App Home show it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.vocabulary import ApprovalKind, ApprovalState

__all__ = ["CHANGE_WORDS", "KIND_WORDS", "ApprovalKind", "ApprovalState", "ApprovalView"]

# Why a change is held, in words.
KIND_WORDS = {
    ApprovalKind.MOVES_FUNDS: "the key can move funds (Withdraw tier or transfer rights)",
    ApprovalKind.BEYOND_PURPOSE: "the key can do more than its declared purpose",
    ApprovalKind.DROPS_IP_WHITELIST: "the new key has no IP whitelist (the old one had)",
    ApprovalKind.KEY_EDIT: "a wider purpose or another owner",
    ApprovalKind.GOVERNOR: "a governor key manages every sub-account key of its account",
}
CHANGE_WORDS = {
    "register": "register the key",
    "create": "have the governor create the key",
    "rotate": "replace the key with a new one",
    "edit": "change the key",
}


@dataclass(frozen=True)
class ApprovalView:
    request_id: str
    change: str  # "register", "rotate" or "edit"
    kinds: tuple[ApprovalKind, ...]
    at_stake: tuple[str, ...]
    label: str
    account_alias: str | None
    masked: str | None
    owner_user_id: str | None
    requested_by: str
    created_at: datetime
    expires_at: datetime
    state: ApprovalState
    approved_by: tuple[str, ...]
    quorum: int
    outcome: str | None = None
    # The people who may approve it (never the requester), and whether they are too few.
    approvers: tuple[str, ...] = ()

    @property
    def too_few_approvers(self) -> bool:
        return len([a for a in self.approvers if a != self.requested_by]) < self.quorum

    @property
    def missing(self) -> int:
        return max(0, self.quorum - len(self.approved_by))
