"""The audit trail as a message (pure)."""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.models.blocks import Block

from bot.blocks.message import Message, context, section
from bot.blocks.text import escape, mention, minute, plural, truncate
from bot.model.audit import AuditEntry, ChainReport

MAX_LINES = 100


def audit_trail(events: list[AuditEntry], *, label: str | None, days: int) -> Message:
    scope = f"“{escape(label)}”" if label else "all keys"
    period = plural(days, "day")
    head = (
        f"*Audit trail* · {scope} · last {period} · {plural(len(events), 'event')} (newest first)"
    )
    if not events:
        return Message(
            text=f"No audit events for {scope} in the last {period}.", blocks=[section(head)]
        )
    lines = []
    for event in events[:MAX_LINES]:
        detail = _detail(event.detail)
        target = f" · {_target(event.target)}" if event.target else ""
        lines.append(
            truncate(
                f"`{minute(event.at)}` {mention(event.actor) if event.actor.startswith(('U', 'W')) else escape(event.actor)}"
                f" · *{escape(event.action)}*{target}" + (f" · {escape(detail)}" if detail else ""),
                400,
            )
        )
    chunks, current = [], ""
    for line in lines:
        if current and len(current) + len(line) + 1 > 2900:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    chunks.append(current)
    sections = [section(head), *(section(c) for c in chunks)]
    blocks: list[Block] = list(sections[:49])
    if len(events) > MAX_LINES:
        blocks.append(context(f"Showing the newest {MAX_LINES}; narrow it with a label or --days."))
    return Message(text=f"Audit trail: {plural(len(events), 'event')}", blocks=blocks)


# The audit target a status of someone's keys records ("keys of <@U123>"): shown as a mention.
KEYS_OF = re.compile(r"keys of <@([UW][A-Z0-9]{2,20})>")


def _target(target: str) -> str:
    """A label is shown as typed (escaped: it never pings); "keys of <@U…>" as a mention."""
    keys_of = KEYS_OF.fullmatch(target)
    return f"keys of {mention(keys_of.group(1))}" if keys_of else escape(target)


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for key, value in sorted(detail.items()):
        parts.append(f"tried to {value}" if key == "attempted" else f"{key}={value}")
    return ", ".join(parts)


def chain_report(report: ChainReport) -> Message:
    if report.ok:
        text = f"✅ The audit trail's hash chain is intact ({report.events} events checked)."
    else:
        text = (
            f"🚨 The audit trail was tampered with: event #{report.broken_at} does not fit the "
            f"chain ({report.reason}). {report.events} events before it are intact."
        )
    return Message(text=text, blocks=[section(text)])
