"""cds_hooks."""
