"""`/apikey deliver`: where a key's credentials are delivered, in words."""

from __future__ import annotations

from bot.blocks.message import Message, context, section
from bot.blocks.text import minute, safe_mrkdwn
from bot.ids import COMMAND
from bot.model.delivery import SINK_LABELS, DeliveryView


def delivery_line(view: DeliveryView) -> str:
    """One line: where the credentials go, and whether the newest version got there."""
    where = f"{view.sink_label} `{safe_mrkdwn(view.destination or '…')}`"
    if view.state == "delivered" and view.delivered_at is not None:
        return (
            f"📦 Delivered to {where}: version {view.version}, written {minute(view.delivered_at)}."
        )
    if view.failing and view.failing_since is not None:
        return (
            f"⚠️ Delivery to {where} failing since {minute(view.failing_since)}: "
            f"{safe_mrkdwn(view.last_error or 'no answer')}. Retrying; nothing is lost."
        )
    if view.planned_at is not None:
        return f"⏳ Delivery to {where} pending since {minute(view.planned_at)}."
    return f"⏳ Delivery to {view.sink_label} pending."


def delivery_message(label: str, view: DeliveryView | None, configured: tuple[str, ...]) -> Message:
    name = safe_mrkdwn(label)
    if view is None:
        text = f"The credentials of *{name}* are kept by the bot only, delivered nowhere."
    else:
        text = f"*{name}*: " + delivery_line(view)
    choices = " | ".join([*configured, "nowhere"])
    hint = (
        f"Change it with `{COMMAND} deliver {safe_mrkdwn(label)} to {choices}`."
        if configured
        else "No secret sink is configured on this bot (README: Delivering credentials)."
    )
    return Message(text=text, blocks=[section(text), context(hint)])


def sink_chosen_message(
    label: str, sink: str | None, destination: str | None, *, changed: bool
) -> Message:
    name = safe_mrkdwn(label)
    if sink is None:
        text = (
            f"The credentials of *{name}* are no longer delivered anywhere"
            if changed
            else f"The credentials of *{name}* were already delivered nowhere"
        ) + ". What was written before stays where it is: remove it there if needed."
        return Message(text=text, blocks=[section(text)])
    where = f"{SINK_LABELS.get(sink, sink)} `{safe_mrkdwn(destination or '…')}`"
    if not changed:
        text = f"*{name}* is already delivered to {where}."
    else:
        text = (
            f"📦 *{name}* will be delivered to {where}. Its current credentials are being "
            "written now, and again on every rotation."
        )
    return Message(
        text=text,
        blocks=[section(text), context(f"See how it went: `{COMMAND} deliver {name}`")],
    )
