"""Clinical risk cards over CDS Hooks: the service, its CLI, training and audit."""

__version__ = "0.1.0"
