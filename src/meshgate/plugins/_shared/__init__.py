"""Helpers shared by several bundled plugins (not a plugin: the leading ``_`` keeps discovery
away): cheap request facts for the log phase, bounded batch queues, a small HTTP client."""
