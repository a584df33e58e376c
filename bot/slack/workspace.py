"""Which workspace a request acts in: every field Slack names it in, read once, and checked.

Slack names the workspace (and, in an Enterprise Grid, the organisation) in several fields of
one request, by kind:

- slash commands: ``team_id``, ``enterprise_id``
  (api.slack.com/interactivity/slash-commands, "app_command_handling");
- interactivity payloads: ``team`` ("The workspace where the view was submitted from. Null if
  the app is org-installed"; in a grid it also has ``enterprise_id``), ``user.team_id`` ("will
  report an enterprise organization ID (which starts with an E) instead of team ID (which
  starts with a T), when using an Enterprise organization"), ``view.team_id``,
  ``view.app_installed_team_id`` (the installation's workspace, when the modal was opened from
  another one through a Slack Connect channel), ``enterprise``
  (api.slack.com/reference/interaction-payloads/views and /block-actions);
- Events API: ``team_id``, ``enterprise_id`` and ``authorizations`` (one installation the event
  is visible to: ``team_id``, ``enterprise_id``) (docs.slack.dev/apis/events-api). In an
  externally shared channel (``is_ext_shared_channel``) the outer ``team_id`` and
  ``enterprise_id`` name the workspace the channel belongs to, which may be another one; only
  ``authorizations`` names this installation there (bolt-python's ``extract_team_id``;
  slackapi/java-slack-sdk#629).

Fields may legitimately be absent (``team`` is null for an org-wide install; old events have no
``authorizations``), so only the fields present are compared. When they name more than one
workspace or organisation, or one that is not the installation's, the request is refused; else
the one workspace they name (or the installation's, when none is named) is the one it acts in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class Installation:
    """Where the bot is installed, as far as it knows (``auth.test``, or SLACK_TEAM_ID)."""

    team_id: str | None
    enterprise_id: str | None = None


@dataclass(frozen=True)
class Claim:
    """One field of a request that names a workspace or organisation."""

    field: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}={self.value}"


class Refusal(StrEnum):
    DISAGREEING = "the request's workspace fields disagree"
    ANOTHER_WORKSPACE = "another workspace"
    NO_WORKSPACE = "no workspace named"


@dataclass(frozen=True)
class WorkspaceCheck:
    """The verdict on one request: the workspace it acts in, or why it is refused (with the
    claims that tell why: every claim when they disagree, else those naming another one)."""

    team_id: str | None
    refusal: Refusal | None = None
    evidence: tuple[Claim, ...] = ()


def check_workspace(body: Mapping[str, Any], installation: Installation) -> WorkspaceCheck:
    """The workspace ``body`` acts in, once every field naming one agrees with the others and
    with ``installation``."""
    claims = tuple(workspace_claims(body))
    teams = {c.value for c in claims if not _is_enterprise(c.value)}
    enterprises = {c.value for c in claims if _is_enterprise(c.value)}
    if len(teams) > 1 or len(enterprises) > 1:
        return WorkspaceCheck(installation.team_id, Refusal.DISAGREEING, claims)
    ours = {installation.team_id, installation.enterprise_id} - {None}
    team = next(iter(teams), None)
    enterprise = next(iter(enterprises), None)
    if (team and installation.team_id and team != installation.team_id) or (
        enterprise and installation.enterprise_id and enterprise != installation.enterprise_id
    ):
        foreign = tuple(c for c in claims if c.value not in ours)
        return WorkspaceCheck(installation.team_id, Refusal.ANOTHER_WORKSPACE, foreign)
    acting = team or installation.team_id
    if not acting:
        return WorkspaceCheck(None, Refusal.NO_WORKSPACE, claims)
    return WorkspaceCheck(acting)


def workspace_claims(body: Mapping[str, Any]) -> Iterator[Claim]:
    """Every field of ``body`` present that names a workspace or an organisation."""
    if "command" in body:  # a slash command's form fields
        named = [("team_id", body.get("team_id")), ("enterprise_id", body.get("enterprise_id"))]
    elif body.get("type") == "event_callback":
        named = _event_fields(body)
    else:
        named = _interactivity_fields(body)
    for field, value in named:
        if value is None or value == "":
            continue
        yield Claim(field, value if isinstance(value, str) else repr(value))


def _event_fields(body: Mapping[str, Any]) -> list[tuple[str, Any]]:
    authorizations = body.get("authorizations")
    first = authorizations[0] if isinstance(authorizations, list) and authorizations else {}
    first = first if isinstance(first, Mapping) else {}
    named = [
        ("authorizations[0].team_id", first.get("team_id")),
        ("authorizations[0].enterprise_id", first.get("enterprise_id")),
    ]
    if body.get("is_ext_shared_channel") is not True:
        named += [("team_id", body.get("team_id")), ("enterprise_id", body.get("enterprise_id"))]
    return named


def _interactivity_fields(body: Mapping[str, Any]) -> list[tuple[str, Any]]:
    team = _object(body.get("team"))
    user = _object(body.get("user"))
    view = _object(body.get("view"))
    enterprise = body.get("enterprise")
    return [
        ("team.id", team.get("id")),
        ("team.enterprise_id", team.get("enterprise_id")),
        ("user.team_id", user.get("team_id")),
        ("view.team_id", view.get("team_id")),
        ("view.app_installed_team_id", view.get("app_installed_team_id")),
        (
            "enterprise.id",
            enterprise if isinstance(enterprise, str) else _object(enterprise).get("id"),
        ),
    ]


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_enterprise(value: str) -> bool:
    """Slack's organisation ids start with E, workspace ids with T (the docs above)."""
    return value.startswith("E")
