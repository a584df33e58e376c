"""apikey-bot: govern a team's Binance API keys from Slack."""
