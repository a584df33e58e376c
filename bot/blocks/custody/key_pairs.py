"""A generated key pair: the public key with the steps in Binance, the small form for the API
key Binance shows, and what is said when a pair expires (pure)."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    HeaderBlock,
    InputBlock,
    PlainTextInputElement,
)
from slack_sdk.models.views import View

from bot.blocks.custody.register import beyond_purpose_confirmation
from bot.blocks.message import Message, context, section
from bot.blocks.text import mention, minute, name, truncate
from bot.ids import Action, Block, Callback
from bot.model.key_pairs import PendingPair
from bot.model.keys import BINANCE_API_MANAGEMENT, KeyPurpose

# Binance's API management boxes for each declared purpose: tick these and nothing else.
BOXES = {
    KeyPurpose.READ_ONLY: "*Enable Reading* only",
    KeyPurpose.TRADING: "*Enable Reading* and *Enable Spot & Margin Trading* only",
    KeyPurpose.WITHDRAWALS: "*Enable Reading* and *Enable Withdrawals* only (Binance asks for "
    "the IP restriction below first)",
    # Binance's sub-account API management endpoints are of security type TRADE
    # (developers.binance.com/docs/sub_account/api-management/Create-Sub-account-API-Key-V2).
    KeyPurpose.GOVERNOR: "*Enable Reading* and *Enable Spot & Margin Trading* only (Binance "
    "marks its sub-account key management TRADE); never withdrawals or transfers",
}


def _steps(pending: PendingPair) -> str:
    return "\n".join(
        [
            f"1. Open <{BINANCE_API_MANAGEMENT}|Binance API Management> "
            f"(account *{name(pending.account_alias)}*) and press *Create API*.",
            "2. Choose *Self-generated*, paste the public key below, and give it the label "
            f"*{name(pending.label)}*.",
            f"3. Tick {BOXES[pending.purpose]}. Leave every other permission off.",
            _ip_step(pending),
            "5. Copy the *API key* Binance shows and press *Enter the API key* here.",
        ]
    )


def _ip_step(pending: PendingPair) -> str:
    if pending.trusted_ips:
        addresses = ", ".join(f"`{ip}`" for ip in pending.trusted_ips)
        return (
            "4. Under IP access restrictions choose *Restrict access to trusted IPs only* and "
            f"add exactly the bot's own addresses: {addresses}. The bot refuses the key "
            "without them."
        )
    return (
        "4. Under IP access restrictions choose *Restrict access to trusted IPs only* and "
        "add the public IP address of the service that will use this key (without it "
        "Binance removes trading after 30 days and allows no withdrawals)."
    )


def _shared_with(pending: PendingPair, recipient: str) -> str | None:
    """Who else got these steps, when the owner and the person who asked are two people."""
    if pending.owner_user_id == pending.created_by:
        return None
    what = "rotation" if pending.rotate_key_id is not None else "registration"
    if recipient == pending.owner_user_id:
        return (
            f"{mention(pending.created_by)} started this {what} of your key and got these steps "
            "too: either of you can create the key in Binance and enter the API key."
        )
    return (
        f"The key is {mention(pending.owner_user_id)}'s: they got these steps too, so either of "
        "you can create the key in Binance and enter the API key."
    )


def pair_instructions(pending: PendingPair, recipient: str) -> Message:
    """Posted to the key's owner and to whoever asked for the pair: the only thing of it that
    leaves the bot."""
    expires = minute(pending.expires_at)
    shared = _shared_with(pending, recipient)
    title = f"Create the API key for “{pending.label}” in Binance"
    return Message(
        text=f"{title}: the bot generated an {pending.algorithm.shown} key pair",
        blocks=[
            HeaderBlock(text=truncate(f"🔑 {title}", 150)),
            section(
                f"The bot generated an *{pending.algorithm.shown}* key pair. Its private key is "
                "sealed inside the bot and is never shown to anyone: only this public key "
                "leaves it."
            ),
            section(_steps(pending)),
            section(f"```\n{pending.public_key_pem.strip()}\n```"),
            ActionsBlock(
                block_id="pair_actions",
                elements=[
                    ButtonElement(
                        text="Enter the API key",
                        action_id=Action.PAIR_ENTER_KEY,
                        value=pending.pending_id,
                        style="primary",
                    )
                ],
            ),
            *([context(shared)] if shared else []),
            context(
                f"Until {expires}; after that the key pair is destroyed and you register again."
            ),
        ],
    )


def _where_the_steps_went(pending: PendingPair) -> str:
    if pending.owner_user_id == pending.created_by:
        return "your messages from the bot"
    return (
        f"your messages from the bot and in those of {mention(pending.owner_user_id)}, "
        "the key's owner"
    )


def pair_generated_view(pending: PendingPair) -> View:
    """The register modal once the pair exists: where to go next."""
    return View(
        type="modal",
        title="Key pair generated",
        close="Close",
        blocks=[
            section(
                f"✅ The bot generated an {pending.algorithm.shown} key pair for "
                f"*{name(pending.label)}* and sealed its private key. Nothing is registered "
                "yet: the public key and the steps to create the API key in Binance are in "
                f"{_where_the_steps_went(pending)}, with an *Enter the API key* button."
            ),
            section(f"```\n{pending.public_key_pem.strip()}\n```"),
        ],
    )


def pair_complete_modal(pending: PendingPair) -> View:
    return View(
        type="modal",
        callback_id=Callback.PAIR_COMPLETE,
        private_metadata=pending.pending_id,
        title="Finish registering",
        submit="Check & save",
        close="Cancel",
        blocks=[
            section(
                f"The API key Binance showed for *{name(pending.label)}*. The bot signs a "
                "request with the sealed private key and stores the key only if Binance "
                "accepts it."
            ),
            InputBlock(
                block_id=Block.PAIR_API_KEY,
                label="API key",
                element=PlainTextInputElement(
                    action_id=Action.PAIR_API_KEY, max_length=200, placeholder="64 characters"
                ),
            ),
            beyond_purpose_confirmation(
                Block.PAIR_CONFIRM,
                Action.PAIR_CONFIRM,
                label="If the new key can do more than the old one"
                if pending.rotate_key_id is not None
                else "If the key can do more than its purpose needs",
            ),
        ],
    )


def pair_expired_message(pending: PendingPair) -> Message:
    text = (
        f"⌛ The key pair generated for *{name(pending.label)}* was not completed within 24 "
        "hours, so its private key was destroyed. If you created its API key in Binance "
        "meanwhile, delete that key there (nobody holds its private key any more), then "
        "register again."
    )
    return Message(text=text, blocks=[section(text)])
