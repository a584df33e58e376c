"""Slack infrastructure: what stands between Slack's HTTP requests and the listeners."""
