"""What listeners need, bundled once at start-up and handed to them through Bolt's context."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.engine import Engine

from bot.binance import BinanceGateway
from bot.config import Settings
from bot.services.access import Actor
from storage.crypto import KeyRing
from storage.models import utcnow


class Directory(Protocol):
    """Who is an admin, and where commands are allowed (Slack's side: bot.slack.access)."""

    def is_admin(self, user_id: str) -> bool: ...

    def actor(self, *, user_id: str, team_id: str, channel: str | None) -> Actor: ...

    def channel_allowed(self, channel: str | None) -> bool: ...


@dataclass
class Services:
    settings: Settings
    engine: Engine
    ring: KeyRing
    gateway: BinanceGateway
    # Slow work (Binance calls) runs here, after the ack, so acks never wait for Binance.
    # Few workers: each status report already fans out over the gateway's own pool, and
    # CPU-bound report work must not crowd out the acks (one interpreter lock).
    background: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="work")
    )
    clock: Callable[[], datetime] = utcnow
    # Set by build_app (it needs the Slack client): admins, user group, allowed channels.
    access: Directory | None = None

    def close(self) -> None:
        self.background.shutdown(wait=True, cancel_futures=False)
