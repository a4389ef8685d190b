"""Quality-team dashboard (``/dashboard``): aggregate figures over the audited cards, monitoring
results and deployment records, behind OpenID Connect sign-in (or a development user).

Public API: ``router`` (mounted by the app factory), ``DashboardUser`` and ``OidcClient``.
Inside: ``routes`` (HTTP), ``deps`` (the signed-in user), ``auth`` (OIDC), ``queries`` (SQL),
``pages``/``layout``/``panels``/``charts`` (HTML and SVG), ``responses`` (headers, cookies).
"""

from cds_service.web.dashboard.auth import DashboardUser, OidcClient
from cds_service.web.dashboard.routes import router

__all__ = ["DashboardUser", "OidcClient", "router"]
