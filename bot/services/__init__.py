"""Governance logic. Imports nothing from slack_bolt: services are tested directly."""
