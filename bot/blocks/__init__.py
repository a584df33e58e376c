"""Pure Block Kit builders, one module per screen (slack_sdk.models; no I/O, no clock).

Every builder takes plain data (and ``now`` when it shows ages) and returns a ``Message`` or a
``View`` that stays within Slack's limits whatever the data: long or hostile text is escaped,
truncated with "…", and the message says when something was left out.
"""
