"""Rotation: schedules and reminders, and the rotation itself until Binance rejects the old
key and the sink holds the new one."""
