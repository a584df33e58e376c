"""Classified Binance failures: what went wrong, told politely, without secrets.

Every failure the gateway reports is one of these. ``user_message`` is written for the person
who registered the key (one or two sentences); ``code`` / ``http_status`` are for logs and
tests. Nothing here ever holds a secret, a signature or a raw exception text (requests'
exceptions carry the signed URL).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypedDict, Unpack


class ErrorDetails(TypedDict, total=False):
    """The keyword details every ``BinanceError`` accepts (for ``**kw`` pass-through)."""

    code: int | None
    http_status: int | None
    key: str | None


class ForbiddenEndpoint(PermissionError):
    """The gateway was asked to call something that is not an allow-listed read.

    A programming error, not a Binance failure: deliberately *not* a BinanceError, so no
    service can mistake it for "Binance was unreachable" and carry on.
    """

    def __init__(self, method: str, url: str, *, gateway: str = "read-only") -> None:
        # Only the path: a URL may carry a signature in its query string.
        path = url.split("?", 1)[0]
        super().__init__(f"{gateway} gateway refuses {method.upper()} {path}")
        self.method = method.upper()
        self.path = path


class BinanceError(Exception):
    """Base class of every classified failure."""

    default_message = "Binance could not answer this request."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        code: int | None = None,
        http_status: int | None = None,
        key: str | None = None,
    ) -> None:
        self.user_message = user_message or self.default_message
        self.code = code
        self.http_status = http_status
        self.key = key  # the api key's masked form, when the failure concerns one key
        super().__init__(self.user_message)

    def __str__(self) -> str:
        details = []
        if self.http_status is not None:
            details.append(f"HTTP {self.http_status}")
        if self.code is not None:
            details.append(f"code {self.code}")
        if self.key:
            details.append(f"key {self.key}")
        suffix = f" ({', '.join(details)})" if details else ""
        return self.user_message + suffix


# What Binance's error codes page says of the codes that reject a key, word for word
# (https://developers.binance.com/docs/binance-spot-api-docs/errors): -2015 REJECTED_MBX_KEY
# names three causes at once, so a key it rejects is not known to be deleted.
REJECTION_TEXT = {
    -2015: "Invalid API-key, IP, or permissions for action",
    -2008: "Invalid Api-Key ID",
}


class KeyRejected(BinanceError):
    """-2015 / -2008. Binance does not say which of the three causes applies."""

    default_message = (
        "Binance rejected this API key: either the key was deleted, or this bot's IP address "
        "is not on the key's IP whitelist, or the key lacks the permission for this request. "
        "Binance does not say which, so the bot cannot tell."
    )

    @property
    def binance_said(self) -> str:
        """The code and Binance's documented words for it (for the audit trail)."""
        if self.code in REJECTION_TEXT:
            return f"{self.code} {REJECTION_TEXT[self.code]}"
        return f"HTTP {self.http_status}" if self.code is None else str(self.code)


class BadKeyFormat(BinanceError):
    """-2014, or a key / private key the bot cannot even read."""

    default_message = (
        "Binance says this API key is not in a valid format. Check that the whole key was pasted."
    )

    def __init__(
        self, user_message: str | None = None, *, part: str = "api_key", **kw: Unpack[ErrorDetails]
    ) -> None:
        super().__init__(user_message, **kw)
        self.part = part  # "api_key" or "secret" (the HMAC secret or the private key)


class BadSignature(BinanceError):
    """-1022: the secret (or private key) does not belong to the API key."""

    default_message = (
        "Binance could not verify the request signature: the secret or private key does not "
        "belong to this API key."
    )


class ClockDrift(BinanceError):
    """-1021 that persisted after one server-time resync."""

    default_message = (
        "This bot's clock disagrees with Binance's, even after resynchronising with it. "
        "Try again in a minute; if it keeps happening, the server's clock needs fixing."
    )


class RateLimited(BinanceError):
    """HTTP 429 / -1003, or the bot's own weight budget is exhausted. ``period``: the interval
    the spent limit counts ("minute" for most; "second" for the withdraw history's)."""

    def __init__(
        self,
        retry_after: float,
        user_message: str | None = None,
        *,
        period: str = "minute",
        **kw: Unpack[ErrorDetails],
    ) -> None:
        self.retry_after = max(0.0, float(retry_after))
        seconds = max(1, round(self.retry_after))
        at = datetime.now(UTC) + timedelta(seconds=seconds)
        user_message = user_message or (
            f"Binance's request limit for this {period} is used up; it can be checked from "
            f"{at:%H:%M:%S} UTC (in about {seconds} second{'s' if seconds != 1 else ''})."
        )
        super().__init__(user_message, **kw)


class IpBanned(BinanceError):
    """HTTP 418: Binance banned this IP for ignoring rate limits. Nothing is sent until ``until``."""

    def __init__(
        self, until: datetime, user_message: str | None = None, **kw: Unpack[ErrorDetails]
    ) -> None:
        self.until = until.astimezone(UTC)
        user_message = user_message or (
            "Binance has temporarily banned this bot's IP address for sending too many requests. "
            f"The ban lifts at {self.until:%H:%M:%S} UTC."
        )
        super().__init__(user_message, **kw)


class BinanceUnavailable(BinanceError):
    """Connection refused, timeout, HTTP 5xx or a body that is not JSON."""

    default_message = "Binance could not be reached or did not answer properly. Try again later."

    def __init__(
        self,
        user_message: str | None = None,
        *,
        reason: str = "unavailable",
        **kw: Unpack[ErrorDetails],
    ) -> None:
        super().__init__(user_message, **kw)
        self.reason = reason  # "timeout", "connection", "server_error", "bad_response"


class UnexpectedResponse(BinanceError):
    """A Binance error code this bot does not know how to interpret."""

    default_message = "Binance refused the request with an error this bot does not recognise."


class GovernorRefused(BinanceError):
    """Binance refused a governor call for a business reason (-9000 unsupported operation, the
    KYC IP check, a sub-account or key that is not the master's...). ``user_message`` says
    what it means and what to do, in the bot's words: never Binance's raw text."""

    default_message = "Binance refused to change this sub-account key."

    def __init__(
        self,
        code: int | None,
        user_message: str | None = None,
        *,
        http_status: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(user_message, code=code, http_status=http_status, key=key)
