"""What an audit event's detail says, in words (pure).

Each writer stores a small dict (grep ``record_event(``); here each action's dict becomes the
end of a sentence: people as mentions, channels as links, times in one format with the zone,
lists joined in words, and no boolean, internal name or Python value shown raw. A key that a
newer writer adds and this module does not know yet is still shown, humanised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from bot.blocks.text import escape, plural
from bot.blocks.words import humanised, in_words, person, purpose, quoted, sink, tier, when
from bot.model.approvals import CHANGE_WORDS, KIND_WORDS
from bot.model.incidents import STEPS
from bot.vocabulary import ApprovalKind, AuditAction

Detail = Mapping[str, Any]

_LEAD = re.compile(r"^lead_(\d+)d$")
_REMINDER_STEPS = {
    "due": "on the due date",
    "overdue_admins": "overdue, to the admins",
    "overdue_channel": "overdue, to the channel",
}
_CONTAINMENT = {
    "deleted": "deleted it in Binance",
    "quarantined": "cut its IP list to the bot's own addresses",
    "failed": "could not contain it",
}
_GOVERNOR_WHY = {
    "create": "to create a key",
    "rotate": "for a rotation",
    "contain": "to contain a compromised key",
    "quarantine": "to quarantine a compromised key",
    "restore": "to restore a key after a false alarm",
    "list": "to list the sub-account's keys",
    "check": "to check a key",
}


def _incident(detail: Detail) -> str:
    incident = detail.get("incident")
    return f" (incident {str(incident)[:8]})" if incident else ""


# --- one sentence end per action ------------------------------------------------------------


def _request(d: Detail) -> str:
    """An approval request, named by the start of its id (the whole id is for exports)."""
    request = d.get("request")
    return f" (request {str(request)[:8]})" if request else ""


def _change(d: Detail) -> str:
    change = str(d.get("change") or "")
    return CHANGE_WORDS.get(change, humanised(change)) if change else "change the key"


def _approval_request(d: Detail) -> str:
    kinds = [KIND_WORDS[ApprovalKind(k)] for k in d.get("kinds") or [] if k in set(ApprovalKind)]
    text = f"to {_change(d)}"
    text += f" ({_masked(d)})" if d.get("masked") else ""
    text += f", because {in_words(kinds)}" if kinds else ""
    stake = [escape(str(item)) for item in d.get("at_stake") or []]
    text += f"; what is at stake is {in_words(stake)}" if stake else ""
    text += f"; needs {plural(int(d.get('quorum') or 1), 'approval')}"
    text += f", expires {when(d['expires_at'])}" if d.get("expires_at") else ""
    return text + _request(d)


def _approval_vote(d: Detail) -> str:
    return f"{int(d.get('approvals') or 0)} of {int(d.get('quorum') or 1)}" + _request(d)


def _approval_applied(d: Detail) -> str:
    by = [person(u) for u in d.get("approved_by") or []]
    return f"{_change(d)}, approved by {in_words(by)}" + _request(d)


def _approval_ended(d: Detail) -> str:
    text = f"{_change(d)} was not done"
    text += f": {escape(str(d['outcome']).rstrip('.'))}" if d.get("outcome") else ""
    text += "; the held key material was shredded" if d.get("shredded") else ""
    return text + _request(d)


def _approval_refused(d: Detail) -> str:
    return (f"because of {escape(str(d['reason']))}" if d.get("reason") else "") + _request(d)


def _access_denied(d: Detail) -> str:
    return f"when trying to {escape(str(d['attempted']))}" if d.get("attempted") else ""


def _activity_review(d: Detail) -> str:
    parts = [
        f"{plural(int(d.get('accounts_checked', 0)), 'account')} checked, "
        f"{plural(int(d.get('withdrawals', 0)), 'withdrawal')} seen, "
        f"{int(d.get('reported', 0))} reported ({int(d.get('new_addresses', 0))} to a new "
        f"address, {int(d.get('large', 0))} large)"
    ]
    missed = [escape(str(a)) for a in d.get("could_not_check") or []]
    if missed:
        parts.append(f"could not check {in_words(missed)}")
    parts.append("posted in the alert channel" if d.get("posted") else "nothing posted")
    return "; ".join(parts)


def _audit_key_created(d: Detail) -> str:
    text = f"{plural(int(d.get('rekeyed_events') or 0), 'earlier event')} re-keyed"
    broken = d.get("old_chain_broken_at")
    if broken is not None:
        text += f"; the old chain was already broken at event #{broken}"
    return text


def _secret_refused(d: Detail) -> str:
    if d.get("matched_registered_key"):
        return "it matched a registered key, which must now be rotated"
    return "it matched no registered key"


def _delivery(d: Detail) -> str:
    text = f"to {sink(d.get('sink'))}"
    if d.get("destination"):
        text += f" at `{escape(str(d['destination']))}`"
    if d.get("version") is not None:
        text += f", version {d['version']}"
    if d.get("sink_version"):
        text += f" ({escape(str(d['sink_version']))} there)"
    if d.get("masked"):
        text += f", key `{escape(str(d['masked']))}`"
    if d.get("attempts") and int(d["attempts"]) > 1:
        text += f", after {plural(int(d['attempts']), 'attempt')}"
    if d.get("held_by"):
        text += f": {quoted(d['held_by'])} is delivered there already"
    if d.get("reason"):
        text += f" ({escape(str(d['reason']))})"
    return text


def _sink_chosen(d: Detail) -> str:
    now = sink(d.get("sink"))
    where = f" at `{escape(str(d['destination']))}`" if d.get("destination") else ""
    before = f", instead of {sink(d['previous'])}" if d.get("previous") else ""
    return f"now {now}{where}{before}"


def _drift_check(d: Detail) -> str:
    text = f"{plural(int(d.get('checked', 0)), 'key')} checked, "
    text += f"{plural(int(d.get('changes', 0)), 'change')} found"
    missed = int(d.get("could_not_check", 0))
    return text + (f", {missed} could not be checked" if missed else "")


def _governor_call(d: Detail) -> str:
    why = _GOVERNOR_WHY.get(str(d.get("why")), "")
    text = f"{escape(str(d.get('method', '')))} `{escape(str(d.get('endpoint', '')))}`"
    if why:
        text += f" {why}"
    if d.get("sub_account"):
        text += f" in sub-account {escape(str(d['sub_account']))}"
    if d.get("key"):
        text += f", key `{escape(str(d['key']))}`"
    if d.get("governor"):
        text += f", through governor key `{escape(str(d['governor']))}`"
    text += _incident({"incident": d.get("incident_id")})
    return text + f": {escape(str(d.get('outcome', 'no answer')))}"


def _mint_unknown(d: Detail) -> str:
    return (
        f"{quoted(d.get('api_name', '?'))} in sub-account {escape(str(d.get('sub_account')))}, "
        f"asked {when(d.get('started_at'))}: find it in Binance and delete it"
    )


def _incident_activity(d: Detail) -> str:
    rows, new = int(d.get("rows") or 0), int(d.get("new_addresses") or 0)
    if not d.get("source"):
        return "no key of the account could read it" + _incident(d)
    return (
        f"read through {quoted(d['source'])}: {plural(rows, 'transfer')}, "
        f"{new} to a new address" + _incident(d)
    )


def _false_alarm(d: Detail) -> str:
    status = str(d.get("key_status") or "active")  # the action's words say "back in use"
    proof = escape(str(d["proof"])) if d.get("proof") else ""
    gone = "" if status == "active" else f"; the key is {escape(status)}"
    return proof + gone + _incident(d)


def _incident_close(d: Detail) -> str:
    text = f"Binance {escape(str(d.get('binance', 'was not asked')))}"
    if d.get("shredded"):
        text += "; its secret was shredded"
    if d.get("key_status"):
        text += f"; the key is {escape(str(d['key_status']))}"
    return text + _incident(d)


def _commander(d: Detail) -> str:
    return f"from {person(d.get('from'))} to {person(d.get('to'))}" + _incident(d)


def _contained(d: Detail) -> str:
    text = _CONTAINMENT.get(str(d.get("how")), escape(str(d.get("how"))))
    seconds = d.get("seconds_from_report")
    if seconds is not None:
        text += f", {plural(round(float(seconds)), 'second')} after the report"
    if d.get("binance"):
        text += f" (Binance: {escape(str(d['binance']))})"
    return text + _incident(d)


def _reason(key: str) -> Callable[[Detail], str]:
    def render(d: Detail) -> str:
        return (escape(str(d[key])) if d.get(key) else "") + _incident(d)

    return render


def _key_rejected(d: Detail) -> str:
    said = f"Binance said {escape(str(d['binance']).rstrip('. '))}" if d.get("binance") else ""
    meaning = f" ({escape(str(d['meaning']))})" if d.get("meaning") else ""
    return said + meaning + _incident(d)


def _masked(d: Detail, key: str = "masked") -> str:
    return f"key `{escape(str(d[key]))}`" if d.get(key) else ""


def _raise(d: Detail) -> str:
    return _masked(d) + _incident(d)


def _tick(d: Detail) -> str:
    titles = {s.number: s.title for s in STEPS}
    step = d.get("step")
    title = titles.get(int(step)) if isinstance(step, int) else None
    return (f"step {step}, {title}" if title else f"step {escape(str(step))}") + _incident(d)


def _announce(d: Detail) -> str:
    text = escape(str(d["what"])) if d.get("what") else "a key that can move funds"
    if d.get("tier"):
        text += f" ({tier(d['tier'])})"
    told = []
    if d.get("channel"):
        told.append(f"<#{escape(str(d['channel']))}>")
    told += [person(p) for p in d.get("told") or []]
    return text + f", told {in_words(told)}"


def _key_create(d: Detail) -> str:
    grant = d.get("grant") or {}
    powers = [k.removeprefix("can_").replace("_", " ") for k, v in grant.items() if v is True]
    ips = [escape(str(ip)) for ip in d.get("ip_addresses") or []]
    text = f"{quoted(d.get('api_name', '?'))} in sub-account {escape(str(d.get('sub_account')))}"
    text += f", {_masked(d)}" if d.get("masked") else ""
    text += f", allowed to {in_words(powers)}" if powers else ", read only"
    text += f", from {in_words(ips)} only" if ips else ", from any address"
    return text + (f" ({escape(str(d['reason']))})" if d.get("reason") else "")


def _key_edit(d: Detail) -> str:
    field = str(d.get("field"))
    show = {"owner": person, "purpose": purpose}.get(field, lambda v: quoted(v))
    return f"{escape(field)} from {show(d.get('from'))} to {show(d.get('to'))}"


def _accepted(d: Detail, flag: str) -> str:
    reasons = [escape(str(r)) for r in d.get("accepted") or []]
    if d.get(flag) and reasons:
        return f"; accepted although {in_words(reasons)}"
    return ""


def _register(d: Detail) -> str:
    parts = [_masked(d), escape(str(d.get("key_type", "?"))).replace("ED25519", "Ed25519")]
    if d.get("tier"):
        parts.append(tier(d["tier"]))
    text = ", ".join(p for p in parts if p)
    text += f", owned by {person(d['owner'])}" if d.get("owner") else ""
    text += f", for {purpose(d['purpose'])}" if d.get("purpose") else ""
    text += f", account {quoted(d['account'])}" if d.get("account") else ""
    text += _accepted(d, "confirmed_beyond_purpose")
    return text + ("; announced as a key that can move funds" if d.get("announced") else "")


def _remove(d: Detail) -> str:
    text = _masked(d)
    return text + ("; announced as a key that could move funds" if d.get("announced") else "")


def _rotate_start(d: Detail) -> str:
    text = f"from {_masked(d, 'old')} to {_masked(d, 'new')}"
    text += f", {tier(d['tier'])}" if d.get("tier") else ""
    return text + _accepted(d, "confirmed_more_permissions")


def _old_key(d: Detail) -> str:
    text = f"old {_masked(d, 'old')}" if d.get("old") else ""
    if d.get("proof"):
        text += f": {escape(str(d['proof']))}"
    if d.get("sink"):
        text += f", waiting for {sink(d['sink'])} to take the new credentials"
    return text


_FAILED_STEPS = {"successor": "making the successor", "delete old": "deleting the old key"}


def _rotate_failed(d: Detail) -> str:
    step = str(d.get("step") or "")
    text = _FAILED_STEPS.get(step, escape(step.replace("_", " ")))
    if d.get("why"):
        text += f": {escape(str(d['why']).rstrip('. '))}"
    if d.get("retry_at"):
        text += f"; tried again at {when(d['retry_at'])}"
    return text


def _old_key_deleted(d: Detail) -> str:
    text = f"old {_masked(d, 'old')}" if d.get("old") else ""
    if "early" in d:
        text += (
            ", when the owner said the service uses the new key"
            if d.get("early")
            else ", when the overlap ended"
        )
    return text


def _status(d: Detail) -> str:
    counts = [
        plural(int(d[k]), word)
        for k, word in (("critical", "critical"), ("warnings", "warning"), ("unknown", "unknown"))
        if d.get(k)
    ]
    found = f": {in_words(counts)}" if counts else ", all fine"
    return f"{plural(int(d.get('keys', 0)), 'key')}{found}"


def _keypair_expired(d: Detail) -> str:
    made = f"made by {person(d['created_by'])}" if d.get("created_by") else ""
    return made + ("; its private key was shredded" if d.get("shredded") else "")


def _keypair_generate(d: Detail) -> str:
    text = f"{escape(str(d.get('algorithm', '?')))}, "
    text += "for a rotation" if d.get("rotation") else "for a new key"
    text += f", owned by {person(d['owner'])}" if d.get("owner") else ""
    text += f", for {purpose(d['purpose'])}" if d.get("purpose") else ""
    return text + (f"; unused, it expires {when(d['expires_at'])}" if d.get("expires_at") else "")


def _reencrypt(d: Detail) -> str:
    sources = [escape(str(k)) for k in d.get("from_keys") or []]
    text = f"{plural(int(d.get('rows', 0)), 'secret')} now sealed by {escape(str(d.get('to_key')))}"
    return text + (f", before by {in_words(sources)}" if sources else "")


def _retire(d: Detail) -> str:
    return f"{escape(str(d['key']))}" if d.get("key") else ""


def _page(d: Detail) -> str:
    where = in_words((escape(str(x)) for x in d.get("destinations") or []), empty="nowhere")
    return f"through {where}" + (f" ({escape(str(d['reason']))})" if d.get("reason") else "")


def _policy(d: Detail) -> str:
    text = f"to {plural(int(d.get('period_days', 0)), 'day')}"
    before = d.get("previous_period_days")
    return text + (f", from {plural(int(before), 'day')}" if before else "")


def _reminder(d: Detail) -> str:
    step = str(d.get("step"))
    lead = _LEAD.match(step)
    text = f"{plural(int(lead.group(1)), 'day')} before it is due" if lead else ""
    text = text or _REMINDER_STEPS.get(step, escape(step.replace("_", " ")))
    if d.get("late"):
        text += ", sent late (the bot was down when it was due)"
    if d.get("owner_gone"):
        text += ", to the admins: the owner has left"
    return text


def _snooze(d: Detail) -> str:
    return f"until {when(d['until'])}" if d.get("until") else ""


SENTENCE_ENDS: dict[str, Callable[[Detail], str]] = {
    AuditAction.ACCESS_DENIED: _access_denied,
    AuditAction.ACTIVITY_REVIEW: _activity_review,
    AuditAction.APPROVAL_APPLIED: _approval_applied,
    AuditAction.APPROVAL_APPROVE: _approval_vote,
    AuditAction.APPROVAL_CHANGED: _approval_ended,
    AuditAction.APPROVAL_DENY: _approval_ended,
    AuditAction.APPROVAL_EXPIRE: _approval_ended,
    AuditAction.APPROVAL_REFUSED: _approval_refused,
    AuditAction.APPROVAL_REQUEST: _approval_request,
    AuditAction.APPROVAL_WITHDRAW: _approval_ended,
    AuditAction.AUDIT_CHECKPOINT: lambda d: "",
    AuditAction.AUDIT_KEY_CREATED: _audit_key_created,
    AuditAction.COMMAND_SECRET_REFUSED: _secret_refused,
    AuditAction.CREDENTIALS_DELIVERED: _delivery,
    AuditAction.CREDENTIALS_DELIVERY_FAILED: _delivery,
    AuditAction.CREDENTIALS_DELIVERY_REFUSED: _delivery,
    AuditAction.CREDENTIALS_SINK_CHOSEN: _sink_chosen,
    AuditAction.DRIFT_CHECK: _drift_check,
    AuditAction.GOVERNOR_CALL: _governor_call,
    AuditAction.GOVERNOR_MINT_UNKNOWN: _mint_unknown,
    AuditAction.INCIDENT_ACTIVITY_REVIEW: _incident_activity,
    AuditAction.INCIDENT_CLOSE: _incident_close,
    AuditAction.INCIDENT_COMMANDER: _commander,
    AuditAction.INCIDENT_CONTAINED: _contained,
    AuditAction.INCIDENT_CONTAINMENT_FAILED: _reason("why"),
    AuditAction.INCIDENT_FALSE_ALARM: _false_alarm,
    AuditAction.INCIDENT_FALSE_ALARM_REFUSED: _reason("reason"),
    AuditAction.INCIDENT_KEY_ACCEPTED_AGAIN: _incident,
    AuditAction.INCIDENT_KEY_DEAD: _incident,
    AuditAction.INCIDENT_KEY_REJECTED: _key_rejected,
    AuditAction.INCIDENT_RAISE: _raise,
    AuditAction.INCIDENT_TICK: _tick,
    AuditAction.KEY_ANNOUNCE: _announce,
    AuditAction.KEY_CREATE: _key_create,
    AuditAction.KEY_EDIT: _key_edit,
    AuditAction.KEY_REGISTER: _register,
    AuditAction.KEY_REMOVE: _remove,
    AuditAction.KEY_ROTATE_COMPLETE: _old_key,
    AuditAction.KEY_ROTATE_FAILED: _rotate_failed,
    AuditAction.KEY_ROTATE_OLD_KEY_DELETED: _old_key_deleted,
    AuditAction.KEY_ROTATE_OVERLAP_ENDED: _old_key,
    AuditAction.KEY_ROTATE_OLD_KEY_ALIVE: _old_key,
    AuditAction.KEY_ROTATE_START: _rotate_start,
    AuditAction.KEY_ROTATE_WAITING_FOR_DELIVERY: _old_key,
    AuditAction.KEY_STATUS: _status,
    AuditAction.KEYPAIR_EXPIRED: _keypair_expired,
    AuditAction.KEYPAIR_GENERATE: _keypair_generate,
    AuditAction.LEAK_DETECTED: _secret_refused,
    AuditAction.MASTER_KEY_REENCRYPT_BATCH: _reencrypt,
    AuditAction.MASTER_KEY_RETIRE: _retire,
    AuditAction.PAGE_REFUSED: _page,
    AuditAction.PAGE_RESOLVED: _page,
    AuditAction.PAGE_SENT: _page,
    AuditAction.ROTATION_POLICY: _policy,
    AuditAction.ROTATION_REMINDER: _reminder,
    AuditAction.ROTATION_SNOOZE: _snooze,
}


# Stored for exports and SIEMs, never worth a person's reading: internal ids and names.
_UNSAID = frozenset({"pending", "dedup_key", "table", "label", "approval", "approved_by"})


class _Reading(Mapping[str, Any]):
    """A detail that remembers which keys the sentence read: the others are added after it."""

    def __init__(self, detail: Detail) -> None:
        self._detail = detail
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return self._detail[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._detail)

    def __len__(self) -> int:
        return len(self._detail)


def sentence_end(action: str, detail: Detail) -> str:
    """The words after "<who> <did what>": empty when there is nothing to add. Keys the
    action's sentence does not read (a newer writer's) follow it, humanised."""
    render = SENTENCE_ENDS.get(action)
    reading = _Reading(detail)
    said = render(reading) if render is not None else ""
    extra = [
        _unknown(k, v)
        for k, v in sorted(detail.items())
        if k not in reading.read and k not in _UNSAID
    ]
    return "; ".join(part.strip() for part in [said, *extra] if part.strip())


def _unknown(key: str, value: object) -> str:
    words = escape(key.replace("_", " "))
    if isinstance(value, bool):
        return words if value else f"not {words}"
    if key == "attempted":
        return f"tried to {humanised(value)}"
    return f"{words}: {humanised(value)}"
