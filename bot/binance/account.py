"""Typed answers of the account reads: trading status, account status, deposit and withdrawal
history. Pure parsing, tolerant like ``bot.binance.permissions``: odd values become ``None``,
unknown fields are kept in ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from bot.binance.permissions import millis_to_datetime, parse_flag, parse_millis

HISTORY_SPAN = timedelta(days=90)  # Binance refuses wider startTime..endTime intervals
HISTORY_PAGE_SIZE = 1000  # Binance's maximum ``limit``

WITHDRAWAL_STATUS = {
    0: "email sent",
    1: "cancelled",
    2: "awaiting approval",
    3: "rejected",
    4: "processing",
    5: "failure",
    6: "completed",
}
DEPOSIT_STATUS = {
    0: "pending",
    1: "success",
    2: "rejected",
    6: "credited, cannot withdraw yet",
    7: "wrong deposit",
    8: "waiting for user confirmation",
}

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class TransferKind(StrEnum):
    WITHDRAWAL = "withdrawal"
    DEPOSIT = "deposit"

    @property
    def endpoint_name(self) -> str:
        return "withdrawHistory" if self is TransferKind.WITHDRAWAL else "depositHistory"


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _time(value: Any) -> datetime | None:
    """Milliseconds (deposits) or "YYYY-MM-DD HH:MM:SS" in UTC (withdrawals)."""
    if isinstance(value, str) and not value.strip().isdigit():
        try:
            return datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            return None
    return millis_to_datetime(parse_millis(value))


@dataclass(frozen=True)
class TransferRow:
    """One deposit or withdrawal."""

    kind: TransferKind
    id: str | None
    coin: str | None
    amount: Decimal | None
    address: str | None
    network: str | None
    status: int | None
    time: datetime | None  # applyTime (withdrawal) / insertTime (deposit), UTC
    tx_id: str | None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False, repr=False)

    _KNOWN = ("id", "coin", "amount", "address", "network", "status", "txId")

    @classmethod
    def from_api(cls, kind: TransferKind, raw: Mapping[str, Any]) -> TransferRow:
        time_field = "applyTime" if kind is TransferKind.WITHDRAWAL else "insertTime"
        known = (*cls._KNOWN, time_field)
        return cls(
            kind=kind,
            id=_text(raw.get("id")),
            coin=_text(raw.get("coin")),
            amount=_decimal(raw.get("amount")),
            address=_text(raw.get("address")),
            network=_text(raw.get("network")),
            status=_int(raw.get("status")),
            time=_time(raw.get(time_field)),
            tx_id=_text(raw.get("txId")),
            extra=MappingProxyType({k: v for k, v in raw.items() if k not in known}),
        )

    @property
    def status_text(self) -> str:
        names = WITHDRAWAL_STATUS if self.kind is TransferKind.WITHDRAWAL else DEPOSIT_STATUS
        return names.get(self.status, f"status {self.status}") if self.status is not None else "?"


@dataclass(frozen=True)
class WithdrawAddress:
    """One entry of the account's withdrawal address book: ``GET
    /sapi/v1/capital/withdraw/address/list`` answers ``address, addressTag, coin, name,
    network, origin, originType, whiteStatus``
    (https://developers.binance.com/docs/wallet/capital/fetch-withdraw-address)."""

    address: str | None
    coin: str | None
    network: str | None
    name: str | None
    whitelisted: bool | None  # ``whiteStatus``: the address is on the withdrawal whitelist

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> WithdrawAddress:
        return cls(
            address=_text(raw.get("address")),
            coin=_text(raw.get("coin")),
            network=_text(raw.get("network")),
            name=_text(raw.get("name")),
            whitelisted=parse_flag(raw.get("whiteStatus")),
        )


def any_address_whitelisted(addresses: list[WithdrawAddress]) -> bool:
    """Whether any saved withdrawal address is whitelisted (``whiteStatus``). That is all the
    API shows: the account's whitelist switch itself is not in it, so nothing here says whether
    the switch is on (https://developers.binance.com/docs/wallet/capital/fetch-withdraw-address)."""
    return any(a.whitelisted is True for a in addresses)


@dataclass(frozen=True)
class TradingStatus:
    """``/sapi/v1/account/apiTradingStatus``: is the account's API trading locked?"""

    is_locked: bool | None
    planned_recover_at: datetime | None
    updated_at: datetime | None
    trigger_condition: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False, repr=False)

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> TradingStatus:
        data = payload.get("data", payload)
        data = data if isinstance(data, Mapping) else {}
        trigger = data.get("triggerCondition")
        known = ("isLocked", "plannedRecoverTime", "updateTime", "triggerCondition")
        return cls(
            is_locked=parse_flag(data.get("isLocked")),
            planned_recover_at=millis_to_datetime(parse_millis(data.get("plannedRecoverTime"))),
            updated_at=millis_to_datetime(parse_millis(data.get("updateTime"))),
            trigger_condition=MappingProxyType(
                dict(trigger) if isinstance(trigger, Mapping) else {}
            ),
            extra=MappingProxyType({k: v for k, v in data.items() if k not in known}),
        )


@dataclass(frozen=True)
class AccountStatus:
    """``/sapi/v1/account/status``: "Normal" or a reason the account is restricted."""

    status: str | None

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> AccountStatus:
        return cls(status=_text(payload.get("data")))

    @property
    def is_normal(self) -> bool:
        return self.status is not None and self.status.lower() == "normal"


def history_windows(start: datetime, end: datetime) -> Iterator[tuple[int, int]]:
    """(startTime, endTime) in ms covering ``start``..``end`` in Binance-sized intervals."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("history bounds must be timezone-aware datetimes")
    if end < start:
        raise ValueError("history end is before its start")
    start_ms, end_ms = _ms(start), _ms(end)
    span = _ms_delta(HISTORY_SPAN)
    while start_ms <= end_ms:
        window_end = min(start_ms + span - 1, end_ms)
        yield start_ms, window_end
        start_ms = window_end + 1


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _ms_delta(delta: timedelta) -> int:
    return round(delta.total_seconds() * 1000)
