"""Persistence: SQLModel tables, encryption of secrets, engine and migrations."""
