"""Reading a signed Slack request body, and refusing the ones no listener could act on.

Slack sends three shapes to ``POST /slack/events``
(https://api.slack.com/interactivity/handling, https://api.slack.com/apis/events-api):
- slash commands: form-encoded fields (``command``, ``team_id``, ``user_id``, ...);
- interactivity: form-encoded, one ``payload`` field holding a JSON object with a ``type``
  (``block_actions`` with a non-empty ``actions`` list, ``view_submission`` with the ``view``
  and its ``state.values``, ...);
- Events API: a JSON object (``url_verification`` with a ``challenge``, ``event_callback``
  with an ``event``).
A body of another shape is answered 400 here, before Bolt or a listener indexes into it and
fails with a traceback in the log.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs


class MalformedRequest(ValueError):
    """A body that is not one of the shapes Slack sends (the message names what is wrong and
    never quotes the body)."""


def parse_body(text: str, content_type: str | None) -> dict[str, Any]:
    """The request as Bolt will see it (same rules as ``slack_bolt.request.internals``)."""
    is_json = (content_type or "").startswith("application/json") or text.lstrip().startswith("{")
    if is_json:
        body = _json_object(text, "the JSON body")
        _check_json_body(body)
        return body
    try:
        form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=200)
    except ValueError:
        raise MalformedRequest("the form body cannot be parsed") from None
    if "payload" in form:
        body = _json_object(form["payload"][0], "the payload field")
        _check_interactivity(body)
        return body
    fields = {name: values[0] for name, values in form.items()}
    if fields.get("ssl_check") == "1":
        return fields
    for name in ("command", "team_id", "user_id"):
        if not fields.get(name):
            raise MalformedRequest(f"a slash command without {name}")
    return fields


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise MalformedRequest(f"{what} is not JSON") from None
    if not isinstance(value, dict):
        raise MalformedRequest(f"{what} is JSON but not an object")
    return value


def _check_json_body(body: dict[str, Any]) -> None:
    kind = body.get("type")
    if kind == "url_verification":
        if not isinstance(body.get("challenge"), str):
            raise MalformedRequest("a url_verification without a challenge")
    elif kind == "event_callback":
        event = body.get("event")
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise MalformedRequest("an event_callback without an event type")
        if not isinstance(body.get("team_id"), str):
            raise MalformedRequest("an event_callback without a team_id")
    elif not isinstance(kind, str):
        raise MalformedRequest("a JSON body without a type")


def _check_interactivity(body: dict[str, Any]) -> None:
    kind = body.get("type")
    if not isinstance(kind, str):
        raise MalformedRequest("an interactivity payload without a type")
    user = body.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise MalformedRequest(f"{_what(kind)} without user.id")
    team = body.get("team")
    if team is not None and not (isinstance(team, dict) and isinstance(team.get("id"), str)):
        raise MalformedRequest(f"{_what(kind)} with a malformed team")
    if kind == "block_actions":
        actions = body.get("actions")
        if not isinstance(actions, list) or not actions:
            raise MalformedRequest("a block_actions payload without actions")
        for action in actions:
            if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
                raise MalformedRequest("a block_actions payload with a malformed action")
            if not isinstance(action.get("value", ""), str):
                raise MalformedRequest("a block_actions payload with a malformed action value")
        _check_optional_object(body, "channel", kind)
        _check_optional_object(body, "container", kind)
        if body.get("view") is not None:
            _check_view(body["view"], kind, with_state=False)
    elif kind in ("view_submission", "view_closed"):
        _check_view(body.get("view"), kind, with_state=kind == "view_submission")


def _check_view(view: Any, kind: str, *, with_state: bool) -> None:
    if not isinstance(view, dict):
        raise MalformedRequest(f"{_what(kind)} without a view")
    if not isinstance(view.get("id"), str):
        raise MalformedRequest(f"{_what(kind)} without view.id")
    # Slack sends callback_id with every view ("" when the app set none): a submission is
    # routed by it; a click in a view (the App Home) need not carry one.
    if with_state and not isinstance(view.get("callback_id"), str):
        raise MalformedRequest(f"{_what(kind)} without view.callback_id")
    if not isinstance(view.get("callback_id", ""), str):
        raise MalformedRequest(f"{_what(kind)} with a malformed view.callback_id")
    if not isinstance(view.get("private_metadata", ""), str):
        raise MalformedRequest(f"{_what(kind)} with malformed private_metadata")
    if not with_state:
        return
    state = view.get("state")
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        raise MalformedRequest(f"{_what(kind)} without view.state.values")
    for inputs in values.values():
        if not isinstance(inputs, dict) or not all(isinstance(v, dict) for v in inputs.values()):
            raise MalformedRequest(f"{_what(kind)} with malformed input values")


def _check_optional_object(body: dict[str, Any], field: str, kind: str) -> None:
    if body.get(field) is not None and not isinstance(body[field], dict):
        raise MalformedRequest(f"{_what(kind)} with a malformed {field}")


_KNOWN_TYPES = frozenset(
    {"block_actions", "view_submission", "view_closed", "shortcut", "message_action"}
)


def _what(kind: str) -> str:
    """The payload for the log: a known type by name; anything else is not quoted."""
    return f"a {kind} payload" if kind in _KNOWN_TYPES else "a payload of an unknown type"
