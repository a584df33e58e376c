"""Registering a key: the modal, its progress / outcome views, and the private summary."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from slack_sdk.models.blocks import Block as SlackBlock  # bot.ids.Block is a block id
from slack_sdk.models.blocks import (
    CheckboxesElement,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from bot.blocks.message import Message, context, fit_lines, section, shown_view
from bot.blocks.text import (
    MAX_FIELD_TEXT,
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    ago,
    day,
    escape,
    ip_whitelist_answer,
    key_type_name,
    mention,
    name,
    new_permissions_note,
    permission_marks,
    plural,
    safe_mrkdwn,
    severity_icon,
    tier_name,
    truncate,
)
from bot.commands import MAX_LABEL_LENGTH
from bot.ids import COMMAND, Action, Block, Callback
from bot.model.findings import PURPOSE_NAMES, worst
from bot.model.governor import CREATE_EXTRAS, CREATE_IN_BINANCE
from bot.model.key_pairs import KeyAlgorithm
from bot.model.keys import MAX_ALIAS_LENGTH, KeyPurpose, KeyType, RegisteredKey

MAX_HINT = 2000
MAX_API_KEY_INPUT = 200  # a Binance API key is 64 characters; leave room for stray spaces
MAX_SECRET_INPUT = 3000  # Slack's maximum; an RSA-4096 PEM private key is about 3,300 bytes

PURPOSE_NEEDS = {
    KeyPurpose.READ_ONLY: "Dashboards, reports, accounting: needs Read only",
    KeyPurpose.TRADING: "Places orders: needs Read + Trade, never Withdraw",
    KeyPurpose.WITHDRAWALS: "Moves funds off Binance: needs Withdraw (rarely justified)",
}
# The ways in, safest first: a pair the bot generates (nothing secret is typed anywhere), then
# pasting. Binance recommends Ed25519 and calls HMAC keys not recommended
# (https://developers.binance.com/docs/binance-spot-api-docs/faqs/api_key_types).
KEY_SOURCES = (
    (KeyAlgorithm.ED25519.value, "Ed25519 · the bot generates the key pair (recommended)"),
    (KeyAlgorithm.RSA_2048.value, "RSA 2048 · the bot generates the key pair"),
    (KeyAlgorithm.RSA_4096.value, "RSA 4096 · the bot generates the key pair"),
    (KeyType.HMAC.value, "HMAC · paste API key and secret (passes through Slack)"),
    (KeyType.ED25519.value, "Ed25519 · paste your own private key"),
    (KeyType.RSA.value, "RSA · paste your own private key"),
)
CREATE_TEXT = "Ed25519 · the bot creates it in Binance (governed sub-accounts)"
KEY_MATERIAL_HINT = (
    "Only when pasting: HMAC: the secret key; Ed25519/RSA: your PEM private key. It passes "
    "through Slack, then is encrypted at rest and never shown again. Leave empty when the bot "
    "generates the key pair."
)


def _purpose_label(purpose: KeyPurpose) -> str:
    text = PURPOSE_NAMES[purpose]
    return text[:1].upper() + text[1:]


def _account_input(known_accounts: list[str]) -> InputBlock:
    if known_accounts:
        hint = truncate("Known accounts: " + ", ".join(known_accounts), MAX_HINT)
    else:
        hint = "A short name for the Binance account or sub-account, e.g. main."
    only = known_accounts[0] if len(known_accounts) == 1 else None
    return InputBlock(
        block_id=Block.ACCOUNT,
        label="Binance account",
        hint=hint,
        element=PlainTextInputElement(
            action_id=Action.ACCOUNT,
            max_length=MAX_ALIAS_LENGTH,
            initial_value=only if only and len(only) <= MAX_ALIAS_LENGTH else None,
            placeholder="e.g. main",
        ),
    )


DELIVERY_CHOICES = {
    "nowhere": "Nowhere: only the bot keeps them",
    "file": "A file for the service (one JSON file per key)",
    "aws": "AWS Secrets Manager (one secret per key)",
}


def _delivery_input(sinks: Sequence[str], default: str | None) -> InputBlock:
    """Where the credentials go, when the bot has secret sinks (README: Delivering
    credentials); the default is SINK_DEFAULT, else nowhere."""
    options = [
        Option(value=value, text=text)
        for value, text in DELIVERY_CHOICES.items()
        if value == "nowhere" or value in sinks
    ]
    initial = next((o for o in options if o.value == (default or "nowhere")), options[0])
    return InputBlock(
        block_id=Block.DELIVERY,
        label="Deliver the credentials to",
        hint="The bot writes the API key and its secret or private key there for the service "
        "that uses it, now and on every rotation.",
        element=StaticSelectElement(
            action_id=Action.DELIVERY, options=options, initial_option=initial
        ),
    )


def _create_inputs() -> list[InputBlock]:
    """For "Create it in Binance for me": the service's addresses and extra permissions."""
    return [
        InputBlock(
            block_id=Block.CREATE_IPS,
            label="IP addresses of the service (when the bot creates the key)",
            optional=True,
            hint="The public addresses the service that uses the key calls Binance from, "
            "separated by commas. The bot adds its own, so it can check the key.",
            element=PlainTextInputElement(
                action_id=Action.CREATE_IPS, max_length=500, placeholder="e.g. 203.0.113.7"
            ),
        ),
        InputBlock(
            block_id=Block.CREATE_EXTRAS,
            label="Beyond the purpose (when the bot creates the key)",
            optional=True,
            hint="Trading keys get spot & margin trading; tick only what the service needs "
            "beyond that.",
            element=CheckboxesElement(
                action_id=Action.CREATE_EXTRAS,
                options=[Option(value=k, text=v) for k, v in CREATE_EXTRAS.items()],
            ),
        ),
    ]


def register_modal(
    *,
    owner_user_id: str,
    known_accounts: list[str],
    private_metadata: str,
    sinks: Sequence[str] = (),
    default_sink: str | None = None,
    governed_accounts: Sequence[str] = (),
) -> View:
    """``governed_accounts``: sub-accounts with a governor; with any, the form offers "Create
    it in Binance for me" first."""
    purposes = [
        Option(value=p.value, text=_purpose_label(p), description=PURPOSE_NEEDS[p])
        for p in KeyPurpose
        if p in PURPOSE_NEEDS  # a governor is registered by `/apikey governor` (admins)
    ]
    key_types = [Option(value=value, text=text) for value, text in KEY_SOURCES]
    if governed_accounts:
        key_types.insert(0, Option(value=CREATE_IN_BINANCE, text=CREATE_TEXT))
        known_accounts = list(dict.fromkeys([*governed_accounts, *known_accounts]))
    return View(
        type="modal",
        callback_id=Callback.REGISTER,
        private_metadata=private_metadata,
        title="Register a key",
        submit="Check & save",
        close="Cancel",
        blocks=[
            context(
                "🔐 Before storing anything, the bot asks Binance what this key can do. "
                "If Binance refuses the key, nothing is stored."
            ),
            InputBlock(
                block_id=Block.LABEL,
                label="Label",
                hint=f"A short unique name, used in commands like {COMMAND} status <label>.",
                element=PlainTextInputElement(
                    action_id=Action.LABEL,
                    max_length=MAX_LABEL_LENGTH,
                    placeholder="e.g. trading-bot",
                ),
            ),
            _account_input(known_accounts),
            InputBlock(
                block_id=Block.OWNER,
                label="Owner",
                hint="Who answers for this key: reminders and alerts go to them.",
                element=UserSelectElement(action_id=Action.OWNER, initial_user=owner_user_id),
            ),
            InputBlock(
                block_id=Block.PURPOSE,
                label="What is the key for?",
                hint="The bot flags every permission beyond what this purpose needs.",
                element=RadioButtonsElement(action_id=Action.PURPOSE, options=purposes),
            ),
            InputBlock(
                block_id=Block.KEY_TYPE,
                label="Key type",
                hint="A generated pair: the private key is born inside the bot and is never "
                "typed, copied or sent through Slack. Binance recommends Ed25519.",
                element=StaticSelectElement(
                    action_id=Action.KEY_TYPE, options=key_types, initial_option=key_types[0]
                ),
            ),
            InputBlock(
                block_id=Block.API_KEY,
                label="API key",
                optional=True,
                hint="Only when pasting a key; leave empty when the bot generates the pair.",
                element=PlainTextInputElement(
                    action_id=Action.API_KEY, max_length=MAX_API_KEY_INPUT
                ),
            ),
            InputBlock(
                block_id=Block.SECRET,
                label="Secret key or private key",
                optional=True,
                hint=KEY_MATERIAL_HINT,
                element=PlainTextInputElement(
                    action_id=Action.SECRET, multiline=True, max_length=MAX_SECRET_INPUT
                ),
            ),
            *(_create_inputs() if governed_accounts else []),
            beyond_purpose_confirmation(Block.REGISTER_CONFIRM, Action.REGISTER_CONFIRM),
            *([_delivery_input(sinks, default_sink)] if sinks else []),
        ],
    )


def beyond_purpose_confirmation(
    block_id: str,
    action_id: str,
    *,
    label: str = "If the key can do more than its purpose needs",
) -> InputBlock:
    """The owner's tick accepting a key that can do more than its purpose needs (as the rotate
    form's box does for a key that can do more than the old one)."""
    return InputBlock(
        block_id=block_id,
        label=label,
        optional=True,
        hint="Binance is asked first: a key beyond its purpose is refused unless its owner ticks "
        "this.",
        element=CheckboxesElement(
            action_id=action_id,
            options=[
                Option(value="confirm", text="I am the owner and accept the extra permissions")
            ],
        ),
    )


def checking_view() -> View:
    return shown_view(
        "Checking the key",
        "⏳ Asking Binance what this key can do… This can take a few seconds.\n"
        "Nothing is stored unless Binance accepts the key. Please keep this window "
        "open: it shows the outcome as soon as Binance answers.",
    )


def registration_failed_view(message: str) -> View:
    return shown_view(
        "Key not saved",
        "❌ *Nothing was stored.*\n" + safe_mrkdwn(message),
        context("Fix the problem, then try again."),
    )


def registered_view(key: RegisteredKey) -> View:
    found = plural(len(key.findings), "finding")
    return View(
        type="modal",
        title="Key registered",
        close="Done",
        blocks=[
            section(
                f"✅ *{name(key.label)}* (`{escape(key.masked)}`) is registered. Binance reports "
                f"the *{tier_name(key.permissions.tier)}* tier"
                f"{new_permissions_note(key.permissions.new_flags_on)}; "
                f"{severity_icon(worst(key.findings))} {found}.\n"
                "A private message with every permission and finding is on its way."
            )
        ],
    )


def _summary_fields(key: RegisteredKey, now: datetime) -> list[MarkdownTextObject]:
    perms = key.permissions
    facts = [
        ("Account", name(key.account_alias)),
        ("Owner", mention(key.owner_user_id)),
        ("Purpose", PURPOSE_NAMES[key.purpose]),
        ("Key type", key_type_name(key.key_type)),
        (
            "Tier (as Binance reports it)",
            tier_name(perms.tier) + new_permissions_note(perms.new_flags_on),
        ),
        ("IP whitelist", ip_whitelist_answer(perms.to_dict())),
    ]
    if perms.created_at is not None:
        facts.append(
            ("Created in Binance", f"{day(perms.created_at)} ({ago(perms.created_at, now)})")
        )
    if perms.trading_expires_at is not None:
        facts.append(("Spot & margin trading expires", day(perms.trading_expires_at)))
    return [
        MarkdownTextObject(text=truncate(f"*{label}*\n{value}", MAX_FIELD_TEXT))
        for label, value in facts
    ]


def registration_summary(key: RegisteredKey, now: datetime) -> Message:
    """What Binance reports about the new key, every finding included. Never the secret."""
    findings = sorted(key.findings, key=lambda f: -f.severity)
    head = [
        section(f"✅ Registered *{name(key.label)}* `{escape(key.masked)}`"),
        SectionBlock(fields=_summary_fields(key, now)),
        section("*Permissions Binance reports*\n" + permission_marks(key.permissions.to_dict())),
    ]
    tail = context(
        "The secret is encrypted at rest and will never be shown. Check again any time with "
        f"`{COMMAND} status {name(key.label)}`."
    )
    if findings:
        lines = ["*Least-privilege findings (worst first)*"] + [
            f"{severity_icon(f.severity)} {safe_mrkdwn(f.text)}" for f in findings
        ]
    else:
        lines = ["🟢 No least-privilege findings."]
    budget = MAX_MESSAGE_TEXT - 2000  # the head and tail use far less than this
    body, shown = fit_lines(lines, max_blocks=MAX_MESSAGE_BLOCKS - 6, max_chars=budget)
    blocks: list[SlackBlock] = [*head, *body]
    if shown < len(lines):
        blocks.append(context(f"…and {plural(len(lines) - shown, 'more finding')} not shown."))
    blocks.append(tail)
    text = (
        f"Registered {name(key.label)} ({escape(key.masked)}): "
        f"{tier_name(key.permissions.tier)} tier, {plural(len(findings), 'finding')}"
    )
    return Message(text=text, blocks=blocks)
