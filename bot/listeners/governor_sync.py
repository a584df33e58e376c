"""Learning the governed sub-accounts from Binance, from a listener (after the ack)."""

from __future__ import annotations

from slack_sdk import WebClient

from bot.blocks.custody.governor import governors_message
from bot.services.context import Services
from bot.services.governor.registration import governors
from bot.services.governor.sub_accounts import sync_sub_accounts
from bot.slack.messaging import send_private


def sync_governed(services: Services, team_id: str, actor: str) -> list[str]:
    results = sync_sub_accounts(
        engine=services.engine,
        ring=services.ring,
        governor=services.governor_gateway,
        team_id=team_id,
        actor=actor,
    )
    return [f"{r.master_alias}: {r.error}" for r in results if r.error]


def after_governor_registered(
    services: Services, client: WebClient, *, team_id: str, user_id: str
) -> None:
    """A governor was just registered: learn its sub-accounts and show them to the admin."""

    def work() -> None:
        problems = sync_governed(services, team_id, user_id)
        message = governors_message(governors(services.engine, team_id), problems=problems)
        send_private(client, channel=None, user_id=user_id, message=message)

    services.background.submit(work)
