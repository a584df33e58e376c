"""Where the bot may post an answer whose URL came inside a request.

Slack gives every slash command and interactive payload a ``response_url`` on its own hooks host
(``https://hooks.slack.com/commands/…``, ``…/actions/…``:
https://api.slack.com/interactivity/handling#message_responses). A URL anywhere else cannot be
Slack's, so nothing is posted to it: the bot would otherwise send messages wherever a request
told it to. The host of the configured ``SLACK_API_URL`` is allowed too (the local stand-in
serves both the Web API and ``response_url``).
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from slack_bolt import BoltContext

log = logging.getLogger(__name__)

SLACK_HOOKS = ("https", "hooks.slack.com", 443)
_DEFAULT_PORTS = {"https": 443, "http": 80}


def _origin(url: str) -> tuple[str, str, int] | None:
    try:
        split = urlsplit(url)
        port = split.port or _DEFAULT_PORTS.get(split.scheme)
    except ValueError:
        return None
    if not split.hostname or port is None or split.username or split.password:
        return None
    return split.scheme, split.hostname.lower(), port


def without_query(url: str) -> str:
    """The URL for a log line: scheme, host and path, never the query or credentials."""
    try:
        split = urlsplit(url)
        host = split.hostname or "?"
        port = f":{split.port}" if split.port else ""
    except ValueError:
        return "(an unparsable URL)"
    return f"{split.scheme}://{host}{port}{split.path}"[:200]


class ResponseUrlPolicy:
    def __init__(self, slack_api_url: str) -> None:
        self._allowed = {SLACK_HOOKS}
        configured = _origin(slack_api_url)
        if configured is not None:
            self._allowed.add(configured)

    def allows(self, url: object) -> bool:
        return isinstance(url, str) and _origin(url) in self._allowed

    def scrub(self, context: BoltContext) -> None:
        """Forget a ``response_url`` outside Slack's hosts, so ``respond`` cannot post to it
        (Bolt builds ``respond`` from ``context.response_url``; without one it refuses)."""
        url = context.get("response_url")
        if url is None or self.allows(url):
            return
        log.warning("refused a response_url outside Slack: %s", without_query(str(url)))
        context["response_url"] = None
        context.pop("respond", None)
