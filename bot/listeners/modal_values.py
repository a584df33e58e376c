"""Reading what a person entered in a modal (``view.state.values``) and the modal's own
``private_metadata``, the same way for every form. The request gate has already checked the
shape (``state.values`` is a dict of dicts of dicts); a missing input reads as empty."""

from __future__ import annotations

import json
from typing import Any


def _input(view: dict[str, Any], block: str, action: str) -> dict[str, Any]:
    return (view["state"]["values"].get(block, {}).get(action, {})) or {}


def text(view: dict[str, Any], block: str, action: str) -> str:
    """A text input's value, as typed ("" when empty)."""
    return _input(view, block, action).get("value") or ""


def choice(view: dict[str, Any], block: str, action: str) -> str | None:
    """The value of the option chosen in a select or radio buttons (None: none chosen)."""
    return (_input(view, block, action).get("selected_option") or {}).get("value")


def user(view: dict[str, Any], block: str, action: str) -> str | None:
    return _input(view, block, action).get("selected_user")


def ticked(view: dict[str, Any], block: str, action: str) -> bool:
    """Whether any box of a checkbox group is ticked."""
    return bool(_input(view, block, action).get("selected_options"))


def metadata(view: dict[str, Any]) -> dict[str, Any]:
    """The JSON object the bot put in ``private_metadata`` ({} if it is not one)."""
    try:
        value = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def channel(view: dict[str, Any]) -> str | None:
    """The channel the form was opened from, as the bot noted it in the metadata."""
    found = metadata(view).get("channel")
    return found if isinstance(found, str) else None


def chosen(view: dict[str, Any], block: str, action: str) -> frozenset[str]:
    """The values of every box ticked in a checkbox group."""
    options = _input(view, block, action).get("selected_options") or []
    return frozenset(str(o.get("value")) for o in options if isinstance(o, dict))
