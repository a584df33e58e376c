"""Instruments and logs, below everything they observe: the Prometheus instruments and their
``record_*`` functions (``metrics``), JSON log lines (``json_logs``) and Bolt's dispatch
timing and Slack retries (``slack``). They import nothing of the bot above them, so the Slack
plumbing, the job queue and the handlers may all record into them. The HTTP routes that serve
the figures are in ``bot.operations``."""
