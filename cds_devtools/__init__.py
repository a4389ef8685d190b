"""Developer tools, run from a checkout and not shipped in the service wheel.

``python -m cds_devtools synth`` writes the project's synthetic FHIR cohort (training data for
the bundled models); ``python -m cds_devtools simulate`` replays signed calls over simulated days
for the monitoring demonstration.
"""

__all__: list[str] = []
