"""`/apikey help`: every subcommand with an example."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.blocks.message import Message, context, section
from bot.blocks.text import safe_mrkdwn
from bot.ids import COMMAND

_SUBCOMMANDS = (
    ("help", "show this help", "help"),
    (
        "register",
        "open a private form for a new key; the bot asks Binance what it can do before storing it",
        "register",
    ),
    (
        "status [label | @user | mine | all]",
        "ask Binance what keys can really do, and flag more than they need",
        "status trading-bot",
    ),
    ("list", "the registered keys with their last known tier (no Binance call)", "list"),
    (
        "edit <label> owner @user | purpose read_only | trading | withdrawals | account <alias>",
        "admins: give a key a new owner, declared purpose or Binance account",
        "edit trading-bot owner @alice",
    ),
    (
        "remove <label>",
        "destroy a key's stored secret (delete the key itself in Binance)",
        "remove old-dashboard",
    ),
    (
        "rotate <label> [every <days>d]",
        "rotate a key now, or set how often it must be rotated",
        "rotate trading-bot every 90d",
    ),
    ("rotation", "when each key is due for rotation", "rotation"),
    (
        "deliver <label> [to file | aws | nowhere]",
        "where a key's credentials are written for the service that uses it",
        "deliver trading-bot to aws",
    ),
    (
        "compromised <label> [since <date> | <N>d]",
        "a key leaked: mark it compromised and run the emergency checklist in the channel; "
        "the account's activity is reviewed from `since` (default: the last 7 days)",
        "compromised trading-bot since 14d",
    ),
    ("incidents", "open and recent incidents with their progress", "incidents"),
    (
        "audit [label] [--days N] | audit verify | audit checkpoint",
        "admins: who did what, when; check the trail's MAC chain against the checkpoints in "
        "the alert channel; or post a checkpoint now",
        "audit trading-bot --days 7",
    ),
    (
        "governor [<account> [label]]",
        "admins: give a master account a governor key, so the bot creates, rotates and "
        "deletes its sub-accounts' keys itself; without an account, the governors",
        "governor main-account",
    ),
    (
        "approvals",
        "changes waiting for a second person's approval (a key that can move funds or do "
        "more than its purpose, a new owner…), with who asked and until when",
        "approvals",
    ),
)


def _line(usage: str, what: str, example: str) -> str:
    shown = usage.replace("<", "&lt;").replace(">", "&gt;")
    line = f"• `{COMMAND} {shown}`: {what}."
    if example != usage:
        line += f" _e.g._ `{COMMAND} {example}`"
    return line


def help_message(reason: str | None = None, *, show_all: bool = True) -> Message:
    """Every subcommand (under ``reason`` if given); with ``show_all=False`` only the reason
    and where to find the rest."""
    lines = [_line(usage, what, example) for usage, what, example in _SUBCOMMANDS]
    blocks: list[Block] = []
    if reason:
        blocks.append(section(f"🤔 {safe_mrkdwn(reason)}"))
        if not show_all:
            blocks.append(context(f"Every subcommand, with examples: `{COMMAND} help`"))
            return Message(text=safe_mrkdwn(reason), blocks=blocks)
    blocks += [
        section(
            f"*`{COMMAND}` keeps the team's Binance API keys least-privileged.*\n"
            + "\n".join(lines)
        ),
        context(
            "Never paste a key or secret into a command: "
            f"`{COMMAND} register` takes them in a private form, encrypted at rest."
        ),
    ]
    text = safe_mrkdwn(reason) if reason else f"How to use {COMMAND}"
    return Message(text=text, blocks=blocks)
