"""python-binance behind an allow-list of reads, used through its public interface only.

The one module that imports python-binance; tests/test_dependencies.py keeps it so and checks,
on whatever release is installed, every name used here. A python-binance ``Client`` is built
with public keywords (``api_key``, ``api_secret``, ``requests_params``, ``private_key``,
``ping``) and then given public attributes:

- ``session``: the gateway's ``TransportSession``, so whatever python-binance sends is gated
  (an allow-listed GET, no body), booked in the shared budget and checked by the transport.
  The session python-binance made for itself is closed: no connection pool per key.
- ``API_URL`` / ``MARGIN_API_URL``: the configured base URL (binance.com, binance.us, the
  simulator); ``REQUEST_RECVWINDOW``: the configured recvWindow;
- ``timestamp_offset``: the gateway's learned clock offset, set before each signed read.

The API key travels as requests' ``auth=`` (through ``requests_params``), added per request,
since the shared session carries no key. Private keys are loaded by their declared type
(``load_private_key``); python-binance is handed that key's canonical PKCS#8 PEM, and what it
read is compared with the declared key before the client is used (``PRIVATE_KEY``).

``ReadOnlyClient`` offers only the reads the gateway needs, gates each read's path before
anything is signed, and refuses every other python-binance method by name.

One hook has no public equivalent: no release up to 1.0.37 has a method for
``GET /sapi/v1/capital/withdraw/address/list``, so ``get_withdraw_address_list`` calls the
private ``_request_margin_api``, whose parameters tests/test_dependencies.py pins.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import requests
from binance import Client
from Crypto.PublicKey import RSA

from bot.binance.errors import ForbiddenEndpoint
from bot.binance.transport import (
    WITHDRAW_ADDRESSES_PATH,
    WITHDRAW_HISTORY_PATH,
    PrivateKey,
    Transport,
)

# The path each read requests (python-binance builds the URL; the gate checks this path first).
TIME_PATH = "/api/v3/time"
API_RESTRICTIONS_PATH = "/sapi/v1/account/apiRestrictions"
API_TRADING_STATUS_PATH = "/sapi/v1/account/apiTradingStatus"
ACCOUNT_STATUS_PATH = "/sapi/v1/account/status"
DEPOSIT_HISTORY_PATH = "/sapi/v1/capital/deposit/hisrec"


class KeyReadDifferently(RuntimeError):
    """python-binance read a private key as something other than the declared key.

    Not the user's fault and not Binance's: this release of python-binance loads keys
    differently, and this module needs adapting (tests/test_dependencies.py says so first).
    """


class ApiKeyHeader(requests.auth.AuthBase):
    """Binance's API key header, added to one request: "API-keys are passed into the Rest API
    via the X-MBX-APIKEY header" (developers.binance.com/docs/binance-spot-api-docs/rest-api/
    endpoint-security-type)."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["X-MBX-APIKEY"] = self.api_key
        return request

    def __repr__(self) -> str:
        return "ApiKeyHeader(...)"  # the key is no secret, but has no business in a log either


class ReadOnlyClient:
    """The reads the gateway makes, each through python-binance's public method for it.

    ``api_secret`` signs HMAC keys; ``private_key`` (loaded by its declared type) signs
    Ed25519 and RSA keys. Clients of one gateway share its transport: session, budget and
    clock offset.
    """

    def __init__(
        self,
        transport: Transport,
        api_key: str | None = None,
        api_secret: str | None = None,
        private_key: PrivateKey | None = None,
    ) -> None:
        self._transport = transport
        try:
            with _borrowed_event_loop():
                library = Client(
                    api_key,
                    api_secret,
                    requests_params={"auth": ApiKeyHeader(api_key)} if api_key else None,
                    private_key=_canonical_pem(private_key) if private_key is not None else None,
                    ping=False,
                )
        except ValueError:  # what pycryptodome raises for a key it cannot read as asked
            if private_key is None:
                raise
            raise KeyReadDifferently(_read_differently(private_key)) from None
        own_session, library.session = library.session, transport.client_session
        own_session.close()
        library.API_URL = transport.base_url + "/api"
        library.MARGIN_API_URL = transport.base_url + "/sapi"
        library.REQUEST_RECVWINDOW = transport.recv_window_ms
        if private_key is not None and not _same_key(library.PRIVATE_KEY, private_key):
            raise KeyReadDifferently(_read_differently(private_key))
        self._binance = library

    @property
    def session(self) -> requests.Session:
        """What this client sends through: gated, shared by every client of the gateway."""
        return self._transport.client_session

    # --- the reads ------------------------------------------------------------------------

    def get_server_time(self) -> Any:
        return self._read(TIME_PATH, lambda c: c.get_server_time())

    def get_account_api_permissions(self) -> Any:
        return self._read(API_RESTRICTIONS_PATH, lambda c: c.get_account_api_permissions())

    def get_account_api_trading_status(self) -> Any:
        return self._read(API_TRADING_STATUS_PATH, lambda c: c.get_account_api_trading_status())

    def get_account_status(self) -> Any:
        return self._read(ACCOUNT_STATUS_PATH, lambda c: c.get_account_status())

    def get_withdraw_history(self, **params: Any) -> Any:
        return self._read(WITHDRAW_HISTORY_PATH, lambda c: c.get_withdraw_history(**params))

    def get_deposit_history(self, **params: Any) -> Any:
        return self._read(DEPOSIT_HISTORY_PATH, lambda c: c.get_deposit_history(**params))

    def get_withdraw_address_list(self) -> Any:
        # The one private hook: python-binance has no public method for this read (see above).
        return self._read(
            WITHDRAW_ADDRESSES_PATH,
            lambda c: c._request_margin_api("get", "capital/withdraw/address/list", True, data={}),
        )

    def _read(self, path: str, call: Callable[[Any], Any]) -> Any:
        self._transport.gate("GET", self._transport.base_url + path)  # before anything is signed
        self._binance.timestamp_offset = self._transport.clock_offset_ms
        return call(self._binance)

    if not TYPE_CHECKING:  # to the type checker, only the reads above exist

        def __getattr__(self, name: str) -> NoReturn:
            """Any other python-binance method (an order, a withdrawal, another read) is
            refused here by name, before anything is signed."""
            if not name.startswith("__") and hasattr(Client, name):
                raise ForbiddenEndpoint("call", f"python-binance Client.{name}")
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


# --- keys -----------------------------------------------------------------------------------


def _canonical_pem(key: PrivateKey) -> str:
    """The key as unencrypted PKCS#8 PEM, whatever form it was pasted in (OpenSSH, PKCS#1...):
    what python-binance's ``private_key`` takes ("string of file contents")."""
    if isinstance(key, RSA.RsaKey):
        return key.export_key(format="PEM", pkcs=8).decode()
    exported = key.export_key(format="PEM")
    return exported.decode() if isinstance(exported, bytes) else exported


def _same_key(read: object, declared: PrivateKey) -> bool:
    return type(read) is type(declared) and read == declared


def _read_differently(key: PrivateKey) -> str:
    kind = "RSA" if isinstance(key, RSA.RsaKey) else "Ed25519"
    return (
        f"python-binance did not read this {kind} private key as the same {kind} key: "
        "bot/binance/read_only_client.py needs adapting to the installed release"
    )


# --- python-binance's constructor and event loops ---------------------------------------------


@contextlib.contextmanager
def _borrowed_event_loop() -> Iterator[None]:
    """python-binance's constructor builds websocket helpers (never used here) that fetch the
    thread's event loop, creating one per worker thread otherwise, and keep it alive for as long
    as the client lives. Lend worker threads one idle loop for the duration instead."""
    if threading.current_thread() is threading.main_thread() or _has_event_loop():
        yield
        return
    asyncio.set_event_loop(_idle_loop())
    try:
        yield
    finally:
        asyncio.set_event_loop(None)


def _has_event_loop() -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            asyncio.get_event_loop()
    except RuntimeError:
        return False
    return True


_IDLE_LOOP: list[asyncio.AbstractEventLoop] = []
_IDLE_LOOP_LOCK = threading.Lock()


def _idle_loop() -> asyncio.AbstractEventLoop:
    with _IDLE_LOOP_LOCK:
        if not _IDLE_LOOP:
            _IDLE_LOOP.append(asyncio.new_event_loop())
        return _IDLE_LOOP[0]
