"""Authlib's OAuth 2.0 client over httpx, imported in one place for both sign-in flows.

Authlib 1.6+ prefers the httpx2 package and warns when it falls back to httpx (which is what
this service uses); the fallback is the supported path here. ``authlib.deprecate`` installs its
own "always" filter on import: import it first, then put ours in front.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    import authlib.deprecate  # type: ignore[import-untyped]  # noqa: F401

    warnings.filterwarnings("ignore", "The httpx module is deprecated", DeprecationWarning)
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
        OAuthError,
    )

__all__ = ["AsyncOAuth2Client", "OAuthError"]
