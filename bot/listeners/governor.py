"""`/apikey governor`: an admin registers a master account's governor, or anyone sees them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.blocks.custody.governor import governor_pair_sent, governors_message
from bot.commands import Governor
from bot.listeners.key_pairs import send_pair_instructions
from bot.services.errors import DomainError
from bot.services.governor.registration import governors, start_governor_registration

if TYPE_CHECKING:
    from bot.listeners.commands import CommandRequest


def handle_governor(parsed: Governor, r: CommandRequest) -> None:
    if parsed.account is None:
        r.ack(**governors_message(governors(r.services.engine, r.team_id)).as_kwargs())
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
