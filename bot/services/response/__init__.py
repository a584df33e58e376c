"""Responding to a leak: leak detection, the incident and its checklist, probes of Binance,
the activity review, false alarms, and paging."""
