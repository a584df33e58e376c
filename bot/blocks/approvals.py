"""A change waiting for a second person: the request as approvers and the requester see it,
how it ended, the list of open requests, and the modal that says a registration is held."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import ActionsBlock, Block, ButtonElement, HeaderBlock
from slack_sdk.models.views import View

from bot.blocks.message import Message, context, section, shown_view
from bot.blocks.text import mention, minute, name, plural, safe_mrkdwn
from bot.ids import Action
from bot.model.approvals import CHANGE_WORDS, KIND_WORDS, ApprovalState, ApprovalView

MAX_LISTED = 20
ENDINGS = {
    ApprovalState.APPLIED: "✅ approved and carried out",
    ApprovalState.DENIED: "⛔ denied",
    ApprovalState.WITHDRAWN: "↩️ withdrawn by the requester",
    ApprovalState.EXPIRED: "⌛ expired: nobody decided in time",
    ApprovalState.CHANGED: "⚠️ not carried out: the key changed in Binance since the request",
}


def _what(view: ApprovalView) -> str:
    key = f"*{name(view.label)}*"
    if view.masked:
        key += f" (`{view.masked}`)"
    if view.account_alias:
        key += f" on *{name(view.account_alias)}*"
    return (
        f"{mention(view.requested_by)} asks to {CHANGE_WORDS.get(view.change, view.change)} {key}"
    )


def _facts(view: ApprovalView) -> list[str]:
    lines = [f"• {safe_mrkdwn(line)}" for line in view.at_stake]
    why = "; ".join(KIND_WORDS[k] for k in view.kinds)
    owner = f" · owner {mention(view.owner_user_id)}" if view.owner_user_id else ""
    return [
        f"*Why it needs approval:* {why}{owner}",
        "*What is at stake:*\n" + "\n".join(lines) if lines else "",
    ]


def _progress(view: ApprovalView) -> str:
    done = ", ".join(mention(u) for u in view.approved_by) or "nobody yet"
    return (
        f"Request `{view.request_id}` · expires {minute(view.expires_at)} · approvals "
        f"{len(view.approved_by)} of {view.quorum} ({done}) · never by the requester"
    )


def too_few_warning(view: ApprovalView) -> str:
    eligible = [a for a in view.approvers if a != view.requested_by]
    return (
        f"⚠️ Only {plural(len(eligible), 'person')} other than the requester may approve, and "
        f"{view.quorum} must: this request cannot be approved until more approvers are set "
        "(APPROVER_USER_IDS / APPROVER_USERGROUP_ID, or more admins; README: Approvals)."
    )


def approval_request_message(view: ApprovalView) -> Message:
    """For the alert channel and each approver: who asks what, what is at stake, until when,
    with Approve and Deny."""
    blocks: list[Block] = [
        HeaderBlock(text="🔐 Approval needed"),
        section(_what(view) + "."),
        *[section(t) for t in _facts(view) if t],
        context(_progress(view)),
    ]
    if view.approvers and view.too_few_approvers:
        blocks.append(section(too_few_warning(view)))
    blocks.append(
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Approve",
                    action_id=Action.APPROVAL_APPROVE,
                    value=view.request_id,
                    style="primary",
                ),
                ButtonElement(
                    text="Deny",
                    action_id=Action.APPROVAL_DENY,
                    value=view.request_id,
                    style="danger",
                ),
            ]
        )
    )
    return Message(
        text=f"🔐 Approval needed: {_what(view)}; expires {minute(view.expires_at)}.",
        blocks=blocks,
    )


def approval_waiting_message(view: ApprovalView) -> Message:
    """For the requester: the change waits, who may approve, and a Withdraw button."""
    approvers = ", ".join(mention(a) for a in view.approvers if a != view.requested_by)
    blocks: list[Block] = [
        section(
            f"⏳ Your request to {CHANGE_WORDS.get(view.change, view.change)} "
            f"*{name(view.label)}* waits for approval"
            + (f" by {approvers}" if approvers else "")
            + f". Nothing changes until then; it expires {minute(view.expires_at)}."
        ),
        *[section(t) for t in _facts(view) if t],
        context(_progress(view)),
    ]
    if view.approvers and view.too_few_approvers:
        blocks.append(section(too_few_warning(view)))
    blocks.append(
        ActionsBlock(
            elements=[
                ButtonElement(
                    text="Withdraw the request",
                    action_id=Action.APPROVAL_WITHDRAW,
                    value=view.request_id,
                )
            ]
        )
    )
    return Message(
        text=f"⏳ Your request for {name(view.label)} waits for approval.", blocks=blocks
    )


def approval_outcome_message(view: ApprovalView) -> Message:
    ending = ENDINGS.get(view.state, view.state.value)
    text = (
        f"Request `{view.request_id}` to {CHANGE_WORDS.get(view.change, view.change)} "
        f"*{name(view.label)}* (asked by {mention(view.requested_by)}): {ending}."
    )
    if view.outcome:
        text += f"\n{safe_mrkdwn(view.outcome)}"
    if view.state != ApprovalState.APPLIED:
        text += "\nThe held key material was destroyed; nothing was stored."
    return Message(text=text, blocks=[section(text)])


def decision_message(note: str, view: ApprovalView) -> Message:
    """The answer to the person who pressed Approve, Deny or Withdraw."""
    text = f"{safe_mrkdwn(note)}\n{_progress(view)}"
    return Message(text=text, blocks=[section(text)])


def approvals_list(views: list[ApprovalView], now: datetime) -> Message:
    if not views:
        text = "No change is waiting for approval."
        return Message(text=text, blocks=[section(text)])
    blocks: list[Block] = [section(f"*{plural(len(views), 'change')} waiting for approval*")]
    for view in views[:MAX_LISTED]:
        blocks.append(section(f"{_what(view)}.\n" + "\n".join(t for t in _facts(view) if t)))
        blocks.append(context(_progress(view)))
    if len(views) > MAX_LISTED:
        blocks.append(context(f"… and {len(views) - MAX_LISTED} more."))
    return Message(text=f"{plural(len(views), 'change')} waiting for approval", blocks=blocks)


def held_message(text: str) -> Message:
    """The answer to a command whose change now waits for approval (the service's words)."""
    return Message(text=text, blocks=[section(safe_mrkdwn(text))])


def held_view(view: ApprovalView) -> View:
    """The register (or pair) modal's answer when the key waits for approval."""
    return shown_view(
        "Waiting for approval",
        f"⏳ *{name(view.label)}* waits for approval: "
        + "; ".join(KIND_WORDS[k] for k in view.kinds)
        + f". Nothing is stored until {view.quorum} other "
        + ("person approves" if view.quorum == 1 else "people approve")
        + f"; the request expires {minute(view.expires_at)}. The approvers were told, and a "
        "direct message lets you withdraw it.",
        close="Done",
    )


def home_waiting_section(views: list[ApprovalView]) -> list[Block]:
    """App Home: the requests waiting for this admin's decision, with the buttons."""
    if not views:
        return []
    blocks: list[Block] = [section(f"*🔐 {plural(len(views), 'change')} waiting for you*")]
    for view in views[:5]:
        blocks += approval_request_message(view).blocks[1:]
    if len(views) > 5:
        blocks.append(context(f"… and {len(views) - 5} more: `/apikey approvals`."))
    return blocks
