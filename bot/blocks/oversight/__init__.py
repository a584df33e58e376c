"""Screens of least privilege: status reports and permission changes (pure)."""
