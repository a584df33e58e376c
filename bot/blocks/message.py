"""A rendered message: the notification fallback text and its blocks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.models.blocks import Block, ContextBlock, MarkdownTextObject, SectionBlock
from slack_sdk.models.views import View

from bot.blocks.text import MAX_CONTEXT_TEXT, MAX_FALLBACK_TEXT, MAX_SECTION_TEXT, truncate


@dataclass(frozen=True)
class Message:
    text: str  # notification / accessibility fallback (mrkdwn, already escaped)
    blocks: list[Block]

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``chat_postMessage``, ``respond``, ``ack``…"""
        return {
            "text": truncate(self.text, MAX_FALLBACK_TEXT),
            "blocks": [block.to_dict() for block in self.blocks],
        }


def section(text: str) -> SectionBlock:
    """A mrkdwn section; ``text`` is already escaped where it quotes people."""
    return SectionBlock(text=MarkdownTextObject(text=truncate(text, MAX_SECTION_TEXT)))


def shown_view(title: str, *content: str | Block, close: str = "Close") -> View:
    """A modal that only shows something (an outcome, a wait): no inputs, no submit button.
    ``content``: mrkdwn texts (each a section) or blocks."""
    blocks = [section(c) if isinstance(c, str) else c for c in content]
    return View(type="modal", title=title, close=close, blocks=blocks)


def context(*texts: str) -> ContextBlock:
    return ContextBlock(
        elements=[MarkdownTextObject(text=truncate(t, MAX_CONTEXT_TEXT)) for t in texts[:10]]
    )


def fit_lines(
    lines: Sequence[str], *, max_blocks: int, max_chars: int, line_limit: int = 1000
) -> tuple[list[SectionBlock], int]:
    """Sections holding as many of ``lines`` (in order) as fit in the budget.

    Each line is cut to ``line_limit``; sections stay within Slack's 3000 characters; the
    sections together use at most ``max_blocks`` blocks and ``max_chars`` characters.
    Returns the sections and how many lines they show (the caller says what was left out).
    """
    chunks: list[list[str]] = []
    used = 0
    shown = 0
    for line in lines:
        line = truncate(line, min(line_limit, MAX_SECTION_TEXT))
        size = len("\n".join(chunks[-1])) if chunks else 0
        if chunks and size + 1 + len(line) <= MAX_SECTION_TEXT:
            if used + 1 + len(line) > max_chars:
                break
            chunks[-1].append(line)
            used += 1 + len(line)
        else:
            if len(chunks) >= max_blocks or used + len(line) > max_chars:
                break
            chunks.append([line])
            used += len(line)
        shown += 1
    return [section("\n".join(chunk)) for chunk in chunks], shown
