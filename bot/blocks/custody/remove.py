"""`/apikey remove <label>`: confirm, then say what happened (and what Binance still needs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject

from bot.blocks.message import Message, section
from bot.blocks.text import escape, mention, name
from bot.ids import COMMAND, Action
from bot.model.keys import KeySummary

MAX_CONFIRM_NAME = 120  # the confirm dialog's text is limited to 300 characters

_BINANCE_STILL = (
    "This does *not* delete the key in Binance (there is no API for that): delete it yourself "
    "in Binance → API Management if nothing uses it any more."
)
# A key of a governed sub-account: the governor deletes it in Binance first.
_BINANCE_TOO = (
    "The bot deletes it in Binance first, through the sub-account's governor: any service "
    "still using it stops working."
)
_BINANCE_DELETED = "It was deleted in Binance too, through the sub-account's governor."


def remove_confirmation(key: KeySummary, *, governed: bool = False) -> Message:
    label = name(key.label)
    binance = _BINANCE_TOO if governed else _BINANCE_STILL
    text = (
        f"🗑️ Remove *{label}* (`{escape(key.masked)}`, account *{name(key.account_alias)}*, "
        f"owner {mention(key.owner_user_id)})?\n"
        "• Its stored secret is destroyed for good: the bot can no longer check or rotate it.\n"
        f"• {binance}"
    )
    confirm = ConfirmObject(
        title="Remove this key?",
        text=(
            f"The stored secret of *{name(key.label, MAX_CONFIRM_NAME)}* will be destroyed. "
            + (
                "The key is deleted in Binance too."
                if governed
                else "The key keeps working in Binance until you delete it there."
            )
        ),
        confirm="Remove",
        deny="Keep it",
        style="danger",
    )
    buttons = ActionsBlock(
        elements=[
            ButtonElement(
                text="Remove",
                action_id=Action.REMOVE_CONFIRM,
                value=key.key_id,
                style="danger",
                confirm=confirm,
            ),
            ButtonElement(text="Cancel", action_id=Action.REMOVE_CANCEL, value=key.key_id),
        ]
    )
    return Message(text=f"Remove {label}?", blocks=[section(text), buttons])


def removed_message(key: KeySummary, actor: str, *, deleted_in_binance: bool = False) -> Message:
    binance = _BINANCE_DELETED if deleted_in_binance else _BINANCE_STILL
    text = (
        f"🗑️ {mention(actor)} removed *{name(key.label)}* (`{escape(key.masked)}`). "
        f"Its stored secret was destroyed.\n{binance}"
    )
    return Message(text=f"Removed {name(key.label)}", blocks=[section(text)])


def remove_cancelled(label: str) -> Message:
    text = f"Cancelled: *{name(label)}* was not removed."
    return Message(text=text, blocks=[section(text)])


def funds_key_announcement(facts: Mapping[str, Any], what: str) -> Message:
    """A key that can move funds (Withdraw tier or transfer rights) was registered or removed:
    what the owner and the alert channel are told. ``facts`` are the job's, never a secret."""
    label = name(str(facts.get("label") or "?"))
    masked = escape(str(facts.get("masked") or "?"))
    powers = ", ".join(escape(str(p)) for p in facts.get("powers") or []) or "moving funds"
    tier = escape(str(facts.get("tier") or "?").title())
    who = mention(facts.get("actor"))
    account = name(str(facts.get("account") or "?"))
    owner = mention(facts.get("owner"))
    if what == "removed":
        head = f"🗑️ A key that can move funds was removed: *{label}* (`{masked}`)"
        tail = (
            f"Removed by {who}; its stored secret was destroyed. Binance still accepts it until "
            "it is deleted in Binance → API Management."
        )
    else:
        head = f"💸 A key that can move funds was registered: *{label}* (`{masked}`)"
        tail = (
            f"Registered by {who}. If this was not expected, report it with "
            f"`{COMMAND} compromised {label}`."
        )
    text = f"{head}, {tier} tier ({powers}), account *{account}*, owner {owner}.\n{tail}"
    return Message(text=text.replace("*", ""), blocks=[section(text)])
