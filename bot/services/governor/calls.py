"""Every governor call audited and announced.

The governor gateway tells ``GovernorCallRecorder`` of every call it makes or refuses
(bot.binance.governor.GovernorCall). The services say on whose behalf they call with
``on_behalf_of`` (a context variable, so the one gateway of the process serves every team
and thread); each call becomes an audit event (endpoint, sub-account, key, governor key,
outcome) and, in the same transaction, a job that posts it to the alert channel (every change
and every failure; a read that worked is audited only). A call with
no one named on whose behalf is audited as the bot's own, under the system team.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Engine

from bot.binance import GovernorCall
from bot.job_queue.kinds import governor_announce
from bot.job_queue.queue import schedule_jobs
from bot.vocabulary import AuditAction
from storage.audit import record_event
from storage.db import session_scope
from storage.master_keys import SYSTEM_TEAM
from storage.models import new_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallContext:
    """On whose behalf the governor calls Binance."""

    team_id: str
    actor: str  # a Slack user id, or "bot"
    why: str  # create, rotate, contain, quarantine, restore, list, check
    key_id: str | None = None  # the api_keys row the call concerns
    label: str | None = None
    incident_id: str | None = None


_CURRENT: ContextVar[CallContext | None] = ContextVar("governor_call_context", default=None)


@contextlib.contextmanager
def on_behalf_of(context: CallContext) -> Iterator[CallContext]:
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


class GovernorCallRecorder:
    """The governor gateway's ``on_call``: audit, then announce, each call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, call: GovernorCall) -> None:
        context = _CURRENT.get() or CallContext(team_id=SYSTEM_TEAM, actor="bot", why="unknown")
        facts = {
            "method": call.method,
            "endpoint": call.endpoint,
            "sub_account": call.sub_account,
            "key": call.api_key_masked,
            "governor": call.governor_masked,
            "outcome": call.outcome,
            "why": context.why,
            "actor": context.actor,
            "label": context.label,
            "key_id": context.key_id,
            "incident_id": context.incident_id,
        }
        at = datetime.fromtimestamp(call.at, UTC)
        try:
            with session_scope(self.engine) as session:
                record_event(
                    session,
                    team_id=context.team_id,
                    actor=context.actor,
                    action=AuditAction.GOVERNOR_CALL,
                    target=context.label or call.sub_account,
                    target_key_id=context.key_id,
                    source="governor",
                    detail={k: v for k, v in facts.items() if k not in ("actor", "key_id")},
                )
                # Changes and failures go to the alert channel; a read that worked (the
                # sub-account list, an IP list) is audited only, or every status would post.
                quiet = call.method == "GET" and call.outcome == "ok"
                if context.team_id != SYSTEM_TEAM and not quiet:
                    schedule_jobs(
                        session,
                        [
                            governor_announce(
                                team_id=context.team_id,
                                call_id=new_id(),
                                facts={**facts, "at": at.isoformat()},
                                due_at=at,
                            )
                        ],
                    )
        except Exception:  # the call happened: a failed record must not hide its outcome
            log.exception("could not audit a governor call to %s", call.endpoint)
