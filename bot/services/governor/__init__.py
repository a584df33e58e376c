"""The governor: with a master account's governor key the bot creates, rotates and deletes its
sub-accounts' keys through Binance's sub-account API (bot.binance.governor), so no person
handles a secret and a leaked key dies in seconds.

``registration`` (an admin registers the governor), ``calls`` (every call audited and
announced), ``minting`` (a key created in Binance), ``containment`` (a reported key deleted or
quarantined).
"""
