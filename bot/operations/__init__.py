"""The process's operational HTTP surface: health (``/healthz``), readiness (``/readyz``) and
Prometheus metrics (``/metrics``), in both serving modes.

``start_observability`` (``routes``) starts the background checks (``checks``, ``readiness``)
and gives the probes and the metrics route as plain callables that whichever HTTP server runs
answers with: HTTP mode's, or ``server`` in Socket Mode and for metrics on a port of their own.
The collectors (``collectors``) read the database at scrape time. The instruments themselves
live lower, in ``bot.observability``, so that Slack plumbing and the job queue can record
into them."""
