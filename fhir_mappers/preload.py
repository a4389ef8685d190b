"""Imported by the forkserver of ``fhir_mappers.jobs`` before it forks the workers.

What every worker would otherwise build for itself (the UCUM unit registry takes a second or more)
is built once in the server and shared by the forked workers, copy on write.
"""

from fhir_mappers.units import DEFAULT_CONVERTER

DEFAULT_CONVERTER.load()
