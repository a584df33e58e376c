"""`/apikey status`: one page of a status report (what Binance says each key can do).

A team's, a person's or one's own keys are shown one line a key (label, owner, tier and the
worst finding in words and colour) with a menu beside it; one key asked for by name is shown
in full: masked key, account, purpose, type, age, IP whitelist, permissions, delivery and every
finding (``StatusReport.detailed``).

A page always fits Slack: at most 50 blocks, every text within its limit, and the blocks'
text well under Slack's total. In full, each key on the page gets an equal share of that
room; what does not fit is cut and the message says so.
"""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    DividerBlock,
    OverflowMenuElement,
)

from bot.binance.permissions import KeyPermissions
from bot.blocks.custody.delivery import delivery_line
from bot.blocks.custody.key_menu import key_menu
from bot.blocks.message import Message, context, fit_lines, section
from bot.blocks.oversight.drift import unmanaged_line
from bot.blocks.text import (
    MAX_MESSAGE_BLOCKS,
    MAX_MESSAGE_TEXT,
    MAX_SECTION_TEXT,
    ago,
    escape,
    headline,
    ip_whitelist,
    key_type_name,
    mention,
    minute,
    name,
    permission_marks,
    plural,
    safe_mrkdwn,
    severity_icon,
    severity_word,
    tier_name,
    tier_text,
    truncate,
)
from bot.ids import COMMAND, Action
from bot.model.findings import PURPOSE_NAMES, Finding, Severity
from bot.model.status import KeyReport, StatusReport

# One line a key: a section each (for its menu). 40 sections, the heading and the foot (the
# note, "Page i of n", Previous, Next) stay within Slack's 50 blocks; 40 lines of at most
# MAX_LINE_TEXT characters, their menus and the heading within MAX_MESSAGE_TEXT.
DEFAULT_PAGE_SIZE = 40
MAX_PAGE_SIZE = 40
MAX_LINE_TEXT = 240
MAX_WORST_TEXT = 110  # the worst finding's first clause, on the line
MAX_REASON_TEXT = 170  # ...or why it is unknown (and when it can be checked): its first sentence
# In full (`status <label>`): a few keys a page.
DETAILED_PAGE_SIZE = 8
MAX_DETAILED_PAGE_SIZE = 10  # keeps at least ~1,100 characters and 4 blocks for every key
MAX_FINDING_TEXT = 600
_NOTE_ROOM = 200  # characters kept for "…and N more findings" under a key


def page_count(report: StatusReport, page_size: int | None = None) -> int:
    size = _clamp_size(report, page_size)
    return max(1, -(-len(report.keys) // size))


def status_page(
    report: StatusReport, page: int = 0, *, page_size: int | None = None, now: datetime
) -> Message:
    if not report.keys:
        return _empty(report)
    size = _clamp_size(report, page_size)
    pages = page_count(report, size)
    page = min(max(page, 0), pages - 1)
    first = page * size
    keys = report.keys[first : first + size]

    scope = safe_mrkdwn(report.scope)
    head: list[Block] = [
        section(
            f"*{safe_mrkdwn(report.summary)}* · {scope}\n_Checked at {minute(report.created_at)}._"
        )
    ]
    foot: list[Block] = []
    if any(key.redacted for key in keys):  # said once, not under every such key
        foot.append(
            context("Keys you neither own nor administer: details only for their owner and admins.")
        )
    if pages > 1:
        foot += [
            context(
                f"Page {page + 1} of {pages} · keys {first + 1} to {first + len(keys)} "
                f"of {len(report.keys)}"
            ),
            *_navigation(report.report_id, page, pages),
        ]
    if report.unmanaged and page == 0:
        head.append(section(unmanaged_line(report.unmanaged)))
    if report.detailed:
        body = _detailed_body(keys, now, blocks_left=MAX_MESSAGE_BLOCKS - len(head) - len(foot))
    else:
        body = [_key_row(key) for key in keys]
    text = f"{safe_mrkdwn(report.summary)} ({scope})"
    if pages > 1:
        text += f", page {page + 1} of {pages}"
    return Message(text=text, blocks=head + body + foot)


def _clamp_size(report: StatusReport, page_size: int | None) -> int:
    if report.detailed:
        return max(1, min(page_size or DETAILED_PAGE_SIZE, MAX_DETAILED_PAGE_SIZE))
    return max(1, min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))


def _empty(report: StatusReport) -> Message:
    if report.scope_user_id:
        nothing = f"{mention(report.scope_user_id)} owns no registered keys."
    else:
        nothing = "no keys are registered yet."
    text = (
        f"📭 Nothing to check: {nothing}\n"
        f"Register one with `{COMMAND} register`: the bot asks Binance what it can do."
    )
    return Message(text=text.partition("\n")[0], blocks=[section(text)])


def key_line(key: KeyReport) -> str:
    """One line for a key: label, owner, tier, and its worst finding in words and colour."""
    worst = key.findings[0] if key.findings else None  # findings come worst first
    if worst is None:
        said = f"{severity_word(Severity.OK)}: no least-privilege findings"
    else:
        said = f"{severity_word(worst.severity)}: {safe_mrkdwn(worst_words(worst))}"
    more = len(key.findings) - 1
    if more > 0 and not key.redacted:  # a redacted key's one finding counts them all
        said += f" · +{more} more"
    status = f" · _{escape(key.status)}_" if key.status in ("compromised", "revoked") else ""
    line = (
        f"{severity_icon(key.severity)} *{name(key.label, 80)}*{status} · "
        f"owner {mention(key.owner_user_id)} · {_tier(key)} · {said}"
    )
    return truncate(line, MAX_LINE_TEXT)


def worst_words(finding: Finding) -> str:
    """A key's worst finding, short: what is wrong ("Withdrawals are enabled"); for a key
    whose permissions are unknown, why, and when it can be checked again (the reason is the
    news there)."""
    if finding.severity == Severity.UNKNOWN:
        return headline(finding.text, MAX_REASON_TEXT, sentence=True)
    return headline(finding.text, MAX_WORST_TEXT)


def _tier(key: KeyReport) -> str:
    if key.redacted or not key.checked or key.permissions is None:
        return tier_text(key.tier)
    new_on = KeyPermissions.from_dict(key.permissions).new_flags_on
    if not new_on:
        return tier_text(key.tier)
    return f"{tier_text(key.tier)} + {plural(len(new_on), 'unknown permission')}"


def _menu(key: KeyReport, *, details: bool) -> OverflowMenuElement | ButtonElement | None:
    # A redacted key is one the viewer neither owns nor administers (the same rule).
    return key_menu(
        key.key_id,
        status=key.status,
        may_manage=not key.redacted,
        details=details,
        rotatable=key.status != "rotating",
    )


def _key_row(key: KeyReport) -> Block:
    row = section(key_line(key))
    row.accessory = _menu(key, details=True)
    return row


def _detailed_body(keys: list[KeyReport], now: datetime, *, blocks_left: int) -> list[Block]:
    chars_left = MAX_MESSAGE_TEXT - 1000  # head and foot use less than this
    body: list[Block] = []
    for i, key in enumerate(keys):
        share = len(keys) - i
        blocks, used = _key_blocks(
            key, now, max_blocks=blocks_left // share, max_chars=chars_left // share
        )
        body += blocks
        blocks_left -= len(blocks)
        chars_left -= used
    return body


def _key_text(key: KeyReport, now: datetime) -> str:
    if key.redacted:
        return (
            f"{severity_icon(key.severity)} *{name(key.label)}* · {tier_name(key.tier)} tier · "
            f"{severity_word(key.severity)} · owner {mention(key.owner_user_id)} · "
            f"account *{name(key.account_alias)}*"
        )
    permissions = key.permissions if key.checked else None
    new_on = KeyPermissions.from_dict(permissions).new_flags_on if permissions else ()
    tier = tier_text(key.tier if key.checked else None, new_on)
    first = f"{severity_icon(key.severity)} *{name(key.label)}* · {tier} · {severity_word(key.severity)}"
    details = " · ".join(
        [
            f"`{escape(key.masked)}`",
            f"account *{name(key.account_alias)}*",
            f"owner {mention(key.owner_user_id)}",
            PURPOSE_NAMES[key.purpose],
            key_type_name(key.key_type),
            f"registered {ago(key.created_at, now)}",
        ]
    )
    lines = [first, details, ip_whitelist(permissions), permission_marks(permissions)]
    if key.delivery is not None and key.delivery.state == "delivered":
        lines.append(delivery_line(key.delivery))  # pending or failing: it is a finding
    return "\n".join(lines)


def _key_blocks(
    key: KeyReport, now: datetime, *, max_blocks: int, max_chars: int
) -> tuple[list[Block], int]:
    """A divider, the key, then as many of its findings as fit; and the characters used."""
    main = _key_text(key, now)
    findings = [
        f"{severity_icon(f.severity)} {truncate(safe_mrkdwn(f.text), MAX_FINDING_TEXT)}"
        for f in key.findings
    ] or [f"{severity_icon(Severity.OK)} No least-privilege findings."]
    sections, shown = fit_lines(
        [main, *findings],
        max_blocks=max(1, max_blocks - 2),  # the divider, the note
        max_chars=max(len(main), max_chars - _NOTE_ROOM),
        line_limit=MAX_SECTION_TEXT,
    )
    if not sections:  # cannot happen with MAX_PAGE_SIZE keys a page; never drop a key anyway
        sections = [section(main)]
    # Its menu (no Details: this is them); none when it would offer nothing.
    sections[0].accessory = _menu(key, details=False)
    blocks: list[Block] = [DividerBlock(), *sections]
    used = sum(len(b.text.text) for b in sections if b.text is not None)  # all have text
    hidden = max(0, len(key.findings) - max(0, shown - 1))
    if hidden:
        note = (
            f"…and {plural(hidden, 'more finding')} not shown: too much for one message. "
            f"`{COMMAND} status {name(key.label)}` shows this key alone."
        )
        blocks.append(context(note))
        used += len(note)
    return blocks, used


def _navigation(report_id: str, page: int, pages: int) -> list[Block]:
    """One actions block per button: Slack wants action ids unique within a block."""
    targets = []
    if page > 0:
        targets.append(("◀ Previous", page - 1))
    if page < pages - 1:
        targets.append(("Next ▶", page + 1))
    return [
        ActionsBlock(
            elements=[
                ButtonElement(
                    text=label, action_id=Action.STATUS_PAGE, value=f"{report_id}:{target}"
                )
            ]
        )
        for label, target in targets
    ]
