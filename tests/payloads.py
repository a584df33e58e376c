"""Reading what the bot sends, as the tests of its screens do: each key's menu, the styles used."""

from __future__ import annotations

from bot.ids import Action


def key_menus(payload: dict) -> list[dict]:
    """The key menus of a message or view: overflow menus, or the button of a single choice."""
    return [
        b["accessory"]
        for b in payload["blocks"]
        if (b.get("accessory") or {}).get("action_id") == Action.KEY_MENU
    ]


def menu_choices(payload: dict) -> dict[str, list[str]]:
    """Each key's menu: key id -> the choices it offers, in order."""
    menus: dict[str, list[str]] = {}
    for menu in key_menus(payload):
        for option in menu["options"] if menu["type"] == "overflow" else [menu]:
            choice, _, key_id = option["value"].partition(":")
            menus.setdefault(key_id, []).append(choice)
    return menus


def styles(node: object) -> list[str]:
    """Every button style anywhere in ``node`` ("danger", "primary")."""
    if isinstance(node, dict):
        own = [node["style"]] if isinstance(node.get("style"), str) else []
        return own + [s for v in node.values() for s in styles(v)]
    if isinstance(node, list):
        return [s for v in node for s in styles(v)]
    return []
