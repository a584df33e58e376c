"""The App Home tab: the viewer's keys at a glance."""

from __future__ import annotations

from sqlmodel import Session

from bot.blocks.home import home_view
from bot.services.context import Services
from bot.services.keys import list_keys


def handle_app_home_opened(event: dict, body: dict, client, services: Services) -> None:
    if event.get("tab") not in (None, "home"):
        return
    user_id = event["user"]
    team_id = body.get("team_id") or event.get("view", {}).get("team_id")
    with Session(services.engine) as session:
        keys = list_keys(session, team_id)
    own = [k for k in keys if k.owner_user_id == user_id]
    view = home_view(user_id=user_id, own_keys=own, team_keys_count=len(keys), now=services.clock())
    client.views_publish(user_id=user_id, view=view)
