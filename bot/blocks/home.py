"""The App Home tab: the viewer's keys at a glance, a short how-to, a register button."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    DividerBlock,
    HeaderBlock,
)
from slack_sdk.models.views import View

from bot.blocks.key_list import key_lines
from bot.blocks.message import context, section
from bot.blocks.text import MAX_MESSAGE_TEXT, MAX_VIEW_BLOCKS, mention, plural
from bot.ids import COMMAND, Action
from bot.services.keys import KeySummary

_HOW_TO = (
    "*How it works*\n"
    f"• `{COMMAND} register`: a private form; the bot asks Binance what the key can do before "
    "storing anything, and keeps the secret encrypted.\n"
    f"• `{COMMAND} status mine`: what Binance says your keys can do now, and what is more than "
    "they need.\n"
    f"• `{COMMAND} list`: every key of the team.\n"
    f"• `{COMMAND} remove <label>`: destroy a stored secret (then delete the key in Binance).\n"
    f"• `{COMMAND} help`: everything else."
).replace("<label>", "&lt;label&gt;")
_LEAST_PRIVILEGE = (
    "Least privilege: a dashboard needs Read, a trading bot Read + Trade; almost nothing "
    "needs Withdraw."
)


def _greeting(user_id: str, own: int, team: int) -> str:
    if team == 0:
        return f"Hi {mention(user_id)}: no keys are registered in this workspace yet."
    return f"Hi {mention(user_id)}: you own {own} of the team's {plural(team, 'registered key')}."


def home_view(
    *, user_id: str, own_keys: list[KeySummary], team_keys_count: int, now: datetime
) -> View:
    blocks: list[Block] = [
        HeaderBlock(text="Your Binance API keys"),
        section(_greeting(user_id, len(own_keys), team_keys_count)),
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Register a key", action_id=Action.REGISTER_OPEN, style="primary"
                )
            ]
        ),
    ]
    if own_keys:
        room = MAX_VIEW_BLOCKS - len(blocks) - 4  # divider, how-to, divider, context
        blocks += key_lines(own_keys, now, max_blocks=room, max_chars=MAX_MESSAGE_TEXT - 2000)
    else:
        blocks.append(section("You don't own any key yet. Register one with the button above."))
    blocks += [DividerBlock(), section(_HOW_TO), DividerBlock(), context(_LEAST_PRIVILEGE)]
    return View(type="home", blocks=blocks)
