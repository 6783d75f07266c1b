"""The web dashboard and its JSON API (Starlette); see docs/OBSERVABILITY.md."""

from main.web.dashboard.app import dashboard_app

__all__ = ["dashboard_app"]
