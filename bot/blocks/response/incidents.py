"""Emergency playbook screens: the live checklist, the activity table, the summary (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
    UserSelectElement,
)
from slack_sdk.models.blocks import Block as SlackBlock  # bot.ids.Block is a block id
from slack_sdk.models.views import View

from bot.blocks.message import Message, context, section, shown_view
from bot.blocks.text import escape, mention, minute, plural, truncate
from bot.ids import Action, Block, Callback
from bot.model.incidents import (
    BINANCE_API_MANAGEMENT,
    KEY_DELETED_STEP,
    REJECTED_MEANING,
    ClosedIncident,
    IncidentFacts,
    IncidentOutcome,
    IncidentState,
    IncidentView,
)
from bot.secret_shapes import SecretKind
from bot.vocabulary import Containment

MAX_ACTIVITY_ROWS = 40


def incident_message(view: IncidentView, *, admins: tuple[str, ...], now: datetime) -> Message:
    incident = view.incident
    closed = incident.state == IncidentState.CLOSED
    label = escape(incident.label)
    people = " ".join(dict.fromkeys([mention(view.owner_user_id)] + [mention(a) for a in admins]))
    if incident.false_alarm:
        title, marked = (
            f"✅ False alarm: {incident.label}",
            "Closed as a false alarm: Binance showed the key unchanged, so it is back in use.",
        )
    else:
        title, marked = f"🚨 Compromised key: {incident.label}", "The key is marked compromised."
    blocks = [
        HeaderBlock(text=truncate(title, 150)),
        section(
            f"Raised by {mention(incident.raised_by)} at {minute(incident.raised_at)} for *{label}* "
            f"(account *{escape(incident.account_alias)}*). {marked}\n"
            f"*Commander:* {mention(incident.commander)}"
            + ("" if closed else " leads the response.")
            + f"\nOwner and admins: {people}"
        ),
        section(_verification(incident)),
    ]
    if incident.other_keys and not incident.false_alarm:
        lines = [
            f"• *{escape(k['label'])}* · {k['tier'] or 'tier unknown'}"
            f"{'' if k.get('checked') else ' (last known)'} · {k['status']}"
            for k in incident.other_keys[:15]
        ]
        more = len(incident.other_keys) - 15
        if more > 0:
            lines.append(f"…and {more} more")
        blocks.append(
            section(
                "Other registered keys of this account (delete them too if the account may be "
                "breached):\n" + "\n".join(lines)
            )
        )
    blocks.append(DividerBlock())
    for step in view.steps:
        if incident.false_alarm and not step.ticked_by:
            continue  # called off: the steps nobody needed to do are no longer asked for
        number, title = step.step.number, step.step.title
        if step.ticked_by:
            # automatic: the governor deleted it (and a probe proved it); before issue 21, a
            # rejection alone counted as deleted
            who = mention(step.ticked_by)
            if step.automatic:
                who = (
                    "the bot: deleted through Binance's API"
                    if incident.containment == Containment.DELETED
                    else "the bot: Binance rejected the key"
                )
            text = f"✅ *{number}. {title}*\n_done by {who} at {_when(step.ticked_at)}_"
            blocks.append(section(text))
            continue
        detail = step.step.detail
        if number == KEY_DELETED_STEP and incident.key_dead_at is not None:
            detail = (
                f"Binance rejects the key since {minute(incident.key_dead_at)}, which does not "
                "show it was deleted (see above): mark this done once it is deleted in API "
                "Management."
            )
        if number == KEY_DELETED_STEP:
            detail += f" <{BINANCE_API_MANAGEMENT}|Open Binance API Management>"
        text = f"⬜ *{number}. {title}*\n{detail}"
        if closed:
            blocks.append(section(text))
        else:
            blocks.append(
                SectionBlock(
                    text=text,
                    accessory=ButtonElement(
                        text="Mark done",
                        action_id=Action.INCIDENT_TICK,
                        value=f"{incident.id}:{number}",
                    ),
                )
            )
    if not isinstance(blocks[-1], DividerBlock):  # a false alarm may list no step
        blocks.append(DividerBlock())
    if closed:
        how = "as a false alarm " if incident.false_alarm else ""
        blocks.append(
            context(
                f"Closed {how}by {mention(incident.closed_by)} at {_when(incident.closed_at)}: "
                f"{escape(truncate(incident.close_note or '', 1500))}"
            )
        )
    else:
        if incident.successor_key_id is not None:
            blocks.append(
                context(
                    f"🔁 The bot made a successor of *{label}* with the same permissions and IP "
                    "list, under the same label, delivered to the old key's sink if it had one "
                    f"(`/apikey status {label}`)."
                )
            )
        successor = (
            [
                ButtonElement(
                    text="Create a successor",
                    action_id=Action.INCIDENT_SUCCESSOR,
                    value=incident.id,
                    style="primary",
                )
            ]
            if incident.containment == Containment.DELETED and incident.successor_key_id is None
            else []
        )
        blocks.append(
            ActionsBlock(
                elements=[
                    *successor,
                    ButtonElement(
                        text="Close incident", action_id=Action.INCIDENT_CLOSE, value=incident.id
                    ),
                    ButtonElement(
                        text="Hand over command",
                        action_id=Action.INCIDENT_COMMANDER,
                        value=incident.id,
                    ),
                ]
            )
        )
        blocks.append(
            context(f"{view.done} of {len(view.steps)} steps done · updated {minute(now)}")
        )
    if incident.false_alarm:
        text = f"False alarm: {label} (closed, the key is back in use)"
    else:
        text = f"Compromised key: {label} ({view.done}/{len(view.steps)} steps done)"
    return Message(text=text, blocks=blocks)


def _when(moment: datetime | None) -> str:
    """``minute``, for a time the incident's state implies is set (shown, never a crash, if not)."""
    return minute(moment) if moment is not None else "an unknown time"


def _verification(incident: IncidentFacts) -> str:
    if incident.false_alarm:
        return (
            f"✅ *Checked at {_when(incident.closed_at)}:* Binance still accepts the key and "
            "reports the same permissions and IP restriction as when it was reported."
        )
    closed = incident.state == IncidentState.CLOSED
    contained = _containment(incident)
    if contained is not None:
        return contained
    if incident.key_dead_at is not None:
        rejects = (
            f"*Binance rejects the key from the bot's address* since "
            f"{minute(incident.key_dead_at)}: {REJECTED_MEANING} (Binance does not say which)."
        )
        if closed:
            return f"🔒 {rejects} Its stored secret was destroyed when the incident closed."
        return f"🔒 {rejects} The bot keeps checking until the incident is closed."
    if closed:
        return (
            "⚠️ *Closed before Binance was seen rejecting the key:* check in Binance API "
            "Management that it is deleted. Its stored secret was destroyed when the incident "
            "closed."
        )
    if incident.last_probe_result == "alive":
        return (
            f"⚠️ *Binance still accepts this key* (checked {_when(incident.last_probe_at)}). "
            "Delete it in Binance now; the bot keeps checking."
        )
    return "🔎 Checking with Binance whether the key still works…"


def took(duration: timedelta) -> str:
    """A short duration as people read it: "1.4 s", "2 min 5 s"."""
    seconds = max(0.0, duration.total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _containment(incident: IncidentFacts) -> str | None:
    """What the governor did to a governed key, for the checklist (None: not governed)."""
    state = incident.containment
    after = incident.time_to_contain
    if state == Containment.DELETED and after is not None:
        return (
            f"🛡️ *Deleted by the bot through Binance's API {took(after)} after the report* "
            f"(proven at {_when(incident.contained_at)}: Binance now rejects the key)."
        )
    if state == Containment.QUARANTINED and after is not None:
        return (
            f"🛡️ *Quarantined by the bot {took(after)} after the report:* "
            f"{escape(incident.containment_note or '')}. Delete it in Binance once you know it "
            "leaked, or close the incident as a false alarm to give its IP list back."
        )
    if state == Containment.CONTAINING:
        return "🛡️ The bot is containing this key through Binance's API now…"
    if state == Containment.FAILED:
        return (
            f"⚠️ *{escape((incident.containment_note or '').capitalize())}.* Delete it in Binance "
            "API Management by hand now; the bot keeps trying."
        )
    return None


def premature_tick_warning(label: str) -> Message:
    text = (
        f"⚠️ Binance still accepts “{escape(label)}”: it has not been deleted yet (or not in "
        "this account). The step is marked as you asked, but please delete the key in Binance "
        "API Management; the bot says when Binance rejects it."
    )
    return Message(text=text, blocks=[section(text)])


def already_open_message(incident_id: str, label: str, link: str | None) -> Message:
    where = f" <{link}|Open the checklist>" if link else ""
    text = f"An incident for “{escape(label)}” is already open: follow its checklist.{where}"
    return Message(text=text, blocks=[section(text)])


def raised_message(
    label: str, *, checklist_channel: str, link: str | None = None, governed: bool = False
) -> Message:
    """Said where the incident was raised: where its one live checklist is, with a link."""
    where = f"<#{checklist_channel}>"
    opened = f" (<{link}|open it>)" if link else ""
    first = (
        "The bot is deleting it through Binance's API now."
        if governed
        else "First, delete the key in Binance API Management."
    )
    text = (
        f"🚨 “{escape(label)}” is marked compromised. The live emergency checklist is in "
        f"{where}{opened}: tick its steps there. {first}"
    )
    return Message(text=text, blocks=[section(text)])


def _short_address(address: str) -> str:
    return address if len(address) <= 20 else f"{address[:10]}…{address[-6:]}"


def activity_message(incident: IncidentFacts) -> Message:
    activity = incident.activity or {}
    since = activity.get("since", "")[:16].replace("T", " ")
    if activity.get("error"):
        why = escape(str(activity["error"]).rstrip(". "))
        if incident.containment == Containment.DELETED and incident.successor_key_id is None:
            then = (
                "The bot deleted the key; it reads them again through the successor once "
                "one is created (*Create a successor* on the checklist), or review them in "
                "Binance yourself."
            )
        else:
            then = "Review them in Binance yourself."
        text = (
            f"Step 3: the bot could not read the account's withdrawals and deposits since "
            f"{since} UTC: {why}. {then}"
        )
        return Message(text=text, blocks=[section(text)])
    rows = activity.get("rows", [])
    flagged = sum(1 for r in rows if r["new_address"])
    head = (
        f"Step 3: withdrawals and deposits of *{escape(incident.account_alias)}* since {since} UTC "
        f"(read through “{escape(activity.get('source') or '?')}”): {plural(len(rows), 'row')}"
        + (
            f", *{plural(flagged, 'withdrawal')} to addresses never used before* 🚩"
            if flagged
            else ""
        )
    )
    if not rows:
        return Message(text=head, blocks=[section(head + "\nNothing moved in that period.")])
    # A list, two short lines per movement: it reads on a phone (a wide table in a code block
    # wraps there and loses its columns). Addresses shortened to their ends, as wallets do.
    lines = []
    for r in rows[:MAX_ACTIVITY_ROWS]:
        flag = " 🚩 *new address*" if r["new_address"] else ""
        when = (r["time"] or "")[:16].replace("T", " ")
        kind = "⬆️ Withdrawal" if r["kind"].lower().startswith("withdraw") else "⬇️ Deposit"
        lines.append(
            f"{kind} *{escape(r['amount'][:24])} {escape(r['coin'][:10])}*{flag}\n"
            f"    `{escape(_short_address(r['address']))}` · {when} UTC · {escape(r['status'])}"
        )
    if len(rows) > MAX_ACTIVITY_ROWS:
        lines.append(f"…and {len(rows) - MAX_ACTIVITY_ROWS} more: see the account in Binance.")
    body = truncate("\n".join(lines), 2900)
    return Message(text=head.replace("*", ""), blocks=[section(head), section(body)])


def close_modal(incident_id: str, label: str, *, may_call_false_alarm: bool) -> View:
    """How did it end, and a note. Only admins are offered "false alarm" (the service checks
    again: a form can be forged)."""
    blocks: list[SlackBlock] = [section(f"Closing the incident for *{escape(label)}*.")]
    if may_call_false_alarm:
        handled = Option(
            value=IncidentOutcome.HANDLED.value,
            label="Handled: the key is deleted in Binance",
            # an option's description holds at most 75 characters (Slack's option object)
            description="Every step done, and Binance rejects the key (unless it cannot be asked).",
        )
        false_alarm = Option(
            value=IncidentOutcome.FALSE_ALARM.value,
            label="False alarm: the key did not leak",
            description="The bot asks Binance first: back in use only if the key is unchanged.",
        )
        blocks.append(
            InputBlock(
                block_id=Block.CLOSE_OUTCOME,
                label="How did it end?",
                element=RadioButtonsElement(
                    action_id=Action.CLOSE_OUTCOME,
                    options=[handled, false_alarm],
                    initial_option=handled,
                ),
            )
        )
    else:
        blocks.append(
            context(
                "Every checklist step must be done, and Binance must reject the key (the "
                "checklist says when it does), before closing."
            )
        )
    blocks.append(
        InputBlock(
            block_id=Block.CLOSE_NOTE,
            label="What happened and what was done",
            element=PlainTextInputElement(
                action_id=Action.CLOSE_NOTE, multiline=True, max_length=2000
            ),
        )
    )
    return View(
        type="modal",
        callback_id=Callback.INCIDENT_CLOSE,
        private_metadata=incident_id,
        title=PlainTextObject(text="Close the incident"),
        submit=PlainTextObject(text="Close"),
        close=PlainTextObject(text="Cancel"),
        blocks=blocks,
    )


def commander_modal(incident_id: str, label: str, commander: str) -> View:
    return View(
        type="modal",
        callback_id=Callback.INCIDENT_COMMANDER,
        private_metadata=incident_id,
        title=PlainTextObject(text="Incident commander"),
        submit=PlainTextObject(text="Hand over"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            section(
                f"The commander leads the response to *{escape(label)}*: decides what comes "
                "first and who does which step."
            ),
            InputBlock(
                block_id=Block.COMMANDER,
                label="New commander",
                element=UserSelectElement(action_id=Action.COMMANDER, initial_user=commander),
            ),
        ],
    )


def commander_note(label: str, *, commander: str, previous: str, by: str) -> Message:
    """Said in the checklist's thread when the command changes hands."""
    text = (
        f"🧭 {mention(commander)} now leads the response to “{escape(label)}” "
        f"(handed over from {mention(previous)} by {mention(by)})."
    )
    return Message(text=text, blocks=[section(text)])


def closed_summary(closed: ClosedIncident) -> Message:
    incident = closed.view.incident
    lines = [f"• {minute(at)} — {what}" for at, what in closed.timeline]
    revoke = "not seen"
    if closed.time_to_revoke is not None:
        minutes = int(closed.time_to_revoke.total_seconds() // 60)
        if minutes >= 60:
            revoke = f"{minutes // 60} h {minutes % 60} min"
        else:
            revoke = f"{minutes} min" if minutes else "less than a minute"
    questions = "\n".join(f"• {q}" for q in closed.open_questions) or "• none"
    note = f"*Note:* {escape(truncate(incident.close_note or '', 1500))}"
    commander = f"*Commander:* {mention(incident.commander)}"
    if incident.false_alarm:
        title = f"Incident closed as a false alarm: {incident.label}"
        text = (
            "*Timeline*\n" + "\n".join(lines) + "\n\n*Outcome:* closed as a false alarm. "
            "Binance still accepts the key and reports the same permissions and IP restriction "
            "as when it was reported, so it is back in normal use and its rotation reminders "
            f"resume.\n{commander}\n*Open questions*\n{questions}\n\n{note}"
        )
    else:
        title = f"Incident closed: {incident.label}"
        text = (
            "*Timeline*\n"
            + "\n".join(lines)
            + f"\n\n*Time until Binance rejected the key:* {revoke}\n"
            + _contained_line(incident)
            + f"{commander}\n"
            f"*Open questions*\n{questions}\n\n{note}"
        )
    return Message(
        text=escape(title),
        blocks=[HeaderBlock(text=truncate(f"✅ {title}", 150)), section(truncate(text, 2900))],
    )


def _contained_line(incident: IncidentFacts) -> str:
    after = incident.time_to_contain
    if after is None:
        return ""
    how = "deleted" if incident.containment == Containment.DELETED else "quarantined"
    return f"*Contained by the bot ({how} through Binance's API):* {took(after)} after the report\n"


def incidents_list(
    incidents: list[IncidentFacts],
    done: dict[str, int],
    total_steps: int,
    *,
    links: dict[str, str] | None = None,
) -> Message:
    if not incidents:
        text = "No incidents in the last 30 days. 🎉"
        return Message(text=text, blocks=[section(text)])
    lines = []
    for incident in incidents:
        if incident.state == IncidentState.OPEN:
            state = "🔴 open"
        else:
            state = "✅ false alarm" if incident.false_alarm else "✅ closed"
        if incident.false_alarm:
            verified = " · key back in use"
        elif incident.key_dead_at:
            rejects = "rejects" if incident.state == IncidentState.OPEN else "rejected"
            verified = f" · Binance {rejects} the key"
        else:
            verified = " · Binance not seen rejecting the key"
        if incident.time_to_contain is not None:
            verified += f" · contained by the bot in {took(incident.time_to_contain)}"
        elif incident.containment == Containment.FAILED and incident.state == IncidentState.OPEN:
            verified += " · ⚠️ the bot could not contain it"
        link = (links or {}).get(incident.id)
        checklist = f" · <{link}|checklist>" if link else ""
        lines.append(
            f"{state} · *{escape(incident.label)}* · raised {minute(incident.raised_at)} by "
            f"{mention(incident.raised_by)} · commander {mention(incident.commander)} · "
            f"{done.get(incident.id, 0)}/{total_steps} steps{verified}{checklist}"
        )
    blocks = [HeaderBlock(text="Incidents"), *(section(chunk) for chunk in _chunks(lines))]
    return Message(text=plural(len(incidents), "incident"), blocks=blocks[:50])


def _chunks(lines: list[str], limit: int = 2900) -> list[str]:
    chunks, current = [], ""
    for line in lines:
        if current and len(current) + len(line) + 1 > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def leak_warning(kind: SecretKind, *, matched_label: str | None, key_id: str | None) -> Message:
    """The thread reply to a message that seems to contain a key or secret."""
    lines = [
        f"⚠️ This message seems to contain {kind.value}. Anything posted in Slack must be "
        "treated as leaked: delete the message, and delete or rotate the key in Binance."
    ]
    blocks: list[SlackBlock] = []
    if matched_label:
        lines.append(
            f"It matches the registered key *{escape(matched_label)}*: start the emergency "
            "playbook now."
        )
    blocks.append(section("\n".join(lines)))
    if matched_label and key_id:
        blocks.append(
            ActionsBlock(
                elements=[
                    ButtonElement(
                        text="Open the emergency playbook",
                        action_id=Action.INCIDENT_RAISE,
                        value=key_id,
                        style="danger",
                    )
                ]
            )
        )
    return Message(text=lines[0], blocks=blocks)


def compromised_button(key_id: str) -> ButtonElement:
    """The red button that reports a key compromised: the one button of the message that
    asks (a key menu's "Report compromised"), which already says what it does, so no second
    dialog stands between a leak and its playbook."""
    return ButtonElement(
        text="Yes, report it compromised",
        action_id=Action.INCIDENT_RAISE,
        value=key_id,
        style="danger",
    )


def false_alarm_checking_view() -> View:
    return shown_view(
        "Checking the key",
        "⏳ Asking Binance whether the key still works with the same permissions… "
        "The incident stays open unless it does. This window shows the outcome.",
    )


def false_alarm_refused_view(message: str) -> View:
    return shown_view(
        "Incident still open", "❌ *Not closed as a false alarm.*\n" + escape(message)
    )


def false_alarm_closed_view(closed: ClosedIncident) -> View:
    label = escape(closed.view.incident.label)
    return shown_view(
        "False alarm",
        f"✅ The incident for *{label}* is closed as a false alarm. Binance still accepts the "
        "key and reports the same permissions and IP restriction, so it is back in normal use; "
        "the summary is posted under the checklist.",
        close="Done",
    )


def thread_warning(text: str) -> Message:
    """A warning said under the checklist (e.g. why a false alarm was refused)."""
    return Message(text=text, blocks=[section(escape(text))])
