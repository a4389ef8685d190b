"""Logs, traces and stage timings without patient data: JSON logs through a tested scrubber, one
span per CDS call, and the stage timer behind both ``Server-Timing`` and the span attributes."""

from cds_service.observability.logs import configure_logging, scrub
from cds_service.observability.stage_timer import STAGES, StageTimer
from cds_service.observability.traces import configure_tracing, tracer

__all__ = ["STAGES", "StageTimer", "configure_logging", "configure_tracing", "scrub", "tracer"]
