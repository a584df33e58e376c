"""Four eyes: changes that widen what money a key can move wait for another person.

``holding`` decides what needs approval and holds it (sealed) as a request; ``decisions``
approves, denies, withdraws and expires requests, and carries an approved one out after
checking with Binance that the key is still what was approved.
"""
