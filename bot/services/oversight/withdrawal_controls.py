"""The seed's withdrawal safeguard: for an account with a Withdraw-tier key, is any of its
saved withdrawal addresses whitelisted?

That is exactly what can be checked: Binance's withdrawal address list (``GET
/sapi/v1/capital/withdraw/address/list``) gives ``whiteStatus`` per saved address, and the
account's whitelist switch itself is not in the API
(https://developers.binance.com/docs/wallet/capital/fetch-withdraw-address). So findings say
"no saved withdrawal address is whitelisted", never that a switch is on or off. One read per
account, through one of its keys that Binance just answered for (the Withdraw-tier key first).
Status, the drift check and App Home use the reading; it is stored on the account.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from bot import binance
from storage.models import ApiKey, BinanceAccount


@dataclass(frozen=True)
class WhitelistReading:
    any_whitelisted: bool | None  # a saved address is whitelisted; None: could not be read
    error: str | None = None  # why not, for people


def read_whitelists(
    gateway: binance.BinanceGateway,
    checked: Iterable[tuple[ApiKey, binance.Credentials, binance.KeyPermissions]],
) -> dict[str, WhitelistReading]:
    """account id -> reading, for every account with a Withdraw-tier key among ``checked``
    (keys Binance just answered for, with what it said)."""
    by_account: dict[str, list[tuple[binance.Credentials, binance.KeyPermissions]]] = {}
    for key, creds, perms in checked:
        by_account.setdefault(key.account_id, []).append((creds, perms))
    readings: dict[str, WhitelistReading] = {}
    for account_id, keys in by_account.items():
        if not any(perms.tier >= binance.Tier.WITHDRAW for _, perms in keys):
            continue
        readable = [
            (creds, perms) for creds, perms in keys if perms.flag("enableReading") is not False
        ]
        readable.sort(key=lambda pair: pair[1].tier < binance.Tier.WITHDRAW)
        reading = WhitelistReading(None, "no key of this account may read it.")
        for creds, _perms in readable:
            try:
                addresses = gateway.withdraw_addresses(creds)
            except binance.KeyRejected as error:
                reading = WhitelistReading(None, error.user_message)
                continue  # another key of the account may be allowed
            except binance.BinanceError as error:
                reading = WhitelistReading(None, error.user_message)
                break
            reading = WhitelistReading(binance.any_address_whitelisted(addresses))
            break
        readings[account_id] = reading
    return readings


def store_whitelists(
    session: Session, readings: dict[str, WhitelistReading], now: datetime
) -> None:
    """In the caller's transaction: remember what was read (a failed read keeps the last)."""
    for account_id, reading in readings.items():
        if reading.any_whitelisted is None:
            continue
        account = session.get(BinanceAccount, account_id)
        if account is not None:
            account.withdraw_whitelist = reading.any_whitelisted
            account.withdraw_whitelist_checked_at = now
