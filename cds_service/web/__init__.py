"""The browser side of the service: the quality team's dashboard and the clinicians' SMART app.

Subpackages: ``dashboard`` (``/dashboard``, OpenID Connect sign-in) and ``smart`` (``/smart``,
EHR launch). Shared by both: ``html`` and ``svg`` (escaped markup and charts), ``errors``
(``SignInError``), ``oauth`` (the OAuth client), ``sessions`` (``SessionStore``, server-side
sessions in the database), ``deps`` (their FastAPI dependencies) and ``markdown`` (sanitized
Markdown for model cards).

Nothing is imported here: ``cds_service.state`` imports ``web.sessions``, and the routes import
``cds_service.deps`` (which imports ``state``), so an import in this file would close a cycle.
"""

__all__ = ["dashboard", "deps", "errors", "html", "markdown", "oauth", "sessions", "smart", "svg"]
