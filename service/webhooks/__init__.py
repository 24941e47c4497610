"""Outbound webhooks: signed deliveries of job events (docs/guides/automation.md)."""
