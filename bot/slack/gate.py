"""The door in front of Bolt for HTTP mode: verify, read, then dispatch; refuse cleanly.

Nothing reads a request body before its signature is proven: a forged, stale, future-dated or
header-less request is answered 401 and goes no further (no listener, no error handler, no
outbound call, no database write), and the log gets one line that never holds the body. A signed
body that is not one of Slack's shapes is answered 400 the same way. Bolt keeps its own check
behind this one.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from slack_bolt import App, BoltRequest

from bot.slack.payloads import MalformedRequest, parse_body
from bot.slack.response_urls import ResponseUrlPolicy
from bot.slack.signature import signature_problem

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def error_answer(status: int, error: str) -> Answer:
    body = json.dumps({"ok": False, "error": error}).encode()
    return Answer(status, body, {"content-type": "application/json; charset=utf-8"})


class SlackGate:
    def __init__(
        self,
        app: App,
        *,
        signing_secret: str,
        response_urls: ResponseUrlPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._signing_secret = signing_secret
        self._response_urls = response_urls
        self._clock = clock

    @property
    def app(self) -> App:
        return self._app

    def handle(
        self,
        *,
        body: bytes,
        headers: Mapping[str, str],
        query: str = "",
        client: str = "?",
    ) -> Answer:
        """``headers`` with lower-case names (first value of each)."""
        problem = signature_problem(
            signing_secret=self._signing_secret,
            body=body,
            timestamp=headers.get("x-slack-request-timestamp"),
            signature=headers.get("x-slack-signature"),
            now=self._clock(),
        )
        if problem:
            log.info("refused a request from %s: %s", client, problem)
            return error_answer(401, "invalid_signature")
        try:
            text = body.decode("utf-8")
            parse_body(text, headers.get("content-type"))
            request = BoltRequest(
                body=text, query=query, headers={k: [v] for k, v in headers.items()}
            )
        except UnicodeDecodeError:
            log.info("refused a signed request from %s: the body is not UTF-8", client)
            return error_answer(400, "invalid_body")
        except MalformedRequest as exc:
            log.info("refused a signed request from %s: %s", client, exc)
            return error_answer(400, "invalid_body")
        except Exception as exc:  # Bolt could not read what we could: still no traceback
            log.info(
                "refused a signed request from %s: unreadable (%s)", client, type(exc).__name__
            )
            return error_answer(400, "invalid_body")
        self._response_urls.scrub(request.context)
        try:
            response = self._app.dispatch(request)
        except Exception as exc:  # a bug of ours: the operator needs the traceback
            log.error("dispatching a request failed (%s)", type(exc).__name__, exc_info=True)
            return error_answer(500, "internal_error")
        answer_headers = {k: vs[0] for k, vs in response.headers.items() if vs}
        return Answer(response.status, (response.body or "").encode("utf-8"), answer_headers)


def gate_for(app: App, *, signing_secret: str, slack_api_url: str) -> SlackGate:
    """The gate of a bot configured with this signing secret and Slack API URL."""
    return SlackGate(
        app, signing_secret=signing_secret, response_urls=ResponseUrlPolicy(slack_api_url)
    )
