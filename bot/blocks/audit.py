"""The audit trail as a message (pure)."""

from __future__ import annotations

import re
from typing import Any

from slack_sdk.models.blocks import Block

from bot.blocks.message import Message, context, section
from bot.blocks.text import escape, mention, minute, plural, truncate
from bot.model.audit import AuditEntry, ChainReport, Checkpoint, Witness, WitnessState

MAX_LINES = 100
MAX_PROBLEMS = 3  # checkpoints that disagree, shown one by one


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
                f" · *{escape(action_words(event.action))}*{target}"
                + (f" · {escape(detail)}" if detail else ""),
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


# What each audit action means, in words (the stored names stay as they are: exports and
# SIEMs read those). An action not listed is shown with its dots and underscores as spaces.
ACTION_WORDS = {
    "access.denied": "was refused",
    "activity.review": "reviewed the accounts' withdrawals",
    "audit.checkpoint": "posted an audit checkpoint",
    "audit.key_created": "created the audit chain's key",
    "command.secret_refused": "refused a secret pasted in a command",
    "credentials.delivered": "delivered the credentials",
    "credentials.delivery_failed": "could not deliver the credentials",
    "credentials.delivery_refused": "could not deliver: another key holds that destination",
    "credentials.sink_chosen": "chose where the credentials are delivered",
    "drift.check": "ran the daily permission check",
    "incident.activity_review": "reviewed the account's activity",
    "incident.close": "closed the incident",
    "incident.commander": "handed over the incident command",
    "incident.false_alarm": "closed the incident as a false alarm; the key is back in use",
    "incident.false_alarm_refused": "asked to close as a false alarm; refused (key changed)",
    "incident.key_accepted_again": "found Binance accepting the compromised key again",
    "incident.key_dead": "confirmed Binance rejects the compromised key",
    "incident.key_rejected": "found Binance rejecting the compromised key from its address",
    "incident.raise": "reported the key compromised",
    "incident.tick": "ticked a checklist step",
    "key.announce": "announced a key that can move funds",
    "key.register": "registered",
    "key.remove": "removed",
    "key.rotate_complete": "completed the rotation",
    "key.rotate_old_key_alive": "found the old key still working after the rotation",
    "key.rotate_start": "started a rotation",
    "key.rotate_waiting_for_delivery": "is waiting for the new credentials to be delivered",
    "key.status": "checked the permissions",
    "keypair.expired": "destroyed an unfinished key pair",
    "keypair.generate": "generated a key pair",
    "leak.detected": "found a registered key pasted in a channel",
    "master_key.reencrypt_batch": "re-sealed secrets under a new master key",
    "master_key.retire": "retired a master key",
    "page.refused": "had a page refused",
    "page.resolved": "resolved a page",
    "page.sent": "paged",
    "rotation.policy": "set the rotation period",
    "rotation.reminder": "sent a rotation reminder",
    "rotation.snooze": "snoozed the rotation reminders",
}
_LONG_ID = re.compile(r"^[0-9a-f]{32}$")


def action_words(action: str) -> str:
    return ACTION_WORDS.get(action, action.replace(".", " ").replace("_", " "))


def _short(value: object) -> str:
    """Internal 32-hex ids shortened to their first 8 characters (enough to tell them apart
    in a trail; the export keeps them whole)."""
    text = str(value)
    return text[:8] if _LONG_ID.match(text) else text


def _target(target: str) -> str:
    """A label is shown as typed (escaped: it never pings); "keys of <@U…>" as a mention."""
    keys_of = KEYS_OF.fullmatch(target)
    return f"keys of {mention(keys_of.group(1))}" if keys_of else escape(target)


def _detail(detail: dict[str, Any]) -> str:
    parts = []
    for key, value in sorted(detail.items()):
        words = key.replace("_", " ")
        parts.append(f"tried to {value}" if key == "attempted" else f"{words}: {_short(value)}")
    return ", ".join(parts)


def chain_report(report: ChainReport, witness: Witness) -> Message:
    """The verdict of ``audit verify``: the chain itself, then what the checkpoints show."""
    lines = []
    if report.broken_at is None:
        lines.append(
            f"✅ Every one of the {report.events:,} audit events is properly chained "
            "(each MAC fits its content and the event before it)."
        )
    else:
        lines.append(
            f"🚨 The audit trail was tampered with: event #{report.broken_at} does not fit the "
            f"chain ({escape(report.reason or 'unknown reason')}). The {report.verified:,} "
            f"events before it are intact; the table holds {report.events:,}."
        )
    problems = report.witness_problems
    lines += [f"🚨 {escape(problem)}." for problem in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"🚨 …and {plural(len(problems) - MAX_PROBLEMS, 'more checkpoint')} disagree.")
    lines.append(_witness_line(report, witness))
    alarms = [line for line in lines if line.startswith("🚨")]
    text = f"Audit trail TAMPERED: {alarms[0]}" if alarms else f"Audit trail intact: {lines[0]}"
    return Message(text=text, blocks=[section("\n".join(lines))])


def _witness_line(report: ChainReport, witness: Witness) -> str:
    if witness.state is WitnessState.NONE:
        return (
            "⚠️ No alert channel is set, so nothing outside the database witnesses the chain: "
            "deleting the newest events, or restoring an older copy of the database, would not "
            "show. Set `ALERT_CHANNEL` to get a daily checkpoint."
        )
    where = f"<#{witness.channel}>" if witness.channel else "the alert channel"
    if witness.state is WitnessState.UNREADABLE:
        return (
            f"⚠️ The checkpoints in {where} could not be read "
            f"({escape(witness.problem or 'error')}): only the database was checked. Is the bot "
            "in that channel, with the `channels:history` (or `groups:history`) scope?"
        )
    if not witness.checkpoints:
        return (
            f"⚠️ No checkpoint of this bot was found in {where} yet: only the database was "
            "checked. `/apikey audit checkpoint` posts one now."
        )
    newest = max(witness.checkpoints, key=lambda c: c.at)
    more = " (the channel's history is longer than the bot reads: older ones were skipped)"
    return (
        f"🔏 Compared with {plural(report.checkpoints_checked, 'checkpoint')} read back from "
        f"{where}; the newest, of {minute(newest.at)}, witnessed {newest.events:,} events"
        + (more if witness.incomplete else "")
        + "."
    )


def checkpoint_message(checkpoint: Checkpoint) -> Message:
    """The checkpoint as posted to the alert channel (its figures are also in the metadata)."""
    text = (
        f"🔏 Audit checkpoint: {checkpoint.events:,} events, head MAC `{checkpoint.head}`"
        + (f" (event #{checkpoint.head_id})" if checkpoint.head_id is not None else "")
        + f", taken {minute(checkpoint.at)}."
    )
    return Message(
        text=text,
        blocks=[
            section(text),
            context(
                "A witness kept outside the database: `/apikey audit verify` compares the audit "
                "trail with it, so deleted events or a rolled-back database show. Please keep "
                "this message."
            ),
        ],
    )


def checkpoint_posted(checkpoint: Checkpoint, channel: str) -> Message:
    text = (
        f"🔏 Checkpoint posted in <#{channel}>: {checkpoint.events:,} events, head MAC "
        f"`{checkpoint.head[:16]}…`."
    )
    return Message(text=text, blocks=[section(text)])
