"""Where a key's credentials are delivered, and how its newest version fared."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SINK_LABELS = {"file": "file", "aws": "AWS Secrets Manager"}


@dataclass(frozen=True)
class DeliveryView:
    sink: str  # "file" or "aws"
    destination: str | None  # the path or secret name; None: nothing planned yet
    state: str  # pending, delivered, superseded, cancelled, or "none"
    version: int | None = None
    planned_at: datetime | None = None
    delivered_at: datetime | None = None
    failing_since: datetime | None = None
    last_error: str | None = None
    attempts: int = 0

    @property
    def sink_label(self) -> str:
        return SINK_LABELS.get(self.sink, self.sink)

    @property
    def failing(self) -> bool:
        return self.state == "pending" and self.failing_since is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sink": self.sink,
            "destination": self.destination,
            "state": self.state,
            "version": self.version,
            "planned_at": _iso(self.planned_at),
            "delivered_at": _iso(self.delivered_at),
            "failing_since": _iso(self.failing_since),
            "last_error": self.last_error,
            "attempts": self.attempts,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DeliveryView | None:
        if not data:
            return None
        return cls(
            sink=data["sink"],
            destination=data.get("destination"),
            state=data["state"],
            version=data.get("version"),
            planned_at=_when(data.get("planned_at")),
            delivered_at=_when(data.get("delivered_at")),
            failing_since=_when(data.get("failing_since")),
            last_error=data.get("last_error"),
            attempts=data.get("attempts", 0),
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
