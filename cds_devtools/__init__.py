"""Developer tools (synthetic cohort, simulation): run from a checkout, not shipped in the wheel."""
