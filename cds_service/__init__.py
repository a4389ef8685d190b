"""Clinical risk cards over CDS Hooks.

The request path reads in the order of its subpackages: ``cds_hooks`` (routes, wire schemas,
prefetch, pipeline, cards) -> ``security`` (who is calling) -> ``serving`` (hook definitions,
models) -> ``audit`` (one row per card) -> ``db``. Batch paths: ``training``, ``lifecycle``,
``monitoring``. ``web`` holds the dashboard and the SMART app, ``cli`` the commands. The app is
built by ``cds_service.main.create_app``; docs/architecture.md walks the tree.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
