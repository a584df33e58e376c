"""Block Kit payloads (plain dicts, as Slack receives them) rendered as text for a terminal.

Pure functions: no I/O. Used by the sandbox console to show what a Slack user would see.
Buttons, and the options of overflow menus, are numbered in document order (``[1] Next ▶``,
``⋮ [2] Details · [3] Rotate``); :func:`find_buttons` returns them in the same order, so a
console can let the user press one (or choose an option) by number or by text.
"""

from __future__ import annotations

import json
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from typing import Any

WIDTH = 100

_BOLD_UNDERLINE = "\x1b[1;4m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RESET = "\x1b[0m"

# <@U123>, <@U123|alice>, <#C123|general>, <!here>, <!date^...|fallback>, <url|text>, <url>
_ANGLE = re.compile(r"<([^<>\s][^<>]*)>")


@dataclass(frozen=True)
class Button:
    """A button found in a message or view (what pressing it needs)."""

    text: str
    action_id: str
    value: str | None = None
    block_id: str | None = None
    style: str | None = None
    url: str | None = None
    overflow: bool = False  # an option of an overflow menu (sent as its selected_option)


# --- text objects --------------------------------------------------------------------------


def mrkdwn_to_text(text: str) -> str:
    """Slack mrkdwn, lightly converted: mentions and links readable, entities unescaped."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        if target.startswith("@"):
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!subteam^"):
            return "@" + (label or target[len("!subteam^") :])
        if target.startswith("!date^"):
            return label or target
        if target.startswith("!"):
            return "@" + (label or target[1:])
        if label and label != target:
            return f"{label} ({target})"
        return target

    converted = _ANGLE.sub(replace, text)
    return converted.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def text_of(obj: Any) -> str:
    """The readable text of a text object (mrkdwn or plain_text), a string, or None."""
    if obj is None:
        return ""
    if isinstance(obj, str):
        return mrkdwn_to_text(obj)
    if isinstance(obj, dict):
        raw = obj.get("text") or ""
        if obj.get("type") == "mrkdwn":
            return mrkdwn_to_text(raw)
        return raw
    return str(obj)


def display_width(text: str) -> int:
    """Columns ``text`` takes in a terminal (wide characters and most emoji take two)."""
    width = 0
    for ch in text:
        if unicodedata.combining(ch) or ch in "\u200d\ufe0f":
            continue
        width += 2 if unicodedata.east_asian_width(ch) in {"W", "F"} else 1
    return width


def wrap(text: str, width: int = WIDTH, indent: str = "") -> str:
    """Wrap every line of ``text`` at ``width``, keeping a list item's hanging indent."""
    out: list[str] = []
    room = max(20, width - len(indent))
    for line in text.split("\n"):
        if len(line) <= room:
            out.append(indent + line)
            continue
        lead = re.match(r"\s*(?:[•\-*]\s+|\d+[.)]\s+)?", line)
        hanging = " " * len(lead.group(0)) if lead else ""
        pieces = textwrap.wrap(
            line,
            width=room,
            subsequent_indent=hanging,
            break_long_words=True,
            break_on_hyphens=False,
        )
        out.extend(indent + piece for piece in pieces or [""])
    return "\n".join(out)


# --- blocks ---------------------------------------------------------------------------------


class _Renderer:
    def __init__(self, *, first_number: int, width: int, style: bool) -> None:
        self.number = first_number
        self.width = width
        self.style = style
        self.buttons: list[Button] = []

    def styled(self, text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if self.style and text else text

    def button(self, element: dict[str, Any], block_id: str | None) -> str:
        label = text_of(element.get("text"))
        self.buttons.append(
            Button(
                text=label,
                action_id=element.get("action_id", ""),
                value=element.get("value"),
                block_id=block_id,
                style=element.get("style"),
                url=element.get("url"),
            )
        )
        shown = f"[{self.number}] {label}"
        self.number += 1
        if element.get("style") == "danger":
            shown += " (!)"
        if element.get("url"):
            shown += f" ({element['url']})"
        return shown

    def option(self, menu: dict[str, Any], option: dict[str, Any], block_id: str | None) -> str:
        label = text_of(option.get("text"))
        self.buttons.append(
            Button(
                text=label,
                action_id=menu.get("action_id", ""),
                value=option.get("value"),
                block_id=block_id,
                overflow=True,
            )
        )
        shown = f"[{self.number}] {label}"
        self.number += 1
        return shown

    def element(self, element: dict[str, Any], block_id: str | None) -> str:
        kind = element.get("type")
        if kind == "button":
            return self.button(element, block_id)
        if kind == "image":
            return f"[image: {element.get('alt_text', '')}]"
        if kind in {"mrkdwn", "plain_text"}:
            return text_of(element)
        if kind == "overflow":  # each option can be chosen like a button
            options = " · ".join(
                self.option(element, option, block_id) for option in element.get("options", [])
            )
            return f"⋮ {options}"
        return _describe_input(element)

    def blocks(self, blocks: list[dict[str, Any]]) -> str:
        parts = [self.block(block) for block in blocks]
        return "\n".join(part for part in parts if part is not None)

    def block(self, block: dict[str, Any]) -> str | None:
        kind = block.get("type")
        block_id = block.get("block_id")
        if kind == "header":
            title = text_of(block.get("text"))
            underline = "═" * min(self.width, max(3, display_width(title)))
            return self.styled(title, _BOLD_UNDERLINE) + "\n" + underline
        if kind == "divider":
            return "─" * self.width
        if kind == "section":
            return self.section(block)
        if kind == "context":
            items = [self.element(el, block_id) for el in block.get("elements", [])]
            line = "  ".join(item for item in items if item)
            return self.styled(wrap(line, self.width, indent="  ┆ "), _DIM)
        if kind == "actions":
            items = [self.element(el, block_id) for el in block.get("elements", [])]
            return wrap("   ".join(items), self.width)
        if kind == "input":
            return self.input(block)
        if kind == "image":
            title = text_of(block.get("title"))
            return f"[image: {title or block.get('alt_text', '')}]"
        if kind == "rich_text":
            return wrap(_rich_text(block), self.width)
        if kind == "file":
            return "[file]"
        return f"[{kind} block]"

    def section(self, block: dict[str, Any]) -> str:
        lines: list[str] = []
        if block.get("text"):
            lines.append(wrap(text_of(block["text"]), self.width))
        fields = [text_of(f) for f in block.get("fields") or []]
        if fields:
            lines.append(_fields(fields, self.width))
        accessory = block.get("accessory")
        if accessory:
            lines.append("  → " + self.element(accessory, block.get("block_id")))
        return "\n".join(lines)

    def input(self, block: dict[str, Any]) -> str:
        label = text_of(block.get("label"))
        optional = " (optional)" if block.get("optional") else ""
        described = _describe_input(block.get("element", {}))
        line = wrap(f"{label}{optional}: {described}", self.width)
        if self.style and label:
            line = self.styled(label, _BOLD) + line[len(label) :]
        if block.get("hint"):
            line += "\n" + self.styled(wrap(text_of(block["hint"]), self.width, "  ┆ "), _DIM)
        return line


def _fields(fields: list[str], width: int) -> str:
    column = (width - 4) // 2
    if any(display_width(line) > column for f in fields for line in f.split("\n")):
        return "\n".join(wrap(f, width) for f in fields)
    rows: list[str] = []
    for i in range(0, len(fields), 2):
        left = fields[i].split("\n")
        right = fields[i + 1].split("\n") if i + 1 < len(fields) else []
        for j in range(max(len(left), len(right))):
            a = left[j] if j < len(left) else ""
            b = right[j] if j < len(right) else ""
            rows.append((a + " " * (column + 4 - display_width(a)) + b).rstrip())
    return "\n".join(rows)


def element_options(element: dict[str, Any]) -> list[dict[str, Any]]:
    """The options of a select, radio buttons or checkboxes element, groups flattened."""
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options.extend(group.get("options") or [])
    return options


def _describe_input(element: dict[str, Any]) -> str:
    kind = element.get("type", "?")
    placeholder = text_of(element.get("placeholder"))
    if kind == "plain_text_input":
        what = "text, several lines" if element.get("multiline") else "text"
        return f"[{what}]" + (f" {placeholder}" if placeholder else "")
    if kind in {"static_select", "radio_buttons", "checkboxes", "multi_static_select"}:
        names = [text_of(o.get("text")) for o in element_options(element)]
        initial = element.get("initial_option")
        chosen = f" (default: {text_of(initial.get('text'))})" if initial else ""
        many = kind in {"checkboxes", "multi_static_select"}
        return ("[choose any of] " if many else "[choose one of] ") + " / ".join(names) + chosen
    if kind in {"users_select", "multi_users_select"}:
        initial = element.get("initial_user")
        return "[a person]" + (f" (default: @{initial})" if initial else "")
    if kind in {"conversations_select", "channels_select"}:
        return "[a channel]"
    return f"[{kind}]" + (f" {placeholder}" if placeholder else "")


def _emoji(node: dict[str, Any]) -> str:
    try:
        return "".join(chr(int(part, 16)) for part in node["unicode"].split("-"))
    except (KeyError, ValueError, AttributeError):
        return f":{node.get('name', '')}:"


def _rich_text(block: dict[str, Any]) -> str:
    def walk(node: dict[str, Any]) -> str:
        kind = node.get("type")
        if kind == "text":
            return str(node.get("text", ""))
        if kind == "link":
            text, url = node.get("text"), node.get("url", "")
            return f"{text} ({url})" if text and text != url else url
        if kind == "user":
            return "@" + str(node.get("user_id", ""))
        if kind == "channel":
            return "#" + str(node.get("channel_id", ""))
        if kind == "emoji":
            return _emoji(node)
        children = "".join(walk(child) for child in node.get("elements", []))
        if kind == "rich_text_list":
            return "\n".join("• " + walk(child) for child in node.get("elements", []))
        if kind == "rich_text_preformatted":
            return "\n" + children + "\n"
        if kind == "rich_text_quote":
            return "> " + children
        return children

    return walk(block).strip("\n")


# --- public API -------------------------------------------------------------------------------


def render_blocks(
    blocks: list[dict[str, Any]], *, first_number: int = 1, width: int = WIDTH, style: bool = False
) -> str:
    """Blocks as terminal text; buttons numbered from ``first_number``."""
    return _Renderer(first_number=first_number, width=width, style=style).blocks(blocks or [])


def find_buttons(blocks: list[dict[str, Any]]) -> list[Button]:
    """The buttons of ``blocks`` in the order :func:`render_blocks` numbers them."""
    renderer = _Renderer(first_number=1, width=WIDTH, style=False)
    renderer.blocks(blocks or [])
    return renderer.buttons


def render_view(
    view: dict[str, Any], *, first_number: int = 1, width: int = WIDTH, style: bool = False
) -> str:
    """A modal (or Home tab) view: its title boxed, its blocks, its submit / close buttons."""
    title = text_of(view.get("title")) or ("App Home" if view.get("type") == "home" else "Modal")
    bar = "─" * (display_width(title) + 2)
    lines = [f"┌{bar}┐", f"│ {title} │", f"└{bar}┘"]
    body = render_blocks(
        view.get("blocks") or [], first_number=first_number, width=width, style=style
    )
    if body:
        lines.append(body)
    footer = []
    if view.get("close"):
        footer.append(f"({text_of(view['close'])})")
    if view.get("submit"):
        footer.append(f"({text_of(view['submit'])} ▸)")
    if footer:
        lines.append("  ".join(footer))
    return "\n".join(lines)


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def payload_blocks(params: dict[str, Any]) -> list[dict[str, Any]]:
    """The blocks of a message payload (``blocks`` may arrive as a JSON string)."""
    blocks = _maybe_json(params.get("blocks"))
    return blocks if isinstance(blocks, list) else []


def payload_view(params: dict[str, Any]) -> dict[str, Any] | None:
    view = _maybe_json(params.get("view"))
    return view if isinstance(view, dict) else None


def payload_buttons(params: dict[str, Any]) -> list[Button]:
    """The buttons of a message or view payload, in rendering order."""
    view = payload_view(params)
    if view is not None:
        return find_buttons(view.get("blocks") or [])
    buttons = find_buttons(payload_blocks(params))
    for attachment in _maybe_json(params.get("attachments")) or []:
        if isinstance(attachment, dict):
            buttons.extend(find_buttons(attachment.get("blocks") or []))
    return buttons


def render_payload(
    params: dict[str, Any], *, first_number: int = 1, width: int = WIDTH, style: bool = False
) -> str:
    """A message (chat.postMessage, response_url, an ack body) or a view call, as text."""
    view = payload_view(params)
    if view is not None:
        return render_view(view, first_number=first_number, width=width, style=style)
    parts: list[str] = []
    blocks = payload_blocks(params)
    number = first_number
    if blocks:
        parts.append(render_blocks(blocks, first_number=number, width=width, style=style))
        number += len(find_buttons(blocks))
    elif params.get("text"):
        parts.append(wrap(mrkdwn_to_text(str(params["text"])), width))
    for attachment in _maybe_json(params.get("attachments")) or []:
        if not isinstance(attachment, dict):
            continue
        inner = attachment.get("blocks") or []
        if inner:
            text = render_blocks(inner, first_number=number, width=width - 2, style=style)
            number += len(find_buttons(inner))
        else:
            text = wrap(mrkdwn_to_text(attachment.get("text") or attachment.get("fallback") or ""))
        parts.append("\n".join("▌ " + line for line in text.split("\n")))
    return "\n".join(part for part in parts if part)
