"""The audit trail as a message (pure)."""

from __future__ import annotations

from bot.blocks.message import Message, context, section
from bot.blocks.text import escape, mention, minute, truncate
from storage.audit import ChainReport
from storage.models import AuditEvent

MAX_LINES = 100


def audit_trail(events: list[AuditEvent], *, label: str | None, days: int) -> Message:
    scope = f"“{escape(label)}”" if label else "all keys"
    head = f"*Audit trail* · {scope} · last {days} days · {len(events)} events (newest first)"
    if not events:
        return Message(
            text=f"No audit events for {scope} in the last {days} days.", blocks=[section(head)]
        )
    lines = []
    for event in events[:MAX_LINES]:
        detail = ", ".join(f"{k}={v}" for k, v in sorted(event.detail.items()))
        target = f" · {escape(event.target)}" if event.target else ""
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
    blocks = [section(head), *(section(c) for c in chunks)][:49]
    if len(events) > MAX_LINES:
        blocks.append(context(f"Showing the newest {MAX_LINES}; narrow it with a label or --days."))
    return Message(text=f"Audit trail: {len(events)} events", blocks=blocks)


def chain_report(report: ChainReport) -> Message:
    if report.ok:
        text = f"✅ The audit trail's hash chain is intact ({report.events} events checked)."
    else:
        text = (
            f"🚨 The audit trail was tampered with: event #{report.broken_at} does not fit the "
            f"chain ({report.reason}). {report.events} events before it are intact."
        )
    return Message(text=text, blocks=[section(text)])
