"""``demo governor``: a scripted walk through the governor, run by the console as if typed.

An admin makes the bot the governor of the demo master account, the bot creates a trading key
in a sub-account without anyone seeing a secret, the key leaks, the bot deletes it through
Binance's API the moment it is reported, proving it by probing, and one click makes its
successor. Zero-touch rotation is not built yet, so the walk does not show it.
"""

from __future__ import annotations

# Console lines, as in ``demo drill``: "##" lines are said, not run ("##  " continues the
# previous one); the answers to a form follow its command, one a line.
GOVERNOR_DEMO = """\
## 1. Trading teams put each bot in its own Binance sub-account. The demo master account
##    "demo" gets one, for the market-making bot.
binance sub-account add maker-bot@example.com
## 2. You, an admin, make the bot the governor of "demo": the bot generates a key pair and
##    asks for a key with only what sub-account key management needs.
/apikey governor demo
## In Binance you create that key from the bot's public key (here the sandbox does it), then
##  enter its API key. The bot finds the sub-accounts it may now manage.
binance self-generated governor-demo trade
press Enter the API key
!demo

## 3. Olivia, a key owner, asks for a trading key in the sub-account: key type "the bot
##    creates it in Binance", and the address of her service. Nobody sees or pastes a secret.
as @olivia
/apikey register
maker-bot
maker-bot@example.com

2
1


203.0.113.7


## What Binance now holds for the sub-account: the key, restricted to the service and the bot.
binance sub-accounts
## 4. The key leaks. Olivia reports it compromised: the bot deletes it through Binance's API at
##    once, then signs a request with the key itself to prove Binance now rejects it.
/apikey compromised maker-bot
## 5. Contained: step 1 of the checklist is ticked by the bot, with the time from the report.
##    Binance holds the key no more:
binance sub-accounts
## 6. The checklist now offers a successor. Olivia presses it: the governor makes a new key with
##    the same permissions and IP list, under the same label. (With a credential sink, such as
##    SINK_FILE_DIR, the bot writes it where the old key was; this sandbox has none.)
press Create a successor
binance sub-accounts
/apikey incidents
"""

INTRO = (
    "The governor: a governor key for a master account → a key created in a sub-account by "
    "the bot → the key leaks → deleted through Binance's API in seconds → its successor"
)
OUTRO = (
    "\nThe walk is over: the leaked key was dead, and its successor made, before anyone opened "
    "Binance. Steps 2 to 5 of the checklist are still for people (press their buttons), then "
    "the incident can be closed. Type help for more."
)


def governor_demo_lines() -> list[str]:
    return GOVERNOR_DEMO.splitlines()
