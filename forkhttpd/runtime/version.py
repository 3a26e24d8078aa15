"""forkhttpd's version, written once: pyproject.toml reads it for the package metadata, and
--version, WSGI's SERVER_SOFTWARE and the metrics' build information use it; imports nothing
from forkhttpd (it sits in runtime/, below every layer that shows it, and a worker pays
nothing for it)."""

from __future__ import annotations

import sys

__all__ = ["SERVER_SOFTWARE", "__version__", "build_info"]

__version__ = "0.1.0.dev0"

SERVER_SOFTWARE = f"forkhttpd/{__version__}"


def build_info() -> dict[str, str]:
    """Labels for a forkhttpd_build_info metric: what runs, under which Python."""
    import platform  # only here: workers import this module and never need it

    return {
        "version": __version__,
        "python_version": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": sys.platform,
    }
