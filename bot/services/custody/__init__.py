"""Custody of keys: registration and generated pairs, edits, the sealed secrets, and delivery
of credentials to secret sinks (each key's destination owned by it)."""
