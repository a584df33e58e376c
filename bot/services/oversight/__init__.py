"""Least privilege, watched: status from Binance, findings, the daily permission check
(drift), withdrawal controls and the daily activity review."""
