"""`/apikey list`: the registered keys, one compact line each (last known facts, no Binance)."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import Block

from bot.blocks.message import Message, context, fit_lines, section
from bot.blocks.text import (
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    ago,
    last_known_tier,
    mention,
    name,
    plural,
)
from bot.ids import COMMAND
from bot.model.findings import PURPOSE_NAMES
from bot.model.keys import KeyStatus, KeySummary

_STATUS_NOTE = {
    KeyStatus.ROTATING: "🔁 rotating",
    KeyStatus.COMPROMISED: "🚨 *compromised*",
}


def key_line(key: KeySummary, now: datetime) -> str:
    """One key on one line: label, owner, purpose, last known tier, age, status, account."""
    tier = last_known_tier(
        key.last_tier, key.new_permissions_on, checked=key.checked_at is not None
    )
    parts = [
        f"*{name(key.label)}*",
        f"owner {mention(key.owner_user_id)}",
        PURPOSE_NAMES[key.purpose],
        tier,
        f"registered {ago(key.created_at, now)}",
        f"account *{name(key.account_alias)}*",
    ]
    if key.status != KeyStatus.ACTIVE:
        parts.insert(1, _STATUS_NOTE.get(key.status, f"_{key.status.value}_"))
    return "• " + " · ".join(parts)


def key_lines(
    keys: list[KeySummary], now: datetime, *, max_blocks: int, max_chars: int
) -> list[Block]:
    """Sections with as many key lines as fit, then "…and N more" when some did not."""
    blocks: list[Block] = []
    sections, shown = fit_lines(
        [key_line(k, now) for k in keys], max_blocks=max_blocks - 1, max_chars=max_chars
    )
    blocks += sections
    if shown < len(keys):
        blocks.append(
            context(
                f"…and {len(keys) - shown} more. `{COMMAND} status @person` or "
                f"`{COMMAND} status <label>` narrows it down."
            )
        )
    return blocks


def nothing_registered() -> str:
    return (
        f"📭 No keys are registered yet. Start with `{COMMAND} register`: it opens a private "
        "form, and the bot asks Binance what the key can do before storing anything."
    )


def key_list(keys: list[KeySummary], now: datetime) -> Message:
    if not keys:
        text = nothing_registered()
        return Message(text=text, blocks=[section(text)])
    heading = f"*{plural(len(keys), 'registered key')}* (last known facts, no Binance call)"
    blocks: list[Block] = [section(heading)]
    blocks += key_lines(
        keys, now, max_blocks=MAX_MESSAGE_BLOCKS - 2, max_chars=MAX_MESSAGE_TEXT - 1000
    )
    blocks.append(context(f"`{COMMAND} status` asks Binance what each key can do right now."))
    return Message(text=plural(len(keys), "registered key"), blocks=blocks)
