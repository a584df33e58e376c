"""Thin Slack adapters: ack -> parse -> call a service -> render -> send."""

from __future__ import annotations

from collections.abc import Callable

from slack_bolt import App

from bot.ids import COMMAND, Action, Callback
from bot.listeners import (
    actions,
    approvals,
    commands,
    errors,
    governed_rotation,
    home,
    incidents,
    key_menu,
    key_pairs,
    leaks,
    rotation,
    successor,
    views,
)

# Values are Bolt listeners: Bolt injects each argument by its name.
Listener = Callable[..., None]

COMMAND_LISTENERS: dict[str, Listener] = {COMMAND: commands.handle_apikey}
EVENT_LISTENERS: dict[str, Listener] = {
    "app_home_opened": home.handle_app_home_opened,
    "message": leaks.handle_message,
}
VIEW_LISTENERS: dict[Callback, Listener] = {
    Callback.REGISTER: views.handle_register_submission,
    Callback.ROTATE: rotation.handle_rotate_submission,
    Callback.INCIDENT_CLOSE: incidents.handle_close_submission,
    Callback.INCIDENT_COMMANDER: incidents.handle_commander_submission,
    Callback.PAIR_COMPLETE: key_pairs.handle_pair_submission,
}
ACTION_LISTENERS: dict[Action, Listener] = {
    Action.STATUS_PAGE: actions.handle_status_page,
    Action.REMOVE_CONFIRM: actions.handle_remove_confirm,
    Action.REMOVE_CANCEL: actions.handle_remove_cancel,
    Action.REGISTER_OPEN: actions.handle_register_open,
    Action.HOME_CHECK: home.handle_home_check,
    Action.HOME_CHECK_ALL: home.handle_home_check,
    Action.ROTATE_NOW: rotation.handle_rotate_now,
    Action.SNOOZE: rotation.handle_snooze,
    Action.ROTATION_NEW_KEY_IN_USE: governed_rotation.handle_new_key_in_use,
    Action.INCIDENT_RAISE: incidents.handle_raise_button,
    Action.INCIDENT_TICK: incidents.handle_tick,
    Action.INCIDENT_CLOSE: incidents.handle_close_button,
    Action.INCIDENT_COMMANDER: incidents.handle_commander_button,
    Action.INCIDENT_SUCCESSOR: successor.handle_successor_button,
    Action.KEY_MENU: key_menu.handle_key_menu,
    Action.PAIR_ENTER_KEY: key_pairs.handle_enter_key,
    Action.APPROVAL_APPROVE: approvals.handle_approve,
    Action.APPROVAL_DENY: approvals.handle_deny,
    Action.APPROVAL_WITHDRAW: approvals.handle_withdraw,
}


def register_listeners(app: App) -> None:
    for command, listener in COMMAND_LISTENERS.items():
        app.command(command)(errors.polite(listener, kind="command"))
    for event, on_event in EVENT_LISTENERS.items():
        app.event(event)(errors.polite(on_event, kind="event"))
    for callback_id, on_view in VIEW_LISTENERS.items():
        app.view_submission(callback_id.value)(errors.polite(on_view, kind="view"))
    for action_id, on_action in ACTION_LISTENERS.items():
        app.action(action_id.value)(errors.polite(on_action, kind="action"))
    app.error(errors.handle_error)
