"""Screens of key custody: registering, generated pairs, edits, removal, the key list and
menus, and credential delivery (pure)."""
