"""The simulator's master accounts and their sub-accounts: Binance's sub-account API management.

Each behaviour is taken from Binance's page for its endpoint (Sub Account -> API Management,
developers.binance.com/docs/sub_account/api-management/...; the English pages in the docs
corpus are the "legacy-docs" copies, the Chinese ones the current pages):

- Create (v2): https://developers.binance.com/legacy-docs/sub_account/api-management/Create-Sub-account-API-Key-V2
- Delete: https://developers.binance.com/legacy-docs/sub_account/api-management/Delete-Sub-account-API-Key
- Permission: https://developers.binance.com/legacy-docs/sub_account/api-management/Modify-Sub-account-API-Key-Permission
- IP list add / get / delete:
  https://developers.binance.com/docs/sub_account/api-management/Add-IP-Restriction-for-Sub-Account-API-key
  https://developers.binance.com/docs/sub_account/api-management (Get IP Restriction ...)
  https://developers.binance.com/docs/zh-CN/sub_account/api-management/Delete-IP-List-For-a-Sub-account-API-Key
- Sub-account list: https://developers.binance.com/docs/zh-CN/sub_account/account-management/Query-Sub-account-List

Each management endpoint has "Request Weight(UID) 3000"; a UID-limited /sapi endpoint has its
own 180,000 a minute, reported in X-SAPI-USED-UID-WEIGHT-1M, and past it Binance answers 429
(https://developers.binance.com/docs/products/caas/basics/4.rate-limits). The list is
"Weight(IP) 1".

Where the pages name a refusal but not its error code (an asset-management sub-account, the KYC
IP check, publicKey in the query string, an email or key that is not the caller's), the
simulator answers with a documented spot error code of the same meaning
(https://developers.binance.com/docs/binance-spot-api-docs/errors): -1002 UNAUTHORIZED for the
KYC IP check, -1130 INVALID_DATA for a parameter Binance will not take. -9000 "Unsupported
operation" is the one code the create page names (FIX permissions on a key that is not
Ed25519); the asset-management refusal reuses it, being an unsupported operation too.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.sandbox.binance_reply import MSG_REJECTED, MSG_TOO_MUCH, Reply

if TYPE_CHECKING:
    from bot.sandbox.binance_simulator import BinanceSimulator, SimKey

UID_WEIGHT = 3_000
UID_LIMIT_PER_MINUTE = 180_000
UID_MINUTE_HEADER = "X-SAPI-USED-UID-WEIGHT-1M"
MINUTE_MS = 60_000
LIST_MAX = 200  # "limit: default 1, max 200"

MSG_UNSUPPORTED = "Unsupported operation"
MSG_UNAUTHORIZED = "You are not authorized to execute this request."
MSG_INVALID_DATA = "Data sent for parameter '{name}' is not valid."

# createSubAccountApi flag -> apiRestrictions field. The pages name the flags by meaning
# ("Spot & Margin trading permission" ...); apiRestrictions names the same permissions
# (https://developers.binance.com/docs/wallet/account/api-key-permission).
GRANT_FIELDS = {
    "canTrade": "enableSpotAndMarginTrading",
    "canMarginLoanRepay": "enableMargin",
    "canFuturesTrade": "enableFutures",
    "canUniversalTransfer": "permitsUniversalTransfer",
    "canVanillaOptions": "enableVanillaOptions",
    "canFixApiTrading": "enableFixApiTrade",
    "canFixApiReading": "enableFixReadOnly",
}
FIX_FLAGS = ("canFixApiTrading", "canFixApiReading")
# The permission page lists only these five (no FIX flags).
PERMISSION_FLAGS = tuple(name for name in GRANT_FIELDS if name not in FIX_FLAGS)


@dataclass
class SimSubAccount:
    master: str  # the master account (SimKey.account of its keys)
    email: str
    sub_user_id: int
    create_time: int
    asset_management: bool = False
    is_freeze: bool = False


@dataclass(frozen=True)
class SubAccountCall:
    """One request to a sub-account endpoint, as the simulator received it."""

    params: dict[str, str]  # query string and body together (the query string wins)
    query: dict[str, str]  # the query string's own parameters
    client_ip: str  # the TCP peer address


Handler = Callable[["BinanceSimulator", "SimKey", SubAccountCall], Any]


@dataclass(frozen=True)
class SubAccountRoute:
    handler: Handler
    ip_weight: int  # 0: UID-limited (counted by the handler, per account and endpoint)
    path: str
    kyc_checked: bool = False  # "The caller must pass the KYC IP restriction check"
    needs_spot_trading: bool = False  # the IP-list pages: the caller's key needs spot trading


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def _ips(text: str | None) -> list[str]:
    return [ip.strip() for ip in (text or "").split(",") if ip.strip()]


def _invalid(name: str) -> Reply:
    return Reply.error(400, -1130, MSG_INVALID_DATA.format(name=name))


def _uid_weight(sim: BinanceSimulator, key: SimKey, path: str) -> tuple[int, int]:
    """Count this endpoint's UID weight of the caller's account in this calendar minute:
    (weight used, seconds until the minute ends)."""
    now = sim.server_time_ms()
    minute = now // MINUTE_MS
    last, used = sim.uid_minute_weight.get((key.account, path), (minute, 0))
    used = (used if last == minute else 0) + UID_WEIGHT
    sim.uid_minute_weight[(key.account, path)] = (minute, used)
    return used, max(1, math.ceil(((minute + 1) * MINUTE_MS - now) / 1000))


def answer(
    route: SubAccountRoute, sim: BinanceSimulator, key: SimKey, call: SubAccountCall
) -> Reply:
    """The checks every management endpoint shares, in order, then the endpoint itself."""
    headers: dict[str, str] = {}
    if route.ip_weight == 0:
        used, reset_in = _uid_weight(sim, key, route.path)
        headers[UID_MINUTE_HEADER] = str(used)
        if used > sim.sapi_uid_limit:
            msg = MSG_TOO_MUCH.format(limit=sim.sapi_uid_limit, period="MINUTE")
            reply = Reply.error(429, -1003, msg, reset_in)
            reply.headers.update(headers)
            return reply
    reply = _checked(route, sim, key, call)
    if not isinstance(reply, Reply):
        reply = Reply(200, reply)
    reply.headers.update(headers)
    return reply


def _checked(
    route: SubAccountRoute, sim: BinanceSimulator, key: SimKey, call: SubAccountCall
) -> Any:
    if route.needs_spot_trading and not key.permissions.get("enableSpotAndMarginTrading"):
        return Reply.error(401, -2015, MSG_REJECTED)
    if route.kyc_checked and sim.fail_kyc_ip_check:
        return Reply.error(400, -1002, MSG_UNAUTHORIZED)
    if route.handler is _list:
        return route.handler(sim, key, call)
    sub = sim.sub_accounts.get(call.params.get("email", ""))
    if sub is None or sub.master != key.account:
        return _invalid("email")
    # "Asset Sub Account is not supported" (create, delete and permission pages; the IP-list
    # pages are silent: refused there too, the conservative reading).
    if sub.asset_management:
        return Reply.error(400, -9000, MSG_UNSUPPORTED)
    return route.handler(sim, key, call)


def _sub_key(sim: BinanceSimulator, call: SubAccountCall) -> SimKey | Reply:
    """The sub-account key a request names: it must be a live key of that sub-account."""
    key = sim._keys.get(call.params.get("subAccountApiKey", ""))
    if key is None or key.deleted or key.account != call.params.get("email"):
        return _invalid("subAccountApiKey")
    return key


def _create(sim: BinanceSimulator, master: SimKey, call: SubAccountCall) -> Any:
    params = call.params
    # "publicKey: RSA or Ed25519 public key (optional). Must be in the request body; it is
    # rejected in the URL query string."
    if "publicKey" in call.query:
        return _invalid("publicKey")
    status = params.get("status")
    ips = _ips(params.get("ipAddress"))
    if status not in ("1", "2", "3") or (status == "2" and not ips):
        return _invalid("status" if status not in ("1", "2", "3") else "ipAddress")
    if status == "3" and not params.get("thirdPartyName"):
        return _invalid("thirdPartyName")
    if len(params.get("ipAddress", "")) > 500:  # "IP address list, max 500 chars"
        return _invalid("ipAddress")
    email = params["email"]
    flags = {GRANT_FIELDS[name]: _flag(params.get(name)) for name in GRANT_FIELDS}
    public_key = params.get("publicKey")
    if public_key:
        key = sim.add_self_generated_key(public_key, account=email, ip_restrict=status == "2")
    else:
        key = sim.add_key(account=email, key_type="HMAC", ip_restrict=status == "2")
    # "canFixApiTrading / canFixApiReading: only supported for API Keys using an Ed25519
    # public key. Setting it to true for any other key type returns -9000".
    if key.key_type != "ED25519" and any(_flag(params.get(name)) for name in FIX_FLAGS):
        del sim._keys[key.api_key]
        return Reply.error(400, -9000, MSG_UNSUPPORTED)
    key.permissions.update(flags)
    key.ip_list = ips if status == "2" else None
    body: dict[str, Any] = {"apiName": params.get("apiName", ""), "apiKey": key.api_key}
    if not public_key:
        body["secretKey"] = key.secret  # "returned only once, at creation"
    body.update({name: flags[field] for name, field in GRANT_FIELDS.items()})
    body.update(status=int(status), ipList=list(key.ip_list or []))
    return body


def _delete(sim: BinanceSimulator, master: SimKey, call: SubAccountCall) -> Any:
    key = _sub_key(sim, call)
    if isinstance(key, Reply):
        return key
    key.deleted = True
    return {}


def _permission(sim: BinanceSimulator, master: SimKey, call: SubAccountCall) -> Any:
    key = _sub_key(sim, call)
    if isinstance(key, Reply):
        return key
    for name in PERMISSION_FLAGS:  # each flag is optional: only those sent change
        if name in call.params:
            key.permissions[GRANT_FIELDS[name]] = _flag(call.params[name])
    body: dict[str, Any] = {"apiName": "", "apikey": key.api_key}
    body.update({name: key.permissions[GRANT_FIELDS[name]] for name in PERMISSION_FLAGS})
    body["timestamp"] = sim.server_time_ms()
    return body


def _ip_state(sim: BinanceSimulator, key: SimKey) -> dict[str, Any]:
    """The get / delete answer: ipRestrict as the string Binance's example shows."""
    return {
        "ipRestrict": "true" if key.ip_restrict else "false",
        "ipList": list(key.ip_list or []),
        "updateTime": sim.server_time_ms(),
        "apiKey": key.api_key,
    }


def _add_ips(sim: BinanceSimulator, master: SimKey, call: SubAccountCall) -> Any:
    key = _sub_key(sim, call)
    if isinstance(key, Reply):
        return key
    # "status: 1 or not sent = IP unrestricted; 2 = restrict access to trusted IPs only";
    # "ipAddress: insert static IP in batch, separated by commas" (the page adds to the list).
    status = call.params.get("status") or "1"
    if status not in ("1", "2"):
        return _invalid("status")
    if status == "2":
        current = list(key.ip_list or [])
        current += [ip for ip in _ips(call.params.get("ipAddress")) if ip not in current]
        key.ip_list, key.ip_restrict = current, True
    else:
        key.ip_restrict = False
    body: dict[str, Any] = {"status": status, "updateTime": sim.server_time_ms()}
    if key.ip_restrict and key.ip_list:  # "only returned if IP restriction is on with IPs"
        body["ipList"] = list(key.ip_list)
    body["apiKey"] = key.api_key
    return body


def _get_ips(sim: BinanceSimulator, master: SimKey, call: SubAccountCall) -> Any:
    key = _sub_key(sim, call)
    return key if isinstance(key, Reply) else _ip_state(sim, key)


def _delete_ips(sim: BinanceSimulator, master: SimKey, call: SubAccountCall) -> Any:
    key = _sub_key(sim, call)
    if isinstance(key, Reply):
        return key
    gone = set(_ips(call.params.get("ipAddress")))  # "IPs to delete, comma separated"
    if not gone:
        return _invalid("ipAddress")
    key.ip_list = [ip for ip in key.ip_list or [] if ip not in gone]
    return _ip_state(sim, key)


def _list(sim: BinanceSimulator, master: SimKey, call: SubAccountCall) -> Any:
    params = call.params
    page, limit = int(params.get("page", 1)), min(int(params.get("limit", 1)), LIST_MAX)
    if page < 1 or limit < 1:
        return _invalid("page" if page < 1 else "limit")
    rows = [s for s in sim.sub_accounts.values() if s.master == master.account]
    if "email" in params:
        rows = [s for s in rows if s.email == params["email"]]
    if "isFreeze" in params:
        rows = [s for s in rows if s.is_freeze == _flag(params["isFreeze"])]
    return {
        "subAccounts": [
            {
                "subUserId": s.sub_user_id,
                "email": s.email,
                "remark": "",
                "isFreeze": s.is_freeze,
                "createTime": s.create_time,
                "isManagedSubAccount": False,
                "isAssetManagementSubAccount": s.asset_management,
            }
            for s in rows[(page - 1) * limit : page * limit]
        ]
    }


CREATE_PATH = "/sapi/v2/sub-account/subAccountApi"
KEY_PATH = "/sapi/v1/sub-account/subAccountApi"
PERMISSION_PATH = "/sapi/v1/sub-account/subAccountApiPermission"
ADD_IPS_PATH = "/sapi/v2/sub-account/subAccountApi/ipRestriction"
IPS_PATH = "/sapi/v1/sub-account/subAccountApi/ipRestriction"
DELETE_IPS_PATH = "/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList"
LIST_PATH = "/sapi/v1/sub-account/list"

ROUTES: dict[tuple[str, str], SubAccountRoute] = {
    ("POST", CREATE_PATH): SubAccountRoute(_create, 0, CREATE_PATH, kyc_checked=True),
    ("DELETE", KEY_PATH): SubAccountRoute(_delete, 0, KEY_PATH, kyc_checked=True),
    ("POST", PERMISSION_PATH): SubAccountRoute(_permission, 0, PERMISSION_PATH, kyc_checked=True),
    ("POST", ADD_IPS_PATH): SubAccountRoute(_add_ips, 0, ADD_IPS_PATH, needs_spot_trading=True),
    ("GET", IPS_PATH): SubAccountRoute(_get_ips, 0, IPS_PATH),
    ("DELETE", DELETE_IPS_PATH): SubAccountRoute(
        _delete_ips, 0, DELETE_IPS_PATH, needs_spot_trading=True
    ),
    ("GET", LIST_PATH): SubAccountRoute(_list, 1, LIST_PATH),
}
