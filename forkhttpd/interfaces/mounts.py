"""Mount, a URL prefix served from a directory (the value type of --static and --cgi-dir); a
module of its own so that an exec'd zygote can rebuild the settings without importing the
settings machinery; must import nothing from forkhttpd."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Mount"]


class Mount(NamedTuple):
    """A URL prefix served from a directory (--static, --cgi-dir)."""

    url_prefix: str
    directory: str

    def __str__(self) -> str:
        return f"{self.url_prefix}={self.directory}"
