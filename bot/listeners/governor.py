"""`/apikey governor`: an admin registers a master account's governor, or anyone sees the
governors with their sub-accounts (asked of Binance each time)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.blocks.custody.governor import governor_pair_sent, governors_message
from bot.blocks.notices import working_message
from bot.commands import Governor
from bot.listeners.background import in_background
from bot.listeners.governor_sync import sync_governed
from bot.listeners.key_pairs import send_pair_instructions
from bot.services.errors import DomainError
from bot.services.governor.registration import governors, start_governor_registration

if TYPE_CHECKING:
    from bot.listeners.commands import CommandRequest


def handle_governor(parsed: Governor, r: CommandRequest) -> None:
    if parsed.account is None:
        r.ack(**working_message("Asking Binance for the governed sub-accounts…").as_kwargs())
        in_background(r.services, r.respond, lambda: _list(r))
        return
    try:
        pending = start_governor_registration(
            engine=r.services.engine,
            ring=r.services.ring,
            settings=r.services.settings,
            actor=r.actor(),
            account_alias=parsed.account,
            label=parsed.label,
            channel=r.channel,
            now=r.services.clock(),
        )
    except DomainError as exc:
        r.ack_error(exc)
        return
    r.ack(**governor_pair_sent(pending).as_kwargs())
    send_pair_instructions(r.client, pending)


def _list(r: CommandRequest) -> None:
    problems = sync_governed(r.services, r.team_id, r.user_id)
    message = governors_message(governors(r.services.engine, r.team_id), problems=problems)
    r.respond(**message.as_kwargs(), replace_original=True)
