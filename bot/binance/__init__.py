"""Read-only access to Binance: what a key may do, and the account's history.

Layers, from the bottom: ``errors`` (every failure, classified), ``budget`` (the request
weight Binance allows per IP, and per account for the withdraw history), ``transport``
(allow-listed GETs through one session per gateway), ``read_only_client`` (python-binance's
public interface behind a list of reads), ``permissions`` and ``account`` (typed answers),
``gateway`` (what services call). Nothing here imports the rest of the bot.
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
    "Credentials",
    "FlagChange",
    "ForbiddenEndpoint",
    "IpBanned",
    "KeyPermissions",
    "KeyRejected",
    "KeyType",
    "LimitKind",
    "RateLimited",
    "RateLimits",
    "ReadOnlyClient",
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
