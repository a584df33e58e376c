"""The sandbox's terminal: the lines the person reads and the answers they type.

The same console runs at a terminal and from a piped script. From a script, every answer read is
echoed (secrets as a mask), so that a transcript reads like the session it replays.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from typing import TextIO


class Terminal:
    """Lines out, answers in. ``read_line`` and ``read_secret`` behave like ``input`` and
    ``getpass.getpass``: they show the prompt and raise EOFError at the end of the input."""

    def __init__(
        self,
        *,
        out: TextIO,
        read_line: Callable[[str], str],
        read_secret: Callable[[str], str],
        echo: bool,
    ) -> None:
        self.out = out
        self._read_line = read_line
        self._read_secret = read_secret
        self.echo = echo  # stdin is not a terminal: show what was read, so transcripts make sense
        self._queued: list[str] = []  # answers a scripted walk (``demo drill``) types
        self.scripted_only = False  # while a walk runs: no fed answer left ends the input

    def feed(self, lines: list[str]) -> None:
        """Answer the next prompts with ``lines`` (shown as if typed) before reading input."""
        self._queued = list(lines) + self._queued

    def drop_fed(self) -> list[str]:
        """Forget the fed answers no prompt took; returns them."""
        left, self._queued = self._queued, []
        return left

    def _scripted(self, prompt: str, shown: str | None = None) -> str | None:
        if not self._queued:
            if self.scripted_only:
                raise EOFError
            return None
        line = self._queued.pop(0)
        self.say(prompt + (line if shown is None else shown))
        return line

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def ask(self, prompt: str) -> str:
        scripted = self._scripted(prompt)
        if scripted is not None:
            return scripted
        line = self._read_line(prompt)
        if self.echo:
            self.say(line)
        return line

    def ask_secret(self, prompt: str) -> str:
        scripted = self._scripted(prompt, "•••••• (hidden)")
        if scripted is not None:
            return scripted
        line = self._read_secret(prompt)
        if self.echo:
            self.say("•••••• (hidden)")
        return line

    def read_secret_line(self) -> str:
        """The next hidden line, with no prompt and no echo (a pasted PEM, line by line)."""
        if self._queued or self.scripted_only:
            line = self._scripted("", "")
            if line is None:  # _scripted raises EOFError rather than answer None here
                raise EOFError
            return line
        return self._read_secret("")

    def confirm(self, question: str) -> bool:
        """Yes unless the person answers otherwise; no when the input ends."""
        try:
            answer = self.ask(f"{question} [Y/n] ").strip().lower()
        except (EOFError, KeyboardInterrupt):
            return False
        return answer in {"", "y", "yes"}


def read_hidden(stdin: TextIO) -> Callable[[str], str]:
    """Secrets: getpass on a terminal; from a pipe, read a line without echoing it back."""
    if stdin.isatty():
        return getpass.getpass

    def read(prompt: str) -> str:
        if prompt:
            print(prompt, end="", flush=True)
        line = stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\n")

    return read


def indent(text: str, prefix: str = "  ") -> str:
    """Every non-empty line of ``text`` behind ``prefix``."""
    return "\n".join(prefix + line if line else line for line in text.split("\n"))


def loosely(text: str) -> str:
    """``text`` as typed answers are compared: lower case, runs of punctuation as one space."""
    return re.sub(r"[^\w]+", " ", text.lower()).strip()
