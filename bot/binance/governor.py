"""The governor gateway: a master account's "governor" key managing its sub-accounts' API keys.

The one part of ``bot.binance`` that changes anything at Binance, and only this: create,
delete, re-permission and IP-restrict sub-account keys, plus the reads those need. Its
allow-list (``bot.binance.governor_transport.GOVERNOR_ENDPOINTS``) holds nothing else: never
an order, a transfer or a withdrawal. The read-only gateway is untouched and stays GET-only.

Every call, whatever its outcome (a refusal by the allow-list included), is told to
``on_call`` as a ``GovernorCall`` so that services can audit and announce it. Failures are the
classes of ``bot.binance.errors``, with the bot's own words: no raw body text, no signed URL,
no secret.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from Crypto.PublicKey import ECC, RSA

from bot.binance.budget import RateLimits, current_account, on_account, shared_limits
from bot.binance.errors import (
    BadKeyFormat,
    BadSignature,
    BinanceError,
    BinanceUnavailable,
    ClockDrift,
    ErrorDetails,
    ForbiddenEndpoint,
    GovernorRefused,
    IpBanned,
    KeyRejected,
    RateLimited,
    UnexpectedResponse,
)
from bot.binance.gateway import Credentials, mask_api_key
from bot.binance.governor_transport import (
    ADD_IPS_PATH,
    API_RESTRICTIONS_PATH,
    CREATE_KEY_PATH,
    DELETE_IPS_PATH,
    DELETE_KEY_PATH,
    IPS_PATH,
    PERMISSION_PATH,
    SUB_ACCOUNT_LIST_PATH,
    TIME_PATH,
    GovernorSession,
    GovernorTransport,
    PreparedCall,
)
from bot.binance.governor_types import (
    CreatedSubAccountKey,
    GovernorCall,
    IpRestriction,
    SubAccount,
    SubAccountGrant,
)
from bot.binance.permissions import KeyPermissions
from bot.binance.transport import DEFAULT_429_PAUSE, DEFAULT_BASE_URL, ApiFailure

log = logging.getLogger(__name__)

LIST_PAGE_SIZE = 200  # "limit: default 1, max 200" (Query Sub-account List)
MAX_IP_TEXT = 500  # "ipAddress: IP address list, max 500 chars" (Create Sub-account API Key V2)

_KYC = (
    "Binance refused: the governor key's caller did not pass Binance's KYC IP restriction "
    "check, which every sub-account key change requires. Make sure the bot calls Binance from "
    "an address allowed for the master account, then try again."
)
_BAD_PARAMETER = (
    "Binance did not accept this request's details: the sub-account may not belong to this "
    "master account, the key may not be that sub-account's (or was already deleted), or an IP "
    "address is malformed. Nothing was changed."
)
_UNSUPPORTED = "Binance does not support this operation for this sub-account or key."
_FIX_NEEDS_ED25519 = (
    "Binance refused: FIX API permissions are only for keys made from an Ed25519 public key. "
    "Create the key from an Ed25519 pair, or without FIX permissions."
)
_ASSET_MANAGEMENT = (
    "Binance refused: the keys of an asset-management sub-account cannot be managed through "
    "the API. Use an ordinary sub-account for the bot's keys."
)
_GOVERNOR_REJECTED = (
    "Binance rejected the governor key: it was deleted, this bot's IP address is not on its "
    "whitelist, or it lacks a permission (changing IP lists needs 'Enable Spot & Margin "
    "Trading' on the governor key). Binance does not say which."
)
_NOT_CONFIRMED = (
    "Binance did not confirm the change (it failed on Binance's side); it may or may not have "
    "happened. Check the key before trying again."
)


class GovernorGateway:
    """Sub-account key management with one governor key at a time; safe to share between
    threads. ``on_call`` is told of every call, success or failure."""

    def __init__(
        self,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 10.0,
        recv_window_ms: int = 10_000,
        limits: RateLimits | None = None,
        on_call: Callable[[GovernorCall], None] | None = None,
    ) -> None:
        self.limits = limits if limits is not None else shared_limits().for_gateway()
        self._on_call = on_call
        self._transport = GovernorTransport(
            base_url,
            timeout=timeout,
            recv_window_ms=recv_window_ms,
            limits=self.limits,
            on_forbidden=lambda method, path: self._report(method, path, "forbidden"),
        )
        self._resync_lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def session(self) -> GovernorSession:
        """The gated session underneath (nothing but the allow-list gets through it)."""
        return self._transport.session

    def close(self) -> None:
        self._transport.session.close()

    def __enter__(self) -> GovernorGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reads -----------------------------------------------------------------------------

    def own_permissions(self, creds: Credentials) -> KeyPermissions:
        """What Binance says the governor key itself may do (apiRestrictions)."""
        return KeyPermissions.from_api(_mapping(self.request(creds, "GET", API_RESTRICTIONS_PATH)))

    def sub_accounts(self, creds: Credentials) -> list[SubAccount]:
        """Every sub-account of the governor's master account, all pages."""
        accounts: list[SubAccount] = []
        page = 1
        while True:
            params = {"page": page, "limit": LIST_PAGE_SIZE}
            payload = _mapping(self.request(creds, "GET", SUB_ACCOUNT_LIST_PATH, params))
            rows = payload.get("subAccounts")
            if not isinstance(rows, list):
                raise UnexpectedResponse("Binance's sub-account list could not be read.")
            accounts += [SubAccount.from_api(r) for r in rows if isinstance(r, Mapping)]
            if len(rows) < LIST_PAGE_SIZE:
                return accounts
            page += 1

    def ip_restriction(self, creds: Credentials, *, email: str, api_key: str) -> IpRestriction:
        params = {"email": email, "subAccountApiKey": api_key}
        answer = self.request(creds, "GET", IPS_PATH, params, email=email, api_key=api_key)
        return IpRestriction.from_api(_mapping(answer))

    # --- changes ---------------------------------------------------------------------------

    def create_sub_account_key(
        self,
        creds: Credentials,
        *,
        email: str,
        api_name: str,
        public_key_pem: str,
        grant: SubAccountGrant,
        ip_addresses: Sequence[str] | None,
    ) -> CreatedSubAccountKey:
        """A new key of sub-account ``email`` from the bot's public key: ``ip_addresses`` None
        makes it unrestricted (status 1), a list restricts it to those IPs (status 2)."""
        with self._refusing_input("POST", CREATE_KEY_PATH, email, None):
            public_pem = _public_key_text(public_key_pem)
            if not api_name.strip():
                raise GovernorRefused(None, "Give the new key a name.")
            ips = None if ip_addresses is None else _ip_text(ip_addresses)
        params: dict[str, Any] = {"email": email, "apiName": api_name.strip()}
        params["status"] = "1" if ips is None else "2"
        params.update(grant.to_params())
        if ips is not None:
            params["ipAddress"] = ips
        params["publicKey"] = public_pem
        unsupported = _FIX_NEEDS_ED25519 if grant.has_fix else _ASSET_MANAGEMENT
        answer = self.request(
            creds, "POST", CREATE_KEY_PATH, params, email=email, unsupported=unsupported
        )
        created = CreatedSubAccountKey.from_api(_mapping(answer), email=email, asked=grant)
        if not created.api_key:
            raise UnexpectedResponse("Binance's answer did not name the new key.")
        return created

    def delete_sub_account_key(self, creds: Credentials, *, email: str, api_key: str) -> None:
        params = {"email": email, "subAccountApiKey": api_key}
        self.request(
            creds,
            "DELETE",
            DELETE_KEY_PATH,
            params,
            email=email,
            api_key=api_key,
            unsupported=_ASSET_MANAGEMENT,
        )

    def set_sub_account_key_permissions(
        self, creds: Credentials, *, email: str, api_key: str, grant: SubAccountGrant
    ) -> None:
        """Change the five permissions Binance's permission page takes. FIX permissions are
        set only when a key is created: asking for them here is refused, nothing sent."""
        with self._refusing_input("POST", PERMISSION_PATH, email, api_key):
            if grant.has_fix:
                raise GovernorRefused(
                    None,
                    "Binance's API sets FIX permissions only when a key is created. "
                    "Create a successor key with them instead.",
                )
        params = {"email": email, "subAccountApiKey": api_key, **grant.permission_params()}
        self.request(
            creds,
            "POST",
            PERMISSION_PATH,
            params,
            email=email,
            api_key=api_key,
            unsupported=_ASSET_MANAGEMENT,
        )

    def restrict_ips(
        self, creds: Credentials, *, email: str, api_key: str, ip_addresses: Sequence[str]
    ) -> IpRestriction:
        """Restrict the key to trusted IPs, adding ``ip_addresses`` to its list (Binance's "Add
        IP Restriction" adds; remove others with ``remove_ips``)."""
        with self._refusing_input("POST", ADD_IPS_PATH, email, api_key):
            ips = _ip_text(ip_addresses)
        params = {"email": email, "subAccountApiKey": api_key, "status": "2", "ipAddress": ips}
        answer = self.request(creds, "POST", ADD_IPS_PATH, params, email=email, api_key=api_key)
        return IpRestriction.from_api(_mapping(answer))

    def lift_ip_restriction(self, creds: Credentials, *, email: str, api_key: str) -> IpRestriction:
        """Give the key no IP restriction at all (Binance's "Add IP Restriction" with status 1,
        "IP unrestricted"): used only to give a quarantined key back what it had."""
        params = {"email": email, "subAccountApiKey": api_key, "status": "1"}
        answer = self.request(creds, "POST", ADD_IPS_PATH, params, email=email, api_key=api_key)
        return IpRestriction.from_api(_mapping(answer))

    def remove_ips(
        self, creds: Credentials, *, email: str, api_key: str, ip_addresses: Sequence[str]
    ) -> IpRestriction:
        with self._refusing_input("DELETE", DELETE_IPS_PATH, email, api_key):
            ips = _ip_text(ip_addresses)
        params = {"email": email, "subAccountApiKey": api_key, "ipAddress": ips}
        answer = self.request(
            creds, "DELETE", DELETE_IPS_PATH, params, email=email, api_key=api_key
        )
        return IpRestriction.from_api(_mapping(answer))

    # --- the one way out -------------------------------------------------------------------

    def prepare(
        self, creds: Credentials, method: str, path: str, params: Mapping[str, Any]
    ) -> PreparedCall:
        """The signed request ``request`` would send (allow-listed, or ``ForbiddenEndpoint``)."""
        return self._transport.prepare(creds, method, path, params)

    def request(
        self,
        creds: Credentials,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        email: str | None = None,
        api_key: str | None = None,
        unsupported: str = _UNSUPPORTED,
    ) -> Any:
        """Send one signed request to an allow-listed endpoint: Binance's JSON answer, or a
        classified failure. ``on_call`` is told either way."""
        method = method.upper()
        outcome = "ok"
        try:
            # Sub-account key management is limited per account (UID): the governor key
            # belongs to one master account, so each governor has its own allowance, named
            # by a digest of its key (never the key itself) unless the caller named one.
            with on_account(current_account() or uid_account_of(creds)):
                answer = self._with_recovery(creds, method, path, params or {}, unsupported)
            if api_key is None and isinstance(answer, Mapping):
                named = answer.get("apiKey")  # the create call's new key, for the record
                api_key = named if isinstance(named, str) else None
            return answer
        except ForbiddenEndpoint:
            outcome = "forbidden"
            raise
        except BinanceError as error:
            outcome = _outcome(error)
            level = logging.WARNING if isinstance(error, BinanceUnavailable) else logging.INFO
            log.log(
                level,
                "governor %s %s with key %s: %s (HTTP %s, code %s)",
                method,
                path,
                creds.masked,
                type(error).__name__,
                error.http_status,
                error.code,
            )
            raise
        except Exception as exc:  # a bug: reported, then raised as it is
            outcome = type(exc).__name__
            raise
        finally:
            self._report(method, path, outcome, creds, email, api_key)

    # --- internals -------------------------------------------------------------------------

    def _with_recovery(
        self,
        creds: Credentials,
        method: str,
        path: str,
        params: Mapping[str, Any],
        unsupported: str,
    ) -> Any:
        """One resync + retry on -1021 (Binance refused before doing anything)."""
        resynced = False
        while True:
            call = self._transport.prepare(creds, method, path, params)
            try:
                return self._transport.send(call)
            except ApiFailure as failure:
                if failure.code == -1021 and not resynced:
                    resynced = True
                    self._resync()
                    continue
                raise _classify(failure, method, unsupported) from None

    def _resync(self) -> None:
        with self._resync_lock:
            before = time.time()
            try:
                payload = self._transport.send(self._transport.prepare(None, "GET", TIME_PATH, {}))
            except (ApiFailure, BinanceError):
                raise ClockDrift(code=-1021) from None
            server = payload.get("serverTime") if isinstance(payload, Mapping) else None
            if not isinstance(server, int) or isinstance(server, bool):
                raise ClockDrift(code=-1021)
            self._transport.clock_offset_ms = server - round((before + time.time()) / 2 * 1000)

    @contextmanager
    def _refusing_input(
        self, method: str, path: str, email: str | None, api_key: str | None
    ) -> Iterator[None]:
        """Bad input is refused before anything is sent, and reported like any other call."""
        try:
            yield
        except GovernorRefused as refused:
            self._report(method, path, _outcome(refused), None, email, api_key)
            raise

    def _report(
        self,
        method: str,
        path: str,
        outcome: str,
        creds: Credentials | None = None,
        email: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if self._on_call is None:
            return
        self._on_call(
            GovernorCall(
                method=method.upper(),
                endpoint=path,
                sub_account=email,
                api_key_masked=mask_api_key(api_key) if api_key else None,
                governor_masked=creds.masked if creds is not None else "-",
                outcome=outcome,
                at=time.time(),
            )
        )


def uid_account_of(creds: Credentials) -> str:
    """The name the governor key's own per-account (UID) allowance is booked under."""
    return "governor:" + hashlib.sha256(creds.api_key.encode()).hexdigest()[:16]


def _outcome(error: BinanceError) -> str:
    name = type(error).__name__
    return name if error.code is None else f"{name}:{error.code}"


def _classify(failure: ApiFailure, method: str, unsupported: str) -> BinanceError:
    status, code = failure.status, failure.code
    kw: ErrorDetails = {"code": code, "http_status": status}
    budget = failure.budget
    if status == 418:
        until = (budget.banned_until if budget else None) or datetime.now(UTC)
        return IpBanned(until, **kw)
    if status == 429 or code == -1003:
        wait = DEFAULT_429_PAUSE if failure.retry_after is None else failure.retry_after
        return RateLimited(wait, period=budget.period if budget else "minute", **kw)
    if code in (-2015, -2008):
        return KeyRejected(_GOVERNOR_REJECTED, **kw)
    if code == -2014:
        return BadKeyFormat(**kw)
    if code == -1022:
        return BadSignature(**kw)
    if code == -1021:
        return ClockDrift(**kw)
    if code == -9000:
        return GovernorRefused(code, unsupported, http_status=status)
    if code == -1002:
        return GovernorRefused(code, _KYC, http_status=status)
    if code in (-1100, -1101, -1102, -1103, -1104, -1105, -1106, -1130):
        return GovernorRefused(code, _BAD_PARAMETER, http_status=status)
    if status == 403:
        return BinanceUnavailable(
            "Binance's web application firewall is refusing requests from this bot's address "
            "(usually for about five minutes).",
            reason="waf_blocked",
            **kw,
        )
    if status >= 500:
        message = _NOT_CONFIRMED if method != "GET" else None
        return BinanceUnavailable(message, reason="server_error", **kw)
    if code is None:
        return BinanceUnavailable(reason="bad_response", **kw)
    return GovernorRefused(code, f"Binance refused this request (code {code}).", http_status=status)


def _mapping(payload: Any) -> Mapping[str, Any]:
    if not isinstance(payload, Mapping):
        raise UnexpectedResponse("Binance's answer could not be read.")
    return payload


def _ip_text(ip_addresses: Sequence[str]) -> str:
    """Binance's comma-separated list, every entry an IP address, within 500 characters."""
    if isinstance(ip_addresses, str):
        ip_addresses = [ip_addresses]
    ips = [ip.strip() for ip in ip_addresses if ip.strip()]
    if not ips:
        raise GovernorRefused(None, "Give at least one IP address.")
    for ip in ips:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            raise GovernorRefused(None, f"{ip[:45]!r} is not an IP address.") from None
    text = ",".join(dict.fromkeys(ips))
    if len(text) > MAX_IP_TEXT:
        raise GovernorRefused(None, "Binance takes at most 500 characters of IP addresses.")
    return text


def _public_key_text(pem: str) -> str:
    """The public key as Binance takes it (Ed25519, or RSA 2048/4096); a private key is
    refused here, so it never leaves the bot."""
    text = pem.strip().replace("\r\n", "\n")
    refusal = GovernorRefused(
        None,
        "Give the public key (-----BEGIN PUBLIC KEY-----) of an Ed25519 or RSA 2048/4096 pair.",
    )
    if "PRIVATE" in text.upper():
        raise refusal
    try:
        rsa = RSA.import_key(text)
        if rsa.has_private() or rsa.size_in_bits() not in (2048, 4096):
            raise refusal
    except (ValueError, IndexError, TypeError):
        try:
            ecc = ECC.import_key(text)
        except (ValueError, IndexError, TypeError):
            raise refusal from None
        if ecc.has_private() or ecc.curve != "Ed25519":
            raise refusal from None
    return text + "\n"
