"""Inbox folders: observers, settle tracking, rescans, ignore rules, the done/failed policy."""
