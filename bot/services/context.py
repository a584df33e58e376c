"""What listeners need, bundled once at start-up and handed to them through Bolt's context."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from bot.binance import BinanceGateway
from bot.config import Settings

if TYPE_CHECKING:
    from bot.listeners.access import AccessDirectory
from storage.crypto import KeyRing
from storage.models import utcnow


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
    access: AccessDirectory | None = None

    def close(self) -> None:
        self.background.shutdown(wait=True, cancel_futures=False)
