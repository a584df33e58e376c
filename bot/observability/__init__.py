"""Health, readiness and Prometheus metrics of the bot, in both serving modes.

``observability_routes`` (``bot.observability.routes``) gives the three GET routes
(``/healthz``, ``/readyz``, ``/metrics``) as plain callables that whichever HTTP server runs
answers with: HTTP mode's, or ``bot.observability.server`` in Socket Mode. The instruments live
in ``bot.observability.metrics``; product code records into them through its ``record_*``
functions, which import nothing else of the bot (so jobs and Slack plumbing may use them).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: bot.jobs and bot.slack import bot.observability.metrics, and the routes import them.
    if name in ("observability_routes", "Route"):
        from bot.observability import routes

        return getattr(routes, name)
    raise AttributeError(name)
