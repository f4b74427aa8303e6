"""``vidfm serve``: the HTTP API, its jobs, limits and metrics, and the web page."""

from vidfm.serve.app import create_app
from vidfm.serve.config import Limits, ServeConfig

__all__ = ["Limits", "ServeConfig", "create_app"]
