"""Screens of a leak response: the live checklist, leak warnings, activity (pure)."""
