"""Quality-team dashboard (`/dashboard`), behind OpenID Connect sign-in."""
