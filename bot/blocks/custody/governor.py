"""The governors as `/apikey governor` shows them, and the answer to registering one (pure)."""

from __future__ import annotations

from bot.blocks.message import Message, context, section
from bot.blocks.text import day, name
from bot.ids import COMMAND
from bot.model.governor import GovernorSummary
from bot.model.key_pairs import PendingPair


def governors_message(governors: list[GovernorSummary]) -> Message:
    if not governors:
        return Message(
            text="No master account has a governor yet",
            blocks=[
                section(
                    "No master account has a governor yet. With one, the bot creates, rotates "
                    "and, when a key leaks, deletes its sub-accounts' keys itself through "
                    f"Binance's API. Admins: `{COMMAND} governor <master account>`."
                )
            ],
        )
    lines = []
    for governor in governors:
        subs = ", ".join(
            f"{name(s.alias)}" + (f" ({name(s.email)})" if s.email != s.alias else "")
            for s in governor.sub_accounts
        )
        lines.append(
            f"• *{name(governor.account_alias)}*: governor “{name(governor.label)}” "
            f"`{governor.masked}` since {day(governor.registered_at)}"
            + (f"\n   sub-accounts: {subs}" if subs else "\n   no sub-account key yet")
        )
    return Message(
        text=f"{len(governors)} master account(s) with a governor",
        blocks=[section("*Governors*\n" + "\n".join(lines))],
    )


def governor_pair_sent(pending: PendingPair) -> Message:
    addresses = ", ".join(f"`{ip}`" for ip in pending.trusted_ips)
    return Message(
        text=f"Key pair generated for the governor of {pending.account_alias}",
        blocks=[
            section(
                f"🔑 The bot generated the Ed25519 key pair of *{name(pending.label)}*, the "
                f"governor of *{name(pending.account_alias)}*. The public key and the steps "
                "are in your messages from the bot, with an *Enter the API key* button."
            ),
            context(
                "In the master account: a self-generated key with *Enable Reading* and *Enable "
                f"Spot & Margin Trading* only, restricted to {addresses}. Nothing is "
                "registered until Binance confirms exactly that."
            ),
        ],
    )
