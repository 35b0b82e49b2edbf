"""Plain data: records, findings, configuration (stdlib only)."""
