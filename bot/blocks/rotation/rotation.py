"""Rotation screens: the overview, reminders, the rotate modal, announcements (pure)."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    CheckboxesElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks.custody.register import KEY_SOURCES
from bot.blocks.message import Message
from bot.blocks.text import escape, key_type_name, mention, plural
from bot.ids import Action, Block, Callback
from bot.model.rotation import Audience, RotationRow, RotationStarted, RotationState

MAX_OVERVIEW_LINES = 120
_STATE_ICON = {
    RotationState.OVERDUE: "🔴",
    RotationState.DUE_SOON: "🟠",
    RotationState.ROTATING: "🔁",
    RotationState.OK: "🟢",
}


def rotation_when(row: RotationRow, now: datetime) -> str:
    days = row.days_left(now)
    if row.state == RotationState.ROTATING:
        return "rotation in progress (waiting for Binance to reject the old key)"
    if days < 0:
        return f"*{-days} day{'s' if days != -1 else ''} overdue* (due {row.due_at:%Y-%m-%d})"
    if days == 0:
        return f"due *today* ({row.due_at:%Y-%m-%d})"
    return f"due in {days} day{'s' if days != 1 else ''} ({row.due_at:%Y-%m-%d})"


def rotation_overview(rows: list[RotationRow], now: datetime) -> Message:
    if not rows:
        return Message(
            text="No keys are registered yet.",
            blocks=[
                SectionBlock(text="No keys are registered yet. Start with `/apikey register`.")
            ],
        )
    overdue = sum(1 for r in rows if r.state == RotationState.OVERDUE)
    soon = sum(1 for r in rows if r.state == RotationState.DUE_SOON)
    summary = f"{plural(len(rows), 'key')}: {overdue} overdue, {soon} due soon"
    lines = [
        f"{_STATE_ICON[r.state]} *{escape(r.label)}* · {mention(r.owner_user_id)} · every "
        f"{r.period_days}d · last rotated {r.last_rotated_at:%Y-%m-%d} · {rotation_when(r, now)}"
        for r in rows[:MAX_OVERVIEW_LINES]
    ]
    blocks = [HeaderBlock(text="Key rotation"), SectionBlock(text=MarkdownTextObject(text=summary))]
    chunk: list[str] = []
    for line in lines:
        if sum(len(x) + 1 for x in chunk) + len(line) > 2900:
            blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
            chunk = []
        chunk.append(line)
    if chunk:
        blocks.append(SectionBlock(text=MarkdownTextObject(text="\n".join(chunk))))
    if len(rows) > MAX_OVERVIEW_LINES:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"…and {len(rows) - MAX_OVERVIEW_LINES} more.")]
            )
        )
    blocks.append(
        ContextBlock(
            elements=[
                MarkdownTextObject(
                    text="Change a period with `/apikey rotate &lt;label&gt; every 90d`; rotate with "
                    "`/apikey rotate &lt;label&gt;`."
                )
            ]
        )
    )
    return Message(text=summary, blocks=blocks[:50])


def policy_set_message(row: RotationRow, now: datetime) -> Message:
    text = (
        f"“{escape(row.label)}” will now be rotated every {plural(row.period_days, 'day')}: "
        f"{rotation_when(row, now)}."
    )
    return Message(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text=f"🔁 {text}"))])


def reminder_message(
    *,
    row: RotationRow,
    audience: Audience,
    now: datetime,
    late: bool,
    admins: tuple[str, ...],
    owner_gone: bool,
) -> Message:
    owner = mention(row.owner_user_id) if row.owner_user_id and not owner_gone else None
    who = []
    if audience == Audience.CHANNEL_ALL:
        who.append("<!channel>")
    if owner:
        who.append(owner)
    if audience in (Audience.CHANNEL_ADMINS, Audience.CHANNEL_ALL) or owner is None:
        who.extend(mention(a) for a in admins)
    headline = f"🔁 Rotation reminder: *{escape(row.label)}* is {rotation_when(row, now)}."
    lines = [headline]
    if owner is None:
        lines.append(
            "This key has no owner in the workspace any more"
            if owner_gone
            else "This key has no owner"
        )
        lines[-1] += ": an admin should rotate it or give it a new owner."
    if who:
        lines.append("For: " + " ".join(dict.fromkeys(who)))
    if late:
        lines.append("_Sent late: the bot was not running when this reminder was due._")
    actions = ActionsBlock(
        elements=[
            ButtonElement(
                text="Rotate now", action_id=Action.ROTATE_NOW, value=row.key_id, style="primary"
            ),
            ButtonElement(text="Snooze 1 day", action_id=Action.SNOOZE, value=row.key_id),
        ]
    )
    return Message(
        text=f"Rotation reminder: {escape(row.label)} is {rotation_when(row, now)}".replace(
            "*", ""
        ),
        blocks=[SectionBlock(text=MarkdownTextObject(text="\n".join(lines))), actions],
    )


def snoozed_message(row: RotationRow) -> Message:
    text = f"Snoozed: the reminders for “{escape(row.label)}” pause until {row.snoozed_until:%Y-%m-%d %H:%M} UTC."
    return Message(text=text, blocks=[SectionBlock(text=MarkdownTextObject(text="😴 " + text))])


def rotate_modal(*, label: str, key_type: str, private_metadata: str) -> View:
    # The ways in, as in the register form; generated pairs first and by default.
    types = [Option(value=value, text=text) for value, text in KEY_SOURCES]
    initial = types[0]
    return View(
        type="modal",
        callback_id=Callback.ROTATE,
        private_metadata=private_metadata,
        title=PlainTextObject(text="Rotate a key"),
        submit=PlainTextObject(text="Check & rotate"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"Rotating *{escape(label)}* (now {key_type_name(key_type)}). By default the bot "
                    "generates the new key pair and sends you its public key for Binance API "
                    "Management; or create a key there and paste it below. Then delete the old "
                    "key in Binance: the bot completes the rotation once Binance rejects it."
                )
            ),
            InputBlock(
                block_id=Block.KEY_TYPE,
                label="Key type",
                element=StaticSelectElement(
                    action_id=Action.KEY_TYPE, options=types, initial_option=initial
                ),
            ),
            InputBlock(
                block_id=Block.API_KEY,
                label="New API key",
                optional=True,
                hint="Only when pasting a key; leave empty when the bot generates the pair.",
                element=PlainTextInputElement(action_id=Action.API_KEY, max_length=200),
            ),
            InputBlock(
                block_id=Block.SECRET,
                label="New secret key or private key",
                optional=True,
                element=PlainTextInputElement(
                    action_id=Action.SECRET, multiline=True, max_length=3000
                ),
                hint="Only when pasting: it passes through Slack, then is encrypted at rest and "
                "never shown again.",
            ),
            InputBlock(
                block_id=Block.ROTATE_CONFIRM,
                label="If the new key can do more than the old one",
                optional=True,
                element=CheckboxesElement(
                    action_id=Action.ROTATE_CONFIRM,
                    options=[
                        Option(
                            value="confirm",
                            text="I am the owner and accept the extra permissions",
                        )
                    ],
                ),
            ),
            ContextBlock(
                elements=[
                    MarkdownTextObject(text="Nothing changes unless Binance accepts the new key.")
                ]
            ),
        ],
    )


def rotation_started_message(started: RotationStarted) -> Message:
    text = f"🔁 New key for *{escape(started.label)}* stored ({started.new_masked}). "
    if started.delivered_to:
        text += (
            f"Its credentials are being written to {escape(started.delivered_to)}; once the "
            f"service uses them, delete the old key {started.old_masked} in Binance API "
            "Management: the rotation completes when the new version is delivered and Binance "
            "rejects the old key."
        )
    else:
        text += (
            f"Now delete the old key {started.old_masked} in Binance API Management: the bot "
            "checks it and completes the rotation as soon as Binance rejects it."
        )
    text += (
        f" If it still works after {started.grace_until:%Y-%m-%d %H:%M} UTC, the channel is told."
    )
    return Message(
        text=text.replace("*", ""), blocks=[SectionBlock(text=MarkdownTextObject(text=text))]
    )


def rotation_started_view(started: RotationStarted) -> View:
    return View(
        type="modal",
        title=PlainTextObject(text="Rotation started"),
        close=PlainTextObject(text="Done"),
        blocks=rotation_started_message(started).blocks,
    )


def rotation_complete_message(
    *, label: str, old_masked: str, owner: str | None, delivered_to: str | None = None
) -> Message:
    delivered = f" The new credentials are in {escape(delivered_to)}." if delivered_to else ""
    text = (
        f"✅ Rotation of *{escape(label)}* complete: Binance now rejects the old key "
        f"{old_masked}. Its stored secret was destroyed.{delivered} "
        f"{mention(owner) if owner else ''}"
    ).strip()
    return Message(
        text=text.replace("*", ""), blocks=[SectionBlock(text=MarkdownTextObject(text=text))]
    )


def old_key_alive_message(
    *, label: str, old_masked: str, owner: str | None, since: datetime, admins: tuple[str, ...]
) -> Message:
    people = ([mention(owner)] if owner else []) + [mention(a) for a in admins]
    who = " ".join(dict.fromkeys(people))
    text = (
        f"⚠️ *{escape(label)}* was rotated on {since:%Y-%m-%d %H:%M} UTC but the OLD key "
        f"{old_masked} still works on Binance. It must be deleted in Binance API Management "
        f"(there is no API for it). {who}"
    ).strip()
    return Message(
        text=text.replace("*", ""), blocks=[SectionBlock(text=MarkdownTextObject(text=text))]
    )


def governed_rotation_started_message(
    started: RotationStarted, *, key_id: str, overlap_until: datetime
) -> Message:
    """A successor made by the governor: both keys work until ``overlap_until``; a button
    ends the overlap early."""
    text = (
        f"🔁 The bot made a new key for *{escape(started.label)}* through Binance's sub-account "
        f"API ({started.new_masked}), with the old key's permissions and IP list. "
    )
    if started.delivered_to:
        text += f"Its credentials are being written to {escape(started.delivered_to)}. "
    text += (
        f"Both keys work until {overlap_until:%Y-%m-%d %H:%M} UTC; then the bot deletes the "
        f"old key {started.old_masked} itself, checks that Binance rejects it and completes "
        "the rotation. Once the service uses the new key, you can end the overlap now."
    )
    button = ButtonElement(
        text="The service uses the new key",
        action_id=Action.ROTATION_NEW_KEY_IN_USE,
        value=key_id,
        style="primary",
    )
    return Message(
        text=text.replace("*", ""),
        blocks=[SectionBlock(text=MarkdownTextObject(text=text)), ActionsBlock(elements=[button])],
    )


def governed_rotation_working_message(label: str) -> Message:
    text = (
        f"⏳ Making a new key for *{escape(label)}* in Binance through the governor; the old "
        "key keeps working meanwhile."
    )
    return Message(
        text=text.replace("*", ""), blocks=[SectionBlock(text=MarkdownTextObject(text=text))]
    )


def governed_rotation_busy_message(label: str) -> Message:
    text = (
        f"🔁 *{escape(label)}* is being rotated already (by the bot, or someone else a moment "
        "ago): nothing more to do."
    )
    return Message(
        text=text.replace("*", ""), blocks=[SectionBlock(text=MarkdownTextObject(text=text))]
    )


def governed_rotation_failed_message(
    *, label: str, why: str, retry_at: datetime | None, step: str = "successor"
) -> Message:
    """A governed rotation step failed: the old key still works; the bot tries again."""
    what = "could not make the new key" if step == "successor" else "could not delete the old key"
    text = f"⚠️ The bot {what} for *{escape(label)}*: {escape(why)} The old key keeps working."
    if retry_at is not None:
        text += f" The bot tries again at {retry_at:%Y-%m-%d %H:%M} UTC."
    return Message(
        text=text.replace("*", ""), blocks=[SectionBlock(text=MarkdownTextObject(text=text))]
    )


def overlap_ending_message(label: str) -> Message:
    text = (
        f"🗑️ Deleting the old key of *{escape(label)}* through the governor now; the channel is "
        "told when Binance rejects it."
    )
    return Message(
        text=text.replace("*", ""), blocks=[SectionBlock(text=MarkdownTextObject(text=text))]
    )
