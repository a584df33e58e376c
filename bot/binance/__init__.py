"""Read-only access to Binance: what a key may do, and the account's history.

Layers, from the bottom: ``errors`` (every failure, classified), ``budget`` (the request
weight Binance allows per IP, and per account for the withdraw history), ``transport``
(allow-listed GETs through one session per gateway), ``read_only_client`` (python-binance's
public interface behind a list of reads), ``permissions`` and ``account`` (typed answers),
``gateway`` (what services call). Beside them, the one gateway that changes anything:
``governor`` (a master account's governor key managing its sub-accounts' keys, over its own
allow-list in ``governor_transport``, with its typed answers in ``governor_types``). Nothing
here imports the rest of the bot.
"""

from __future__ import annotations

from bot.binance.account import (
    AccountStatus,
    TradingStatus,
    TransferKind,
    TransferRow,
    WithdrawAddress,
    any_address_whitelisted,
)
from bot.binance.budget import (
    DEFAULT_BUDGET,
    BudgetStats,
    LimitKind,
    RateLimits,
    WeightBudget,
    shared_budget,
    shared_limits,
    waiting_up_to,
)
from bot.binance.errors import (
    BadKeyFormat,
    BadSignature,
    BinanceError,
    BinanceUnavailable,
    ClockDrift,
    ForbiddenEndpoint,
    GovernorRefused,
    IpBanned,
    KeyRejected,
    RateLimited,
    UnexpectedResponse,
)
from bot.binance.gateway import (
    BinanceGateway,
    CheckResult,
    Credentials,
    mask_api_key,
)
from bot.binance.governor import GovernorGateway
from bot.binance.governor_transport import GOVERNOR_ENDPOINTS, PreparedCall
from bot.binance.governor_types import (
    CreatedSubAccountKey,
    GovernorCall,
    IpRestriction,
    SubAccount,
    SubAccountGrant,
)
from bot.binance.permissions import (
    FlagChange,
    KeyPermissions,
    Tier,
    diff_permissions,
)
from bot.binance.read_only_client import ReadOnlyClient
from bot.binance.transport import (
    DEFAULT_BASE_URL,
    READ_ENDPOINTS,
    KeyType,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_BUDGET",
    "GOVERNOR_ENDPOINTS",
    "READ_ENDPOINTS",
    "AccountStatus",
    "BadKeyFormat",
    "BadSignature",
    "BinanceError",
    "BinanceGateway",
    "BinanceUnavailable",
    "BudgetStats",
    "CheckResult",
    "ClockDrift",
    "CreatedSubAccountKey",
    "Credentials",
    "FlagChange",
    "ForbiddenEndpoint",
    "GovernorCall",
    "GovernorGateway",
    "GovernorRefused",
    "IpBanned",
    "IpRestriction",
    "KeyPermissions",
    "KeyRejected",
    "KeyType",
    "LimitKind",
    "PreparedCall",
    "RateLimited",
    "RateLimits",
    "ReadOnlyClient",
    "SubAccount",
    "SubAccountGrant",
    "Tier",
    "TradingStatus",
    "TransferKind",
    "TransferRow",
    "UnexpectedResponse",
    "WeightBudget",
    "WithdrawAddress",
    "any_address_whitelisted",
    "diff_permissions",
    "mask_api_key",
    "shared_budget",
    "shared_limits",
    "waiting_up_to",
]
