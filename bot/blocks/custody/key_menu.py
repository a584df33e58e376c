"""The menu beside each key in a status report and on the App Home (pure).

One overflow menu per key instead of a row of buttons: Slack keeps the red "danger" style
for the one destructive action of a message, and a report of forty keys would otherwise
carry forty of them. The menu offers only what the viewer may do; the bot checks again when
an option is chosen (a menu can be forged like any request).

Reporting a key compromised cannot be confirmed inside an overflow menu (Slack allows one
``confirm`` for the whole menu), so that option is answered with a small message restating
the consequence, whose one button confirms it: ``report_confirmation``.
"""

from __future__ import annotations

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, Option, OverflowMenuElement

from bot.blocks.message import Message, section
from bot.blocks.response.incidents import compromised_button
from bot.blocks.text import mention, name
from bot.ids import Action, KeyMenuChoice

CHOICE_TEXT = {
    KeyMenuChoice.DETAILS: "Details",
    KeyMenuChoice.ROTATE: "Rotate",
    KeyMenuChoice.REPORT: "Report compromised",
    KeyMenuChoice.INCIDENT: "Show the incident",
    KeyMenuChoice.REMOVE: "Remove",
}
_RETIRED = ("compromised", "revoked")


def menu_value(choice: KeyMenuChoice, key_id: str) -> str:
    return f"{choice.value}:{key_id}"


def key_menu(
    key_id: str,
    *,
    status: str,
    may_manage: bool,
    details: bool = True,
    rotatable: bool = True,
    open_incident: bool = False,
) -> OverflowMenuElement | ButtonElement | None:
    """The overflow menu for one key; a plain button when only one thing is offered (Slack's
    overflow menu wants two options or more); None when nothing is.

    ``may_manage``: the viewer owns the key or is an admin (may rotate and remove it); anyone
    may report a key compromised. A compromised or revoked key is not rotated or reported
    again; one with an open incident offers the incident instead. ``rotatable``: False while a
    rotation is under way."""
    live = status not in _RETIRED and not open_incident
    choices = []
    if details:
        choices.append(KeyMenuChoice.DETAILS)
    if may_manage and live and rotatable:
        choices.append(KeyMenuChoice.ROTATE)
    if live:
        choices.append(KeyMenuChoice.REPORT)
    if open_incident:
        choices.append(KeyMenuChoice.INCIDENT)
    if may_manage:
        choices.append(KeyMenuChoice.REMOVE)
    if not choices:
        return None
    if len(choices) == 1:
        (only,) = choices
        return ButtonElement(
            text=CHOICE_TEXT[only], action_id=Action.KEY_MENU, value=menu_value(only, key_id)
        )
    return OverflowMenuElement(
        action_id=Action.KEY_MENU,
        options=[Option(text=CHOICE_TEXT[c], value=menu_value(c, key_id)) for c in choices],
    )


def report_confirmation(key_id: str, label: str, owner_user_id: str | None) -> Message:
    """ "Report compromised" chosen from a key's menu: what it does, and the one button (red:
    it is this message's one destructive action, and it asks once more) that does it."""
    text = (
        f"🚨 Report *{name(label)}* (owner {mention(owner_user_id)}) as compromised?\n"
        "The key is marked compromised at once and the emergency checklist is posted in the "
        "alert channel: delete the key in Binance, change the password, check the account's "
        "activity. Anyone may report a key: a leak never waits for permission."
    )
    return Message(
        text=f"Report {name(label)} as compromised?",
        blocks=[
            section(text),
            ActionsBlock(elements=[compromised_button(key_id)]),
        ],
    )
