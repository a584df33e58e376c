"""Screens of rotation: the rotate form, reminders, progress and the overview (pure)."""
