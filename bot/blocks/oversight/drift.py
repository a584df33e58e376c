"""The drift monitor's digest (pure): one message per run, what changed first."""

from __future__ import annotations

from slack_sdk.models.blocks import Block

from bot.blocks.message import Message, context, fit_lines, section
from bot.blocks.text import (
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    escape,
    mention,
    plural,
    severity_icon,
)
from bot.model.drift import UNMANAGED_TEXT, Digest
from bot.model.findings import Severity

MAX_NOT_CHECKED_LABELS = 30


def drift_digest(digest: Digest) -> Message:
    head = (
        f"🔎 Daily key check: {plural(len(digest.changes), 'change')} since the last "
        f"observation, {plural(digest.checked, 'key')} checked"
    )
    lines = [
        f"{severity_icon(c.severity)} *{escape(c.label)}* ({mention(c.owner_user_id)}): "
        f"{escape(c.text)}"
        for c in digest.changes
    ]
    sections, shown = fit_lines(
        lines, max_blocks=MAX_MESSAGE_BLOCKS - 4, max_chars=MAX_MESSAGE_TEXT - 3000
    )
    blocks: list[Block] = [section(f"*{head}*"), *sections]
    if shown < len(lines):
        blocks.append(context(f"…and {plural(len(lines) - shown, 'more change')}."))
    if digest.could_not_check:
        names = ", ".join(
            escape(label) for label, _ in digest.could_not_check[:MAX_NOT_CHECKED_LABELS]
        )
        more = len(digest.could_not_check) - MAX_NOT_CHECKED_LABELS
        if more > 0:
            names += f" and {more} more"
        reason = escape(digest.could_not_check[0][1])
        blocks.append(
            context(f"Could not check (not a change; unknown, not fine): {names}. {reason}")
        )
    if digest.unmanaged:
        blocks.append(section(unmanaged_line(digest.unmanaged)))
    return Message(text=head, blocks=blocks)


def unmanaged_line(emails: list[str]) -> str:
    """Governed sub-accounts with no key the bot knows, as a finding."""
    shown = ", ".join(escape(e) for e in emails[:MAX_NOT_CHECKED_LABELS])
    more = len(emails) - MAX_NOT_CHECKED_LABELS
    if more > 0:
        shown += f" and {more} more"
    return f"{severity_icon(Severity.WARNING)} *Unmanaged sub-accounts* ({shown}): {UNMANAGED_TEXT}"
