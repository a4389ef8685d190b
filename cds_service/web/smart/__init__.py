"""SMART on FHIR app (EHR launch) opened from the risk card."""
