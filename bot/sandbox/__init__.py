"""Local stand-ins for Binance and Slack: used by tests, benchmarks and the offline sandbox."""
