"""The daily activity review's digest (pure): one message, a short line per withdrawal, easy
to read on a phone (a list, no wide table)."""

from __future__ import annotations

from decimal import Decimal

from slack_sdk.models.blocks import Block

from bot.blocks.message import Message, context, fit_lines, section
from bot.blocks.text import MAX_MESSAGE_BLOCKS, MAX_MESSAGE_TEXT, escape, minute, plural
from bot.model.activity import ActivityDigest, NotableWithdrawal


def _amount(value: Decimal | None) -> str:
    if value is None:
        return "?"
    text = f"{value:,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _short(address: str) -> str:
    return address if len(address) <= 16 else f"{address[:8]}…{address[-6:]}"


def _line(w: NotableWithdrawal) -> str:
    why = []
    if w.new_address:
        why.append("new address")
    if w.large is not None:
        why.append(f"at or above {_amount(w.large)} {escape(w.coin)}")
    where = f"`{escape(_short(w.address))}`" if w.address else "an unknown address"
    network = f" ({escape(w.network)})" if w.network else ""
    when = minute(w.time) if w.time else "time unknown"
    return (
        f"🔴 *{escape(w.account_alias)}*: {_amount(w.amount)} {escape(w.coin)} to {where}"
        f"{network}\n      {'; '.join(why)} · {when} · {escape(w.status)}"
    )


def activity_digest(digest: ActivityDigest) -> Message:
    head = (
        f"🧾 Daily activity review: {plural(len(digest.notable), 'withdrawal')} to look at, "
        f"{plural(digest.accounts_checked, 'account')} checked"
    )
    lines = [_line(w) for w in digest.notable]
    sections, shown = fit_lines(
        lines, max_blocks=MAX_MESSAGE_BLOCKS - 4, max_chars=MAX_MESSAGE_TEXT - 3000
    )
    blocks: list[Block] = [section(f"*{head}*"), *sections]
    if shown < len(lines):
        blocks.append(context(f"…and {plural(len(lines) - shown, 'more withdrawal')}."))
    if digest.notable:
        blocks.append(
            context(
                "New address: not withdrawn to by the account in the 90 days up to this review. If "
                "you do not recognise a withdrawal, run `/apikey compromised <label>` for the key that could have made it."
            )
        )
    for alias, why in digest.could_not_check[:10]:
        blocks.append(
            context(
                f"⚪ Could not check *{escape(alias)}* (unknown, not fine): {escape(why)} "
                "It will be reviewed again with the next review."
            )
        )
    if len(digest.could_not_check) > 10:
        blocks.append(context(f"…and {len(digest.could_not_check) - 10} more not checked."))
    return Message(text=head, blocks=blocks)
