"""The audit trail as a message (pure)."""

from __future__ import annotations

import re

from slack_sdk.models.blocks import Block

from bot.blocks.audit_sentences import sentence_end
from bot.blocks.message import Message, context, section
from bot.blocks.text import escape, mention, minute, plural, truncate
from bot.blocks.words import person
from bot.model.audit import AuditEntry, ChainReport, Checkpoint, Witness, WitnessState
from bot.vocabulary import AuditAction

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
    lines = [truncate(event_line(event), 400) for event in events[:MAX_LINES]]
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
ACTION_WORDS: dict[str, str] = {
    AuditAction.ACCESS_DENIED: "was refused",
    AuditAction.APPROVAL_APPLIED: "carried out an approved change",
    AuditAction.APPROVAL_APPROVE: "approved a change",
    AuditAction.APPROVAL_CHANGED: "refused an approved change (Binance's answer changed)",
    AuditAction.APPROVAL_DENY: "denied a change",
    AuditAction.APPROVAL_EXPIRE: "let an unapproved change expire",
    AuditAction.APPROVAL_REFUSED: "refused an approval",
    AuditAction.APPROVAL_REQUEST: "asked for approval of a change",
    AuditAction.APPROVAL_WITHDRAW: "withdrew a change waiting for approval",
    AuditAction.ACTIVITY_REVIEW: "reviewed the accounts' withdrawals",
    AuditAction.AUDIT_CHECKPOINT: "posted an audit checkpoint",
    AuditAction.AUDIT_KEY_CREATED: "created the audit chain's key",
    AuditAction.COMMAND_SECRET_REFUSED: "refused a secret pasted in a command",
    AuditAction.CREDENTIALS_DELIVERED: "delivered the credentials",
    AuditAction.CREDENTIALS_DELIVERY_FAILED: "could not deliver the credentials",
    AuditAction.CREDENTIALS_DELIVERY_REFUSED: "could not deliver: another key holds that destination",
    AuditAction.CREDENTIALS_SINK_CHOSEN: "chose where the credentials are delivered",
    AuditAction.DRIFT_CHECK: "ran the daily permission check",
    AuditAction.INCIDENT_ACTIVITY_REVIEW: "reviewed the account's activity",
    AuditAction.INCIDENT_CLOSE: "closed the incident",
    AuditAction.INCIDENT_COMMANDER: "handed over the incident command",
    AuditAction.INCIDENT_CONTAINED: "contained the key through Binance's API",
    AuditAction.INCIDENT_CONTAINMENT_FAILED: "could not contain the key through Binance's API",
    AuditAction.GOVERNOR_CALL: "called Binance's sub-account key management",
    AuditAction.GOVERNOR_MINT_UNKNOWN: "lost Binance's answer to a key creation",
    AuditAction.KEY_CREATE: "created a key in Binance",
    AuditAction.INCIDENT_FALSE_ALARM: "closed the incident as a false alarm; the key is back in use",
    AuditAction.INCIDENT_FALSE_ALARM_REFUSED: "asked to close as a false alarm; refused (key changed)",
    AuditAction.INCIDENT_KEY_ACCEPTED_AGAIN: "found Binance accepting the compromised key again",
    AuditAction.INCIDENT_KEY_DEAD: "confirmed Binance rejects the compromised key",
    AuditAction.INCIDENT_KEY_REJECTED: "found Binance rejecting the compromised key from its address",
    AuditAction.INCIDENT_RAISE: "reported the key compromised",
    AuditAction.INCIDENT_TICK: "ticked a checklist step",
    AuditAction.KEY_ANNOUNCE: "announced a key that can move funds",
    AuditAction.KEY_EDIT: "changed the key's owner, purpose or account",
    AuditAction.KEY_REGISTER: "registered",
    AuditAction.KEY_REMOVE: "removed",
    AuditAction.KEY_ROTATE_COMPLETE: "completed the rotation",
    AuditAction.KEY_ROTATE_FAILED: "could not rotate the key through the governor; retrying",
    AuditAction.KEY_ROTATE_OLD_KEY_ALIVE: "found the old key still working after the rotation",
    AuditAction.KEY_ROTATE_OLD_KEY_DELETED: "deleted the rotated-out key through the governor",
    AuditAction.KEY_ROTATE_OVERLAP_ENDED: "ended the overlap: the service uses the new key",
    AuditAction.KEY_ROTATE_START: "started a rotation",
    AuditAction.KEY_ROTATE_WAITING_FOR_DELIVERY: "is waiting for the new credentials to be delivered",
    AuditAction.KEY_STATUS: "checked the permissions",
    AuditAction.KEYPAIR_EXPIRED: "destroyed an unfinished key pair",
    AuditAction.KEYPAIR_GENERATE: "generated a key pair",
    AuditAction.LEAK_DETECTED: "found a registered key pasted in a channel",
    AuditAction.MASTER_KEY_REENCRYPT_BATCH: "re-sealed secrets under a new master key",
    AuditAction.MASTER_KEY_RETIRE: "retired a master key",
    AuditAction.PAGE_REFUSED: "had a page refused",
    AuditAction.PAGE_RESOLVED: "resolved a page",
    AuditAction.PAGE_SENT: "paged",
    AuditAction.ROTATION_POLICY: "set the rotation period",
    AuditAction.ROTATION_REMINDER: "sent a rotation reminder",
    AuditAction.ROTATION_SNOOZE: "snoozed the rotation reminders",
}


def action_words(action: str) -> str:
    return ACTION_WORDS.get(action, action.replace(".", " ").replace("_", " "))


def _target(target: str) -> str:
    """A label is shown as typed (escaped: it never pings); "keys of <@U…>" as a mention."""
    keys_of = KEYS_OF.fullmatch(target)
    return f"keys of {mention(keys_of.group(1))}" if keys_of else f"“{escape(target)}”"


def event_line(event: AuditEntry) -> str:
    """One event as a sentence: `when` “key” · who did what: the details."""
    target = f"{_target(event.target)} · " if event.target else ""
    end = sentence_end(event.action, event.detail)
    joint = " " if end.startswith("(") else ": "  # "(incident …)" alone needs no colon
    text = f"{person(event.actor)} *{escape(action_words(event.action))}*" + (
        f"{joint}{end}" if end else ""
    )
    return f"`{minute(event.at)}` {target}{text}" + ("" if text.endswith((".", "?", "!")) else ".")


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
