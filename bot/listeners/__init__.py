"""Thin Slack adapters: ack -> parse -> call a service -> render -> send."""

from __future__ import annotations

from slack_bolt import App

from bot.ids import COMMAND, Action, Callback
from bot.listeners import actions, commands, errors, home, views


def register_listeners(app: App) -> None:
    app.command(COMMAND)(commands.handle_apikey)
    app.view_submission(Callback.REGISTER.value)(views.handle_register_submission)
    app.action(Action.STATUS_PAGE.value)(actions.handle_status_page)
    app.action(Action.REMOVE_CONFIRM.value)(actions.handle_remove_confirm)
    app.action(Action.REMOVE_CANCEL.value)(actions.handle_remove_cancel)
    app.action(Action.REGISTER_OPEN.value)(actions.handle_register_open)
    app.event("app_home_opened")(home.handle_app_home_opened)
    app.error(errors.handle_error)
