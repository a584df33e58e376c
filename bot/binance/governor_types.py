"""What the governor gateway takes and returns: typed, frozen, parsed tolerantly. Pure: no I/O.

Field names and meanings are Binance's, from Sub Account -> API Management
(developers.binance.com/docs/sub_account/api-management; pages named where each is used).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.binance.permissions import KeyPermissions, parse_flag, parse_millis

# SubAccountGrant attribute -> (createSubAccountApi / permission parameter, apiRestrictions
# field). The create page names each flag by meaning ("Spot & Margin trading permission",
# "Margin borrow/repay permission", ...); apiRestrictions names the same permissions
# (https://developers.binance.com/docs/wallet/account/api-key-permission). Binance's pages do
# not print this table; it pairs the names by those descriptions.
GRANT_FLAGS: Mapping[str, tuple[str, str]] = {
    "can_trade": ("canTrade", "enableSpotAndMarginTrading"),
    "can_margin_loan_repay": ("canMarginLoanRepay", "enableMargin"),
    "can_futures_trade": ("canFuturesTrade", "enableFutures"),
    "can_universal_transfer": ("canUniversalTransfer", "permitsUniversalTransfer"),
    "can_vanilla_options": ("canVanillaOptions", "enableVanillaOptions"),
    "can_fix_api_trading": ("canFixApiTrading", "enableFixApiTrade"),
    "can_fix_api_reading": ("canFixApiReading", "enableFixReadOnly"),
}
# The permission change page lists only the first five: FIX permissions are set at creation.
# https://developers.binance.com/legacy-docs/sub_account/api-management/Modify-Sub-account-API-Key-Permission
FIX_FLAGS = ("can_fix_api_trading", "can_fix_api_reading")


def _text(flag: bool) -> str:
    return "true" if flag else "false"


@dataclass(frozen=True)
class SubAccountGrant:
    """The permissions a sub-account key is created with (or changed to)."""

    can_trade: bool = False
    can_margin_loan_repay: bool = False
    can_futures_trade: bool = False
    can_universal_transfer: bool = False
    can_vanilla_options: bool = False
    can_fix_api_trading: bool = False
    can_fix_api_reading: bool = False

    def to_params(self) -> dict[str, str]:
        """Binance's parameters, each "true" or "false"."""
        return {name: _text(getattr(self, attr)) for attr, (name, _) in GRANT_FLAGS.items()}

    def permission_params(self) -> dict[str, str]:
        """The parameters the permission change endpoint takes (no FIX flags)."""
        return {
            name: _text(getattr(self, attr))
            for attr, (name, _) in GRANT_FLAGS.items()
            if attr not in FIX_FLAGS
        }

    @property
    def has_fix(self) -> bool:
        return self.can_fix_api_trading or self.can_fix_api_reading

    @classmethod
    def from_permissions(cls, permissions: KeyPermissions) -> SubAccountGrant:
        """The grant a key has, from what apiRestrictions says (unknown counts as not granted)."""
        restrictions = permissions.to_dict()
        return cls(
            **{attr: restrictions.get(field) is True for attr, (_, field) in GRANT_FLAGS.items()}
        )


@dataclass(frozen=True)
class SubAccount:
    """One row of "Query Sub-account List (For Master Account)"
    (https://developers.binance.com/docs/zh-CN/sub_account/account-management/Query-Sub-account-List)."""

    email: str
    is_freeze: bool
    is_managed_sub_account: bool
    is_asset_management_sub_account: bool
    create_time: int | None

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> SubAccount:
        return cls(
            email=str(row.get("email", "")),
            is_freeze=parse_flag(row.get("isFreeze")) is True,
            is_managed_sub_account=parse_flag(row.get("isManagedSubAccount")) is True,
            # Unknown is treated as "asset-management": Binance refuses key management there.
            is_asset_management_sub_account=parse_flag(row.get("isAssetManagementSubAccount"))
            is not False,
            create_time=parse_millis(row.get("createTime")),
        )


@dataclass(frozen=True)
class CreatedSubAccountKey:
    """What "Create Sub-account API Key V2" answers (apiName, apiKey, the can* flags, status,
    ipList; https://developers.binance.com/legacy-docs/sub_account/api-management/Create-Sub-account-API-Key-V2).
    For a key made from an uploaded public key there is no secret; an HMAC ``secretKey``, were
    one ever answered, is dropped here, never kept."""

    api_key: str
    email: str
    api_name: str
    can_trade: bool
    can_margin_loan_repay: bool
    can_futures_trade: bool
    can_universal_transfer: bool
    can_vanilla_options: bool
    can_fix_api_trading: bool
    can_fix_api_reading: bool
    ip_restricted: bool
    ip_list: tuple[str, ...]

    @property
    def grant(self) -> SubAccountGrant:
        return SubAccountGrant(**{attr: getattr(self, attr) for attr in GRANT_FLAGS})

    @classmethod
    def from_api(
        cls, payload: Mapping[str, Any], *, email: str, asked: SubAccountGrant
    ) -> CreatedSubAccountKey:
        """Flags Binance did not echo are taken as asked (the request said them)."""
        flags = {
            attr: parse_flag(payload.get(name)) if name in payload else getattr(asked, attr)
            for attr, (name, _) in GRANT_FLAGS.items()
        }
        ips = _ip_list(payload.get("ipList"))
        status = str(payload.get("status", ""))
        return cls(
            api_key=str(payload.get("apiKey", "")),
            email=email,
            api_name=str(payload.get("apiName", "")),
            ip_restricted=status == "2" or (status == "" and bool(ips)),
            ip_list=ips,
            **{attr: value is True for attr, value in flags.items()},
        )


@dataclass(frozen=True)
class IpRestriction:
    """A sub-account key's IP list, as the IP restriction endpoints answer it."""

    restricted: bool
    ip_list: tuple[str, ...]

    @classmethod
    def from_api(cls, payload: Mapping[str, Any]) -> IpRestriction:
        """``ipRestrict`` ("true") from get / delete; ``status`` ("2") from add."""
        if "ipRestrict" in payload:
            restricted = parse_flag(payload.get("ipRestrict")) is True
        else:
            restricted = str(payload.get("status", "")) == "2"
        return cls(restricted=restricted, ip_list=_ip_list(payload.get("ipList")))


@dataclass(frozen=True)
class GovernorCall:
    """One governor call, told to ``on_call`` whatever its outcome (services audit and
    announce it). No secret: masked keys only."""

    method: str
    endpoint: str  # the path
    sub_account: str | None  # the sub-account's email
    api_key_masked: str | None  # the sub-account key the call concerns
    governor_masked: str  # the governor key
    outcome: str  # "ok", "forbidden", or the error class name and Binance's code
    at: float


def _ip_list(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(str(ip) for ip in value if isinstance(ip, str) and ip.strip())
