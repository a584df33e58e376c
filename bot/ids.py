"""Every Slack identifier the bot uses: the command, callback ids, action ids, block ids.

The manifest test checks manifest.yml against COMMAND and the events handled here.
"""

from __future__ import annotations

from enum import StrEnum

COMMAND = "/apikey"


class Callback(StrEnum):
    """callback_id of the modals."""

    REGISTER = "apikey_register"
    ROTATE = "apikey_rotate"
    INCIDENT_CLOSE = "apikey_incident_close"
    INCIDENT_COMMANDER = "apikey_incident_commander"  # hand over the incident command
    PAIR_COMPLETE = "apikey_pair_complete"  # the API key Binance made from a generated pair


class Action(StrEnum):
    """action_id of buttons and inputs."""

    REMOVE_CONFIRM = "apikey_remove_confirm"
    REMOVE_CANCEL = "apikey_remove_cancel"
    STATUS_PAGE = "apikey_status_page"
    REGISTER_OPEN = "apikey_register_open"
    HOME_CHECK = "apikey_home_check"  # the viewer's keys
    HOME_CHECK_ALL = "apikey_home_check_all"  # admins: every key
    ROTATE_NOW = "apikey_rotate_now"
    SNOOZE = "apikey_snooze"
    # "The service uses the new key": ends a governed rotation's overlap (value: the key id)
    ROTATION_NEW_KEY_IN_USE = "apikey_rotation_new_key_in_use"
    INCIDENT_RAISE = "apikey_incident_raise"
    INCIDENT_TICK = "apikey_incident_tick"
    INCIDENT_CLOSE = "apikey_incident_close"
    INCIDENT_COMMANDER = "apikey_incident_commander"  # opens the commander form
    INCIDENT_SUCCESSOR = "apikey_incident_successor"  # the governor makes a replacement key
    # the overflow menu beside each key (status, App Home); its options' values are
    # "<KeyMenuChoice>:<key id>"
    KEY_MENU = "apikey_key_menu"
    CLOSE_NOTE = "close_note"
    CLOSE_OUTCOME = "close_outcome"  # handled or false alarm (admins)
    COMMANDER = "commander"  # input of the commander form
    PAIR_ENTER_KEY = "apikey_pair_enter_key"  # opens the PAIR_COMPLETE form
    # a held change (value: the approval request's id): an approver's yes or no, the
    # requester taking it back
    APPROVAL_APPROVE = "apikey_approval_approve"
    APPROVAL_DENY = "apikey_approval_deny"
    APPROVAL_WITHDRAW = "apikey_approval_withdraw"
    PAIR_API_KEY = "pair_api_key"  # input of the PAIR_COMPLETE form
    # input of the rotate modal (with API_KEY, SECRET and KEY_TYPE below)
    ROTATE_CONFIRM = "rotate_confirm"
    # input of the register modal and of the PAIR_COMPLETE form: the owner accepts a key
    # beyond its declared purpose (or, for a rotation's pair, more than the old key)
    REGISTER_CONFIRM = "register_confirm"
    CREATE_IPS = "create_ips"
    CREATE_EXTRAS = "create_extras"
    PAIR_CONFIRM = "pair_confirm"
    # inputs of the register modal
    LABEL = "label"
    ACCOUNT = "account"
    OWNER = "owner"
    PURPOSE = "purpose"
    KEY_TYPE = "key_type"
    API_KEY = "api_key"
    SECRET = "secret"  # noqa: S105 - an action id, not a secret
    DELIVERY = "delivery"  # where the credentials go (shown when a secret sink is configured)


class KeyMenuChoice(StrEnum):
    """What an option of the KEY_MENU overflow menu asks for (its value: "<choice>:<key id>")."""

    DETAILS = "details"
    ROTATE = "rotate"
    REPORT = "report"  # report compromised: answered with a confirmation first
    INCIDENT = "incident"  # the key's open incident (a link to its checklist)
    REMOVE = "remove"


class Block(StrEnum):
    """block_id of the register modal's inputs (errors are reported against these)."""

    LABEL = "register_label"
    ACCOUNT = "register_account"
    OWNER = "register_owner"
    PURPOSE = "register_purpose"
    KEY_TYPE = "register_key_type"
    API_KEY = "register_api_key"
    SECRET = "register_secret"  # noqa: S105 - a block id, not a secret
    DELIVERY = "register_delivery"
    ROTATE_CONFIRM = "rotate_confirm"
    REGISTER_CONFIRM = "register_confirm"
    CREATE_IPS = "create_ips"
    CREATE_EXTRAS = "create_extras"
    PAIR_CONFIRM = "pair_confirm"
    CLOSE_NOTE = "incident_close_note"
    CLOSE_OUTCOME = "incident_close_outcome"
    COMMANDER = "incident_commander"
    PAIR_API_KEY = "pair_api_key"


# Events the app subscribes to (kept in step with manifest.yml by a test).
EVENTS = ("app_home_opened", "message")
