"""The App Home tab (pure): the viewer's keys with tier, findings, rotation state and incidents,
and for admins the team's picture (counts by tier, critical findings, overdue rotations, open
incidents), with buttons for the common actions."""

from __future__ import annotations

from datetime import datetime

from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

from bot.blocks.approvals import home_waiting_section
from bot.blocks.custody.key_menu import key_menu
from bot.blocks.message import context, fit_lines, section
from bot.blocks.oversight.status_report import MAX_WORST_TEXT, worst_words
from bot.blocks.rotation.rotation import rotation_when
from bot.blocks.text import (
    MAX_VIEW_BLOCKS,
    ago,
    headline,
    last_known_tier,
    mention,
    name,
    plural,
    safe_mrkdwn,
    severity_icon,
    severity_word,
    truncate,
)
from bot.ids import COMMAND, Action
from bot.model.findings import Finding, Severity
from bot.model.home import UNKNOWN_TIER, HomeKey, HomePicture, OpenIncident, TeamPicture
from bot.model.incidents import STEPS
from bot.model.key_pairs import PendingPair
from bot.model.rotation import RotationState

# One line a key, with its menu (a section each); past that, plain lines. With the team's
# critical keys below, the tab stays within Slack's 100 blocks.
MAX_KEY_ROWS = 40
MAX_TEAM_ROWS = 10
MAX_LINE_TEXT = 300
_TIER_ORDER = ("Withdraw", "Trade", "Read", "None", UNKNOWN_TIER)

_HOW_TO = (
    "*How it works*\n"
    f"• `{COMMAND} register`: a private form; the bot asks Binance what the key can do before "
    "storing anything, and keeps the secret encrypted.\n"
    f"• `{COMMAND} status mine`: what Binance says your keys can do now, and what is more than "
    "they need.\n"
    f"• `{COMMAND} rotation`: when each key is due for rotation.\n"
    f"• `{COMMAND} compromised <label>`: a key leaked? The emergency checklist, at once.\n"
    f"• `{COMMAND} help`: everything else."
).replace("<label>", "&lt;label&gt;")
_LEAST_PRIVILEGE = (
    "Least privilege: a dashboard needs Read, a trading bot Read + Trade; almost nothing "
    "needs Withdraw. This page shows what Binance said at the last check."
)


def home_view(picture: HomePicture, *, now: datetime) -> View:
    blocks: list[Block] = [
        HeaderBlock(text="Your Binance API keys"),
        section(_greeting(picture)),
        _main_buttons(picture),
    ]
    blocks += home_waiting_section(list(picture.waiting_approvals))
    if picture.own_incidents:
        blocks.append(
            section(_incident_lines("🚨 *Open incidents on your keys*", picture.own_incidents, now))
        )
    if picture.waiting_pairs:
        blocks += _waiting_pairs(picture.waiting_pairs)
    if picture.own_keys:
        blocks += _own_keys(picture.own_keys, now)
    else:
        blocks.append(section("You don't own any key yet. Register one with the button above."))
    if picture.team is not None:
        blocks += _team(picture.team, now)
    blocks += [DividerBlock(), section(_HOW_TO), context(_LEAST_PRIVILEGE)]
    return View(type="home", blocks=blocks[:MAX_VIEW_BLOCKS])


def _greeting(picture: HomePicture) -> str:
    who = mention(picture.user_id)
    team = picture.team_key_count
    if team == 0:
        return f"Hi {who}: no keys are registered in this workspace yet."
    role = " You are an admin of this bot." if picture.is_admin else ""
    own = len(picture.own_keys)
    return f"Hi {who}: you own {own} of the team's {plural(team, 'registered key')}.{role}"


def _main_buttons(picture: HomePicture) -> ActionsBlock:
    buttons = [
        ButtonElement(text="Register a key", action_id=Action.REGISTER_OPEN, style="primary")
    ]
    if picture.own_keys:
        buttons.append(ButtonElement(text="Check my keys now", action_id=Action.HOME_CHECK))
    if picture.is_admin and picture.team_key_count:
        buttons.append(ButtonElement(text="Check all keys now", action_id=Action.HOME_CHECK_ALL))
    return ActionsBlock(elements=buttons)


MAX_PAIRS_SHOWN = 5


def _waiting_pairs(pairs: list[PendingPair]) -> list[Block]:
    """Generated pairs still waiting for Binance's API key, each with its button."""
    blocks: list[Block] = [
        section(
            f"🔑 *Waiting for their API key* ({len(pairs)}): create the self-generated key in "
            "Binance from the public key the bot sent you, then enter the API key here."
        )
    ]
    for pair in pairs[:MAX_PAIRS_SHOWN]:
        what = "rotation of" if pair.rotate_key_id else "new key"
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=f"*{name(pair.label)}* · {what} · {pair.algorithm.shown} · "
                    f"until {pair.expires_at:%Y-%m-%d %H:%M} UTC"
                ),
                accessory=ButtonElement(
                    text="Enter the API key", action_id=Action.PAIR_ENTER_KEY, value=pair.pending_id
                ),
            )
        )
    if len(pairs) > MAX_PAIRS_SHOWN:
        blocks.append(context(f"…and {len(pairs) - MAX_PAIRS_SHOWN} more in your direct messages."))
    return blocks


def _own_keys(keys: list[HomeKey], now: datetime) -> list[Block]:
    """One line a key with its menu; past MAX_KEY_ROWS, plain lines, then a count."""
    blocks: list[Block] = [DividerBlock()]
    blocks += [_key_row(_key_line(key, now), key) for key in keys[:MAX_KEY_ROWS]]
    rest = keys[MAX_KEY_ROWS:]
    if rest:
        sections, shown = fit_lines([_key_line(k, now) for k in rest], max_blocks=3, max_chars=8000)
        blocks += sections
        if shown < len(rest):
            blocks.append(
                context(f"…and {len(rest) - shown} more: `{COMMAND} list` shows every key.")
            )
    return blocks


def _key_row(text: str, key: HomeKey) -> SectionBlock:
    """A key's line with its menu: the viewer owns the key or is an admin (the admin view)."""
    row = section(text)
    row.accessory = key_menu(
        key.summary.key_id,
        status=key.summary.status,
        may_manage=True,
        rotatable=key.rotation.state != RotationState.ROTATING,
        open_incident=key.open_incident_id is not None,
    )
    return row


def _worst(key: HomeKey) -> str:
    """The key's worst finding in words ("_critical_: Withdrawals are enabled · +1 more")."""
    found = [f for f in key.findings if f.severity > Severity.OK]
    if not found:
        return f"{severity_word(Severity.OK)}: no least-privilege findings"
    worst = max(found, key=lambda f: f.severity)  # the first of the worst: findings are ordered
    said = f"{severity_word(worst.severity)}: {safe_mrkdwn(worst_words(worst))}"
    return said + (f" · +{len(found) - 1} more" if len(found) > 1 else "")


def _key_line(key: HomeKey, now: datetime) -> str:
    s = key.summary
    tier = last_known_tier(s.last_tier, s.new_permissions_on, checked=s.checked_at is not None)
    incident = " · 🚨 *incident open*" if key.open_incident_id else ""
    line = (
        f"{severity_icon(key.worst)} *{name(s.label, 80)}* · {tier} · "
        f"{_worst(key)} · rotation {rotation_when(key.rotation, now)}{incident}"
    )
    return truncate(line, MAX_LINE_TEXT)


def _team(team: TeamPicture, now: datetime) -> list[Block]:
    tiers = " · ".join(
        f"{tier} *{team.by_tier[tier]}*" for tier in _TIER_ORDER if team.by_tier.get(tier)
    )
    if team.with_new_permissions:
        tiers += (
            f" (of which *{team.with_new_permissions}* with a permission the bot does not know "
            "yet, possibly risky)"
        )
    blocks: list[Block] = [
        DividerBlock(),
        HeaderBlock(text="The team's keys (admin view)"),
        section(f"*{plural(team.key_count, 'key')}* by tier: {tiers or 'none yet'}"),
    ]
    blocks += _critical(team.critical)
    blocks += _titled_lines(
        f"⏰ *Overdue rotations* ({len(team.overdue)})",
        [
            f"• *{name(r.label)}* ({mention(r.owner_user_id)}): {rotation_when(r, now)}"
            for r in team.overdue
        ],
        none="No rotation is overdue.",
    )
    if team.open_incidents:
        blocks.append(
            section(
                _incident_lines(
                    f"🚨 *Open incidents* ({len(team.open_incidents)})", team.open_incidents, now
                )
            )
        )
    else:
        blocks.append(section("🚨 *Open incidents*: none."))
    blocks.append(
        context(
            f"`{COMMAND} rotation`, `{COMMAND} incidents` and `{COMMAND} audit` show everything."
        )
    )
    return blocks


def _critical(critical: list[tuple[HomeKey, list[Finding]]]) -> list[Block]:
    """The keys with critical findings, one line each: the first ones with their menu."""
    title = f"🔴 *Keys with critical findings* ({len(critical)})"
    if not critical:
        return [section(f"{title}\nNo critical findings at the last check.")]
    lines = [_critical_line(k, found) for k, found in critical]
    blocks: list[Block] = [section(title)]
    blocks += [_key_row(lines[i], key) for i, (key, _f) in enumerate(critical[:MAX_TEAM_ROWS])]
    rest = lines[MAX_TEAM_ROWS:]
    if rest:
        sections, shown = fit_lines(rest, max_blocks=2, max_chars=5000)
        blocks += sections
        if shown < len(rest):
            blocks.append(context(f"…and {len(rest) - shown} more."))
    return blocks


def _critical_line(key: HomeKey, found: list[Finding]) -> str:
    s = key.summary
    more = f" · +{len(found) - 1} more" if len(found) > 1 else ""
    line = (
        f"{severity_icon(Severity.CRITICAL)} *{name(s.label, 80)}* · owner "
        f"{mention(s.owner_user_id)} · "
        f"{last_known_tier(s.last_tier, s.new_permissions_on, checked=s.checked_at is not None)}"
        f" · {safe_mrkdwn(headline(found[0].text, MAX_WORST_TEXT))}{more}"
    )
    return truncate(line, MAX_LINE_TEXT)


def _titled_lines(title: str, lines: list[str], *, none: str) -> list[Block]:
    if not lines:
        return [section(f"{title}\n{none}")]
    sections, shown = fit_lines([title, *lines], max_blocks=2, max_chars=5000)
    blocks: list[Block] = list(sections)
    if shown < len(lines) + 1:
        blocks.append(context(f"…and {len(lines) + 1 - shown} more."))
    return blocks


def _key_state(incident: OpenIncident) -> str:
    if incident.key_rejected:
        return "key rejected by Binance (deleted, or its IP whitelist no longer admits the bot)"
    if incident.last_probe_result == "alive":
        return "*key still accepted by Binance*"
    if incident.last_probe_result is None:
        return "key not checked with Binance yet"
    return "key state unknown (Binance could not be asked)"


def _incident_lines(title: str, incidents: list[OpenIncident], now: datetime) -> str:
    lines = [title]
    for i in incidents[:20]:
        state = _key_state(i)
        lines.append(
            f"• *{name(i.label)}* ({mention(i.owner_user_id)}): raised {ago(i.raised_at, now)}, "
            f"{i.steps_done}/{len(STEPS)} steps done, {state}"
        )
    if len(incidents) > 20:
        lines.append(f"…and {len(incidents) - 20} more: `{COMMAND} incidents`")
    return "\n".join(lines)
