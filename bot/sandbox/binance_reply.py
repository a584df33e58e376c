"""What the Binance simulator answers: one reply, and Binance's own words for the errors that
more than one of its modules sends (``binance_simulator``, ``binance_subaccounts``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Spot error texts (https://developers.binance.com/docs/binance-spot-api-docs/errors).
MSG_REJECTED = "Invalid API-key, IP, or permissions for action."
MSG_TOO_MUCH = (
    "Too much request weight used; current limit is {limit} request weight per 1 {period}. "
    "Please use WebSocket Streams for live updates to avoid polling the API."
)


@dataclass
class Reply:
    status: int
    body: Any  # JSON-able, or str for a plain (gateway) body
    code: int | None = None
    retry_after: int | None = None
    hang: bool = False  # injected "timeout": never answer
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, code: int, msg: str, retry_after: int | None = None) -> Reply:
        return cls(status, {"code": code, "msg": msg}, code, retry_after)
