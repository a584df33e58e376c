"""The answer to `/apikey edit …`, and the note a key's new owner receives."""

from __future__ import annotations

from datetime import datetime

from bot.blocks.message import Message, context, section
from bot.blocks.text import day, mention, name, safe_mrkdwn, severity_icon
from bot.commands import EditField
from bot.ids import COMMAND
from bot.model.findings import PURPOSE_NAMES
from bot.model.key_edit import KeyEdited
from bot.model.keys import KeyPurpose


def _value(field: EditField, value: str | None) -> str:
    if field == EditField.OWNER or value is None:
        return mention(value)
    if field == EditField.PURPOSE:
        return PURPOSE_NAMES[KeyPurpose(value)]
    return f"“{name(value)}”"


def key_edited_message(edit: KeyEdited, now: datetime) -> Message:
    label = name(edit.label)
    what = {"owner": "owner", "purpose": "declared purpose", "account": "Binance account"}
    headline = (
        f"✅ The {what[edit.field.value]} of *{label}* is now {_value(edit.field, edit.after)} "
        f"(was {_value(edit.field, edit.before)})."
    )
    lines = [headline]
    if edit.field == EditField.OWNER:
        lines.append(
            f"Rotation reminders now go to {mention(edit.owner_user_id)}; the key is due for "
            f"rotation on {day(edit.rotation_due_at)}. I have told them."
        )
    elif edit.field == EditField.ACCOUNT and edit.new_account:
        lines.append("No key was on that account before: check the name is the one you meant.")
    if edit.checked_at is None:
        lines.append("Binance has not been asked about this key yet.")
    else:
        lines.append(f"Its findings now, from Binance's answer on {day(edit.checked_at)}:")
    lines += [f"{severity_icon(f.severity)} {safe_mrkdwn(f.text)}" for f in edit.findings]
    if edit.checked_at is not None and not edit.findings:
        lines.append("No least-privilege findings.")
    body = "\n".join(lines)
    return Message(
        text=headline,
        blocks=[section(body), context(f"`{COMMAND} status {label}` asks Binance again.")],
    )


def new_owner_note(edit: KeyEdited, actor_user_id: str) -> Message:
    """A direct message to a key's new owner."""
    label = name(edit.label)
    body = (
        f"👋 {mention(actor_user_id)} made you the owner of the Binance API key *{label}*. "
        f"Rotation reminders for it come to you now; it is due for rotation on "
        f"{day(edit.rotation_due_at)}. `{COMMAND} status {label}` shows what it can do."
    )
    return Message(text=f"You are now the owner of the key {edit.label}.", blocks=[section(body)])
