"""The one error shape of both sign-in flows (dashboard OpenID Connect, SMART EHR launch).

Both flows stop the same way: a status code and a sentence for the person at the screen (never
an identifier or a token), so routes handle them in one place and tests check one type.
"""

from __future__ import annotations

__all__ = ["SignInError"]


class SignInError(Exception):
    """A sign-in or launch that cannot go on: HTTP status, a message for the person, and the
    page's title."""

    def __init__(self, status: int, message: str, *, title: str = "Sign-in failed") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.title = title
