"""Short notices: a secret pasted into a command, errors, "working on it"."""

from __future__ import annotations

from slack_sdk.models.views import View

from bot.blocks.message import Message, section, shown_view
from bot.blocks.text import name, safe_mrkdwn
from bot.ids import COMMAND
from bot.secret_shapes import SecretKind

COMPROMISED_COMMAND = f"{COMMAND} compromised"


def secret_in_text_warning(kind: SecretKind, matched_label: str | None) -> Message:
    """The command was refused: say the value is exposed and what to do about it."""
    lines = [
        f"🚨 *I did not run that command: it contains {kind.value}.*",
        "That value has now been sent to Slack, so treat it as leaked: rotate the key in "
        "Binance (create a new one, then delete the old one in API Management).",
    ]
    if matched_label:
        label = name(matched_label)
        lines.append(
            f"It matches the registered key *{label}*. Run `{COMPROMISED_COMMAND} {label}` "
            "to start the emergency playbook."
        )
    lines.append(
        f"To register a key, use `{COMMAND} register`: it opens a private form, and the secret "
        "is encrypted at rest and never shown again."
    )
    return Message(
        text=f"I did not run that command: it contains {kind.value}. Treat it as leaked.",
        blocks=[section("\n".join(lines))],
    )


def error_message(text: str) -> Message:
    body = f":warning: {safe_mrkdwn(text)}"
    return Message(text=body, blocks=[section(body)])


def working_message(text: str) -> Message:
    body = f"⏳ {safe_mrkdwn(text)}"
    return Message(text=body, blocks=[section(body)])


def refused_view(text: str) -> View:
    """A modal's answer when its submission is refused outright (nothing was stored)."""
    return shown_view("Not allowed", f":no_entry: {safe_mrkdwn(text)}\nNothing was changed.")
