"""Static files as a native handler (picohttp's staticResource and the default app); must not
import serve, worker or arbiter: the file body is handed to the connection as an open file,
which sends it with os.sendfile.

The path mapping refuses everything that could leave the root: "..", encoded dots and
slashes, backslashes, NUL, and (unless told otherwise) symlinks whose target lies outside.
Every refusal is a 404, the same answer as a missing file, so nothing about the disk leaks.
"""

from __future__ import annotations

import mimetypes
import os
import stat
from email.utils import formatdate, parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote

from .response import HttpResponse

__all__ = ["StaticFiles", "resolve_path", "staticResource"]

_NOT_FOUND = b"Not Found\n"


def content_type_for(path: str, default: str = "text/plain") -> str:
    """Content-Type from the file name; text types get charset=utf-8 (RFC 9110 8.3.2)."""
    guessed, encoding = mimetypes.guess_type(path, strict=False)
    if guessed is None or encoding is not None:
        guessed = default if encoding is None else "application/octet-stream"
    textual = guessed.startswith("text/") or guessed in ("application/javascript",
                                                          "application/json")
    if textual and "charset" not in guessed:
        guessed += "; charset=utf-8"
    return guessed


def resolve_path(root: str, raw_path: str, follow_symlinks: bool = False) -> str | None:
    """Map a raw (still percent-encoded) URL path onto a file system path under `root`.

    Returns None for anything unsafe or malformed. `root` must be an absolute real path.
    """
    if "\\" in raw_path or "\x00" in raw_path:
        return None
    parts: list[str] = []
    for segment in raw_path.split("/"):
        if not segment:
            continue
        decoded = unquote(segment, errors="strict") if "%" in segment else segment
        # An encoded "/" or "\" would smuggle a separator; "." and ".." would climb.
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            return None
        parts.append(decoded)
    candidate = os.path.join(root, *parts)
    if follow_symlinks:
        return candidate
    real = os.path.realpath(candidate)
    if real != root and not real.startswith(root + os.sep):
        return None
    return real


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


def _not_modified(headers: Any, etag: str, mtime: float) -> bool:
    """RFC 9110 13.1.2 and 13.1.3: If-None-Match wins; If-Modified-Since only without it."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = headers.get("if-modified-since")
    if since:
        try:
            return int(mtime) <= parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return False
    return False


class StaticFiles:
    """Serve the files under `root`; call it as a native handler: files(request, response)."""

    def __init__(self, root: str = ".", index: str = "index.html",
                 default_type: str = "text/plain", follow_symlinks: bool = False,
                 prefix: str = "") -> None:
        self.root = os.path.realpath(root)
        self.index = index
        self.default_type = default_type
        self.follow_symlinks = follow_symlinks
        self.prefix = prefix.rstrip("/")

    def __call__(self, request: Any, response: HttpResponse) -> None:
        if request.method not in ("GET", "HEAD"):
            response.status = 405
            response.headers["Allow"] = "GET, HEAD"
            response.data = b"Method Not Allowed\n"
            return
        raw_path: str = request.raw_path
        if self.prefix:
            raw_path = raw_path[len(self.prefix):] or "/"
        try:
            path = resolve_path(self.root, raw_path, self.follow_symlinks)
        except UnicodeDecodeError:
            path = None
        if path is None:
            return self._not_found(response)
        try:
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                if not raw_path.endswith("/"):
                    # RFC 9110 15.4.2: send the client to the canonical directory URL.
                    location = quote(self.prefix + raw_path, safe="/%") + "/"
                    if request.raw_query:
                        location += "?" + request.raw_query
                    response.status = 301
                    response.headers["Location"] = location
                    response.data = b""
                    return
                path = os.path.join(path, self.index)
                st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                return self._not_found(response)
            handle = open(path, "rb")  # noqa: SIM115 - the connection sends and closes it
        except OSError:
            return self._not_found(response)
        etag = _etag(st)
        response.headers["Content-Type"] = content_type_for(path, self.default_type)
        response.headers["ETag"] = etag
        response.headers["Last-Modified"] = formatdate(st.st_mtime, usegmt=True)
        if _not_modified(request.headers, etag, st.st_mtime):
            handle.close()
            response.status = 304
            response.data = b""
            return
        response.data = handle

    @staticmethod
    def _not_found(response: HttpResponse) -> None:
        response.status = 404
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        response.data = _NOT_FOUND


def staticResource(request: Any, response: HttpResponse, staticBase: str = "",  # noqa: N802,N803
                   defaultResource: str = "index.html", defaultMime: str = "text/plain") -> None:
    """picohttp's helper, same signature: serve `request.path` from `staticBase`."""
    StaticFiles(staticBase or ".", defaultResource, defaultMime)(request, response)
