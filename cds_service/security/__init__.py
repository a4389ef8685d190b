"""Who may call and what is kept of whom: JWT verification of CDS clients (trusted issuers, their
key sets, replay protection of token ids) and keyed pseudonyms for audit rows.

``local_issuer`` signs tokens the way an EHR would, for the quick start, benchmarks and tests;
it is not part of the service's own checks and is not re-exported here.
"""

from cds_service.security.jwks import JwksCache, KeyUnavailable
from cds_service.security.jwt_auth import ALLOWED_ALGORITHMS, Authenticator, AuthError, Caller
from cds_service.security.pseudonym import pseudonym
from cds_service.security.replay import ReplayStore
from cds_service.security.trusted_callers import (
    TrustedCallersError,
    TrustedIssuer,
    load_trusted_callers,
    parse_trusted_callers,
)

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AuthError",
    "Authenticator",
    "Caller",
    "JwksCache",
    "KeyUnavailable",
    "ReplayStore",
    "TrustedCallersError",
    "TrustedIssuer",
    "load_trusted_callers",
    "parse_trusted_callers",
    "pseudonym",
]
