"""What Binance says a key may do (``GET /sapi/v1/account/apiRestrictions``), parsed tolerantly.

Pure: no I/O. A field Binance did not send is ``None`` (unknown), never ``False``; a field this
code does not know is kept verbatim in ``extra``. ``to_dict`` gives Binance's own field names
(the stored observation), and ``from_dict`` reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import IntEnum
from types import MappingProxyType
from typing import Any


class Tier(IntEnum):
    """How bad a leak of the key would be: NONE < READ < TRADE < WITHDRAW."""

    NONE = 0
    READ = 1
    TRADE = 2
    WITHDRAW = 3


# Binance field name -> attribute name. Order is the order people read them in.
FLAG_FIELDS: dict[str, str] = {
    "ipRestrict": "ip_restrict",
    "enableReading": "enable_reading",
    "enableSpotAndMarginTrading": "enable_spot_and_margin_trading",
    "enableMargin": "enable_margin",
    "enableFutures": "enable_futures",
    "enableVanillaOptions": "enable_vanilla_options",
    "enablePortfolioMarginTrading": "enable_portfolio_margin_trading",
    "enableFixApiTrade": "enable_fix_api_trade",
    "enableFixReadOnly": "enable_fix_read_only",
    "enableWithdrawals": "enable_withdrawals",
    "enableInternalTransfer": "enable_internal_transfer",
    "permitsUniversalTransfer": "permits_universal_transfer",
}
TIME_FIELDS: dict[str, str] = {
    "createTime": "create_time_ms",
    "tradingAuthorityExpirationTime": "trading_authority_expiration_time_ms",
}
KNOWN_FIELDS: dict[str, str] = {**FLAG_FIELDS, **TIME_FIELDS}

TRADE_FLAGS = (
    "enableSpotAndMarginTrading",
    "enableMargin",
    "enableFutures",
    "enableVanillaOptions",
    "enablePortfolioMarginTrading",
    "enableFixApiTrade",
)
WITHDRAW_FLAGS = ("enableWithdrawals",)
TRANSFER_FLAGS = ("enableInternalTransfer", "permitsUniversalTransfer")
# How Binance names a permission flag (every one it documents starts so); a boolean field
# with such a name that this code does not know is a permission Binance added later.
PERMISSION_PREFIXES = ("enable", "permits")

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def parse_flag(value: Any) -> bool | None:
    """true/false as Binance sends them; also "true"/"false" and 0/1. Anything else: unknown."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def parse_millis(value: Any) -> int | None:
    """A millisecond timestamp as an int (Binance sends numbers; tolerate numeric strings)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def millis_to_datetime(ms: int | None) -> datetime | None:
    """UTC datetime of a millisecond timestamp; 0, negatives and absurd values are "none"."""
    if ms is None or ms <= 0:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


@dataclass(frozen=True)
class FlagChange:
    """One permission flag that differs between two observations (None = unknown)."""

    name: str  # Binance's field name, e.g. "enableFutures"
    before: bool | None
    after: bool | None

    @property
    def granted(self) -> bool:
        return self.after is True and self.before is not True

    @property
    def revoked(self) -> bool:
        return self.before is True and self.after is not True


@dataclass(frozen=True)
class KeyPermissions:
    ip_restrict: bool | None = None
    enable_reading: bool | None = None
    enable_spot_and_margin_trading: bool | None = None
    enable_margin: bool | None = None
    enable_futures: bool | None = None
    enable_vanilla_options: bool | None = None
    enable_portfolio_margin_trading: bool | None = None
    enable_fix_api_trade: bool | None = None
    enable_fix_read_only: bool | None = None
    enable_withdrawals: bool | None = None
    enable_internal_transfer: bool | None = None
    permits_universal_transfer: bool | None = None
    create_time_ms: int | None = None
    trading_authority_expiration_time_ms: int | None = None
    # Fields this code does not know (or known fields with values it cannot read), verbatim.
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)

    # --- parsing and storage ------------------------------------------------------------

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> KeyPermissions:
        """Parse Binance's apiRestrictions object. Never raises on odd content."""
        values: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for name, raw in payload.items():
            attr = KNOWN_FIELDS.get(name)
            if attr is None:
                extra[str(name)] = raw  # unknown field
                continue
            if raw is None:
                continue  # a known field reported as null: unknown
            parsed = parse_flag(raw) if name in FLAG_FIELDS else parse_millis(raw)
            if parsed is None:
                extra[str(name)] = raw  # a known field we cannot read
            else:
                values[attr] = parsed
        return cls(**values, extra=MappingProxyType(extra))

    from_dict = from_api  # a stored observation uses Binance's own names

    def to_dict(self) -> dict[str, Any]:
        """Binance's field names; unknown (absent) fields are left out. JSON-serialisable."""
        out: dict[str, Any] = {}
        for name, attr in KNOWN_FIELDS.items():
            value = getattr(self, attr)
            if value is not None:
                out[name] = value
        for name, value in self.extra.items():
            out.setdefault(name, value)
        return out

    def flag(self, name: str) -> bool | None:
        """A flag by Binance's name; unknown-to-this-code flags are looked up in ``extra``."""
        attr = FLAG_FIELDS.get(name)
        if attr is not None:
            known: bool | None = getattr(self, attr)
            return known
        return parse_flag(self.extra.get(name))

    # --- what it means --------------------------------------------------------------------

    @property
    def tier(self) -> Tier:
        """Withdraw if withdrawals are on; Trade if any trading permission is on; else Read.

        Unknown flags do not raise the tier (there is nothing to show for them), and a key
        Binance answered for can read unless Binance explicitly says ``enableReading: false``.
        """
        if any(self.flag(n) for n in WITHDRAW_FLAGS):
            return Tier.WITHDRAW
        if any(self.flag(n) for n in TRADE_FLAGS):
            return Tier.TRADE
        if self.enable_reading is False:
            return Tier.NONE
        return Tier.READ

    @property
    def transfer_rights(self) -> tuple[str, ...]:
        """Names of the transfer permissions that are on (they move funds, too)."""
        return tuple(n for n in TRANSFER_FLAGS if self.flag(n))

    @property
    def granted(self) -> tuple[str, ...]:
        """Every permission flag that is on, by Binance's name (ipRestrict is not a permission)."""
        return tuple(n for n in FLAG_FIELDS if n != "ipRestrict" and self.flag(n))

    @property
    def new_flags(self) -> tuple[str, ...]:
        """Permission flags Binance sent that this code does not know (added by Binance later):
        boolean ``enable…`` / ``permits…`` fields, by Binance's name, sorted."""
        return tuple(sorted(n for n, v in self.extra.items() if _is_new_flag(n, v)))

    @property
    def new_flags_on(self) -> tuple[str, ...]:
        """The ``new_flags`` that are on: possibly risky, since nobody here knows what they
        allow."""
        return tuple(n for n in self.new_flags if self.flag(n))

    def widened_from(self, previous: KeyPermissions | Mapping[str, Any]) -> tuple[str, ...]:
        """Every permission (known or new) that is on here and was not on in ``previous``, by
        Binance's name, in reading order (ipRestrict is not a permission: see ``ip_restrict``)."""
        if not isinstance(previous, KeyPermissions):
            previous = KeyPermissions.from_dict(previous)
        names = [n for n in FLAG_FIELDS if n != "ipRestrict"] + list(self.new_flags)
        return tuple(n for n in names if self.flag(n) is True and previous.flag(n) is not True)

    @property
    def unknown(self) -> tuple[str, ...]:
        """Known fields Binance did not report (or reported unreadably)."""
        return tuple(n for n, attr in KNOWN_FIELDS.items() if getattr(self, attr) is None)

    @property
    def created_at(self) -> datetime | None:
        return millis_to_datetime(self.create_time_ms)

    @property
    def trading_expires_at(self) -> datetime | None:
        """When Binance removes spot & margin trading (keys without an IP whitelist)."""
        return millis_to_datetime(self.trading_authority_expiration_time_ms)

    def changes_since(self, previous: KeyPermissions | Mapping[str, Any]) -> tuple[FlagChange, ...]:
        """Flags (including ipRestrict and flags only in ``extra``) that differ from ``previous``."""
        if not isinstance(previous, KeyPermissions):
            previous = KeyPermissions.from_dict(previous)
        names = list(FLAG_FIELDS)
        for source in (previous.extra, self.extra):
            names += [n for n, v in source.items() if n not in names and parse_flag(v) is not None]
        return tuple(
            FlagChange(n, previous.flag(n), self.flag(n))
            for n in names
            if previous.flag(n) != self.flag(n)
        )


def _is_new_flag(name: str, value: Any) -> bool:
    return (
        name not in KNOWN_FIELDS
        and name.startswith(PERMISSION_PREFIXES)
        and parse_flag(value) is not None
    )


def diff_permissions(
    before: KeyPermissions | Mapping[str, Any], after: KeyPermissions | Mapping[str, Any]
) -> tuple[FlagChange, ...]:
    """The flags that changed from ``before`` to ``after`` (objects or stored dicts)."""
    if not isinstance(after, KeyPermissions):
        after = KeyPermissions.from_dict(after)
    return after.changes_since(before)
