"""Health, readiness and Prometheus metrics of the bot, in both serving modes.

``start_observability`` (``bot.observability.routes``) starts the background checks and gives
the probes (``/healthz``, ``/readyz``) and the metrics route (``/metrics``) as plain callables
that whichever HTTP server runs answers with: HTTP mode's, or ``bot.observability.server`` in
Socket Mode and for metrics on a port of their own. The instruments live in
``bot.observability.metrics``; product code records into them through its ``record_*``
functions, which import nothing else of the bot (so jobs and Slack plumbing may use them).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    # Lazy: bot.jobs and bot.slack import bot.observability.metrics, and the routes import them.
    if name in ("start_observability", "Observability", "Route"):
        from bot.observability import routes

        return getattr(routes, name)
    raise AttributeError(name)
