"""The governors as `/apikey governor` shows them, and the answer to registering one (pure)."""

from __future__ import annotations

from bot.blocks.message import Message, context, section
from bot.blocks.text import day, mention, minute, name
from bot.ids import COMMAND
from bot.model.governor import GovernorSummary, LostMint
from bot.model.key_pairs import PendingPair


def governors_message(
    governors: list[GovernorSummary], *, problems: list[str] | None = None
) -> Message:
    trouble = [context("⚠️ Binance did not answer for " + "; ".join(problems))] if problems else []
    if not governors:
        return Message(
            text="No master account has a governor yet",
            blocks=[
                section(
                    "No master account has a governor yet. With one, the bot creates, rotates "
                    "and, when a key leaks, deletes its sub-accounts' keys itself through "
                    f"Binance's API. Admins: `{COMMAND} governor <master account>`."
                )
            ],
        )
    lines = []
    for governor in governors:
        subs = ", ".join(
            f"{name(s.alias)}" + (f" ({name(s.email)})" if s.email != s.alias else "")
            for s in governor.sub_accounts
        )
        lines.append(
            f"• *{name(governor.account_alias)}*: governor “{name(governor.label)}” "
            f"`{governor.masked}` since {day(governor.registered_at)}"
            + (f"\n   sub-accounts: {subs}" if subs else "\n   no sub-account key yet")
        )
    return Message(
        text=f"{len(governors)} master account(s) with a governor",
        blocks=[section("*Governors*\n" + "\n".join(lines)), *trouble],
    )


def governor_pair_sent(pending: PendingPair) -> Message:
    addresses = ", ".join(f"`{ip}`" for ip in pending.trusted_ips)
    return Message(
        text=f"Key pair generated for the governor of {pending.account_alias}",
        blocks=[
            section(
                f"🔑 The bot generated the Ed25519 key pair of *{name(pending.label)}*, the "
                f"governor of *{name(pending.account_alias)}*. The public key and the steps "
                "are in your messages from the bot, with an *Enter the API key* button."
            ),
            context(
                "In the master account: a self-generated key with *Enable Reading* and *Enable "
                f"Spot & Margin Trading* only, restricted to {addresses}. Nothing is "
                "registered until Binance confirms exactly that."
            ),
        ],
    )


# What each governor call does, as people read it (by HTTP method and path).
CALL_WORDS = {
    ("POST", "/sapi/v2/sub-account/subAccountApi"): "created a key",
    ("DELETE", "/sapi/v1/sub-account/subAccountApi"): "deleted the key",
    ("POST", "/sapi/v1/sub-account/subAccountApi/permission"): "changed the permissions of",
    ("POST", "/sapi/v2/sub-account/subAccountApi/ipRestriction"): "set the IP list of",
    ("GET", "/sapi/v1/sub-account/subAccountApi/ipRestriction"): "read the IP list of",
    ("DELETE", "/sapi/v1/sub-account/subAccountApi/ipRestriction/ipList"): "removed IPs from",
    ("GET", "/sapi/v1/sub-account/list"): "listed the sub-accounts",
    ("GET", "/sapi/v1/account/apiRestrictions"): "checked its own permissions",
}
WHY_WORDS = {
    "create": "to create a key",
    "rotate": "for a rotation",
    "contain": "to contain a key reported compromised",
    "quarantine": "to quarantine a key reported compromised",
    "restore": "after a false alarm",
    "successor": "for a successor key",
    "list": "to list the sub-accounts",
    "check": "to check itself",
}


def governor_call_message(facts: dict[str, object]) -> Message:
    """One governor call in the alert channel: who asked, what it did, to which key, and how
    it ended."""
    words = CALL_WORDS.get((str(facts.get("method")), str(facts.get("endpoint"))))
    what = words or f"called {facts.get('method')} {facts.get('endpoint')}"
    key = f" `{facts['key']}`" if facts.get("key") else ""
    if facts.get("key") and words == "created a key":
        what = "created the key"
    sub = f" of sub-account {name(str(facts['sub_account']))}" if facts.get("sub_account") else ""
    label = f" (“{name(str(facts['label']))}”)" if facts.get("label") else ""
    outcome = str(facts.get("outcome"))
    ok = outcome == "ok"
    mark = "🛡️" if ok else "⚠️"
    result = "" if ok else f": *{outcome}*"
    # "listed the sub-accounts to list the sub-accounts": the purpose says nothing more there
    why = "" if facts.get("why") == "list" else WHY_WORDS.get(str(facts.get("why")), "")
    actor = str(facts.get("actor") or "bot")
    asked = "" if actor == "bot" else f", asked by {mention(actor)}"
    line = (
        f"{mark} Governor `{facts.get('governor')}` {what}{key}{sub}{label}"
        f"{(' ' + why) if why else ''}{asked}{result}."
    )
    return Message(text=line, blocks=[section(line)])


def lost_mint_message(lost: LostMint, *, admins: tuple[str, ...]) -> Message:
    """The admins must look for a key the bot may have made but never stored."""
    who = " ".join(mention(a) for a in admins) or "Admins"
    if lost.masked:
        what = (
            f"Binance made it (`{lost.masked}`, named `{lost.api_name}`), but the bot could not "
            "store it nor delete it again"
        )
    else:
        what = (
            f"never got the answer. If Binance made it, it is an API key named "
            f"`{lost.api_name}` there"
        )
    line = (
        f"⚠️ {who}: the bot asked Binance at {minute(lost.started_at)} to create "
        f"“{name(lost.label)}” in sub-account {name(lost.sub_account_email)} and {what}: a "
        "key nobody holds. Delete it in Binance API Management. Nothing of it was kept."
    )
    return Message(text=line, blocks=[section(line)])
