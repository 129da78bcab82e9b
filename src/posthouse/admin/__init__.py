"""Running it: backup and restore, status, metrics (the `posthouse` admin commands
and what the server runs for them)."""
