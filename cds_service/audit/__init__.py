"""The audit trail of cards: one typed row per card shown and per shadow prediction, written to
SQL, and spooled to local disk (never lost) while the database is unreachable."""

from cds_service.audit.rows import AuditRow, CallSubject, ModelIdentity, Verdict
from cds_service.audit.spool import Spool
from cds_service.audit.writer import AuditWriter

__all__ = ["AuditRow", "AuditWriter", "CallSubject", "ModelIdentity", "Spool", "Verdict"]
