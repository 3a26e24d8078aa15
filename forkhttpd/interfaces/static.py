"""Static files as a native handler (picohttp's staticResource, the default app and the --static
mounts); must not import the worker's loop or process, config or master: the file body is handed
to the connection as an open file (or a FileSlice for a Range), which sends it with os.sendfile.

The path mapping refuses everything that could leave the root: "..", encoded dots and
slashes, backslashes, NUL, and (unless told otherwise) symlinks whose target lies outside.
It also refuses, unless --serve-hidden, every path with a segment that starts with "."
once percent-decoded (.git/config, .env, %2egit): a project folder is where people run a
file server, and its dot files hold credentials. Every refusal is a 404, the same answer as
a missing file, so nothing about the disk leaks. Conditional requests (RFC 9110 13) get
304, a single byte range (RFC 9110 14) 206 or 416, and a directory without index.html a
listing when asked for (--list-directories; always for the no-app default).
"""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from typing import Any

from ..worker.parts import FileSlice, RawFile, imf_fixdate
from .response import HttpResponse

__all__ = ["StaticFiles", "byte_range", "resolve_path", "staticResource"]

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


def map_path(root: str, raw_path: str, hidden: bool = False) -> str | None:
    """The file system path under `root` that a raw (still percent-encoded) URL path names,
    symlinks not resolved; None for anything unsafe or malformed, and (unless `hidden`) for
    a path with a dot file or dot directory in it."""
    if "\\" in raw_path or "\x00" in raw_path:
        return None
    parts: list[str] = []
    for segment in raw_path.split("/"):
        if not segment:
            continue
        if "%" in segment:
            from urllib.parse import unquote  # not at import: ~0.5 MiB per worker

            decoded = unquote(segment, errors="strict")
        else:
            decoded = segment
        # An encoded "/" or "\" would smuggle a separator; "." and ".." would climb.
        if decoded in (".", "..") or "/" in decoded or "\\" in decoded or "\x00" in decoded:
            return None
        if decoded[0] == "." and not hidden:
            return None
        parts.append(decoded)
    return os.path.join(root, *parts)


def resolve_path(root: str, raw_path: str, follow_symlinks: bool = False,
                 hidden: bool = False) -> str | None:
    """Map a raw (still percent-encoded) URL path onto a file system path under `root`.

    Returns None for anything unsafe or malformed, and for dot files unless `hidden`.
    `root` must be an absolute real path.
    """
    candidate = map_path(root, raw_path, hidden)
    if candidate is None or follow_symlinks:
        return candidate
    real = os.path.realpath(candidate)
    return real if _beneath(root, real) else None


def _beneath(root: str, real: str) -> bool:
    return real == root or real.startswith(root + os.sep)


# O_NONBLOCK: opening a FIFO must not block the worker; O_NOCTTY: never adopt a terminal
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY


def open_beneath(root: str, path: str, follow_symlinks: bool) -> tuple[int, os.stat_result]:
    """Open `path` and fstat it; unless `follow_symlinks`, refuse (FileNotFoundError) a file
    whose real path is outside `root`. The check reads the real path of the descriptor
    itself (/proc/self/fd), so a symlink swapped in between check and open cannot win, and
    it costs one readlink instead of realpath's lstat per path component."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not follow_symlinks:
            try:
                real = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:  # no /proc (a bare chroot): resolve the name instead
                real = os.path.realpath(path)
            if not _beneath(root, real):
                raise FileNotFoundError(path)
        return fd, os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise


def _etag(st: os.stat_result) -> str:
    return f'"{st.st_mtime_ns:x}-{st.st_size:x}"'


# RFC 9110 5.6.7: an HTTP-date is 29 characters (IMF-fixdate; the obsolete forms are
# shorter than this bound); anything longer is not a date and is not parsed at all
_MAX_HTTP_DATE = 64


def _http_time(text: str) -> float | None:
    """Seconds since the epoch of an HTTP-date; None (the field is ignored, RFC 9110 13.1.3
    and 13.1.4) for anything else, however long."""
    if len(text) > _MAX_HTTP_DATE:
        return None
    from email.utils import parsedate_to_datetime  # only for conditional requests

    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _not_modified(headers: Any, etag: str, mtime: float) -> bool:
    """RFC 9110 13.1.2 and 13.1.3: If-None-Match wins; If-Modified-Since only without it."""
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    since = headers.get("if-modified-since")
    if since:
        when = _http_time(since)
        return when is not None and int(mtime) <= when
    return False


# [0-9], not \d: the header is latin-1 text and only ASCII digits are digits here
_RANGE = re.compile(r"bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*", re.IGNORECASE)
# A position with more significant digits than this lies past the end of any file (2**63
# has 19), so it is compared as text and never handed to int(), which raises ValueError
# for strings over 4,300 digits and takes quadratic time below that
_MAX_POSITION_DIGITS = 18


def _significant(digits: str) -> str:
    """1*DIGIT without its leading zeros ("0" stays); "" stays "" (an absent position)."""
    return (digits.lstrip("0") or "0") if digits else ""


def _number(digits: str) -> int | None:
    """The value of significant digits, or None when it is larger than any file."""
    return int(digits) if len(digits) <= _MAX_POSITION_DIGITS else None


def byte_range(header: str, size: int) -> tuple[int, int] | None | bool:
    """Range header -> (first, last) inclusive; None to ignore it (malformed, or several
    ranges: RFC 9110 14.2 lets a server send the whole file); False if unsatisfiable.
    Positions of any length are handled, without int() on more than 18 digits."""
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = _significant(match[1]), _significant(match[2])
    if not first:
        if not last:
            return None
        # RFC 9110 14.1.1 suffix-range "-N": the last N bytes, the whole file if N >= size
        if last == "0" or size == 0:
            return False
        suffix = _number(last)
        return (0 if suffix is None or suffix >= size else size - suffix), size - 1
    if last and (len(last), last) < (len(first), first):
        return None  # RFC 9110 14.1.1: last < first makes the header invalid: ignore it
    start = _number(first)
    if start is None or start >= size:
        return False  # RFC 9110 14.1.1: first-pos past the end is unsatisfiable (416)
    end = _number(last) if last else None
    # RFC 9110 14.1.1: a last-pos past the end (or none) means "to the end"
    return start, size - 1 if end is None else min(end, size - 1)


def _if_range_holds(headers: Any, etag: str, mtime: float) -> bool:
    """RFC 9110 13.1.5: a Range counts only while the representation is the one named."""
    value = headers.get("if-range")
    if value is None:
        return True
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag  # strong comparison: a weak tag never matches
    when = _http_time(value)
    return when is not None and int(mtime) == int(when)


class StaticFiles:
    """Serve the files under `root`; call it as a native handler: files(request, response)."""

    def __init__(self, root: str = ".", index: str = "index.html",
                 default_type: str = "text/plain", follow_symlinks: bool = False,
                 prefix: str = "", list_directories: bool = False,
                 show_hidden: bool = False, serve_hidden: bool = False) -> None:
        self.root = os.path.realpath(root)
        self.index = index
        self.default_type = default_type
        self.follow_symlinks = follow_symlinks
        self.prefix = prefix.rstrip("/")
        self.list_directories = list_directories
        self.serve_hidden = serve_hidden
        self.show_hidden = show_hidden or serve_hidden  # names listed (served: serve_hidden)
        self._types: dict[str, str] = {}  # file name -> Content-Type (mimetypes is slow)
        mimetypes.init()  # here, in the zygote: workers share the tables, not build their own

    def __call__(self, request: Any, response: HttpResponse) -> None:
        if request.method not in ("GET", "HEAD"):
            response.status = 405
            response.headers["Allow"] = "GET, HEAD"
            response.data = b"Method Not Allowed\n"
            return
        raw_path: str = request.raw_path
        if self.prefix:
            raw_path = raw_path[len(self.prefix):]
        try:
            path = map_path(self.root, raw_path or "/", self.serve_hidden)
        except UnicodeDecodeError:
            path = None
        if path is None:
            return self._not_found(response)
        try:
            fd, st = open_beneath(self.root, path, self.follow_symlinks)
            if stat.S_ISDIR(st.st_mode):
                os.close(fd)
                if not raw_path.endswith("/"):
                    return self._redirect_to_directory(request, response, raw_path)
                directory = path
                path = os.path.join(directory, self.index)
                try:
                    fd, st = open_beneath(self.root, path, self.follow_symlinks)
                except FileNotFoundError:
                    if self.list_directories:
                        return self._listing(request, response, directory)
                    raise
            if not stat.S_ISREG(st.st_mode):
                os.close(fd)
                return self._not_found(response)
        except OSError:
            return self._not_found(response)
        handle = RawFile(fd)
        try:
            self._file(request, response, path, handle, st)
        except BaseException:
            # whatever a request's fields make of the answer, the file is closed: one
            # descriptor leaked per request is a worker's table gone in ~1,000 requests
            handle.close()
            raise

    def _file(self, request: Any, response: HttpResponse, path: str, handle: Any,
              st: os.stat_result) -> None:
        etag = _etag(st)
        headers = response.headers
        headers["ETag"] = etag
        headers["Last-Modified"] = imf_fixdate(st.st_mtime)
        if _not_modified(request.headers, etag, st.st_mtime):
            handle.close()
            response.status = 304
            response.data = b""
            return
        name = os.path.basename(path)
        ctype = self._types.get(name)
        if ctype is None:
            if len(self._types) >= 1024:
                self._types.clear()
            ctype = self._types[name] = content_type_for(name, self.default_type)
        headers["Content-Type"] = ctype
        headers["Accept-Ranges"] = "bytes"
        whole = FileSlice(handle, 0, st.st_size)  # the size is known: no tell/fstat later
        wanted = request.headers.get("range")
        if (wanted is None or request.method != "GET"  # RFC 9110 14.2: GET only
                or not _if_range_holds(request.headers, etag, st.st_mtime)):
            response.data = whole
            return
        span = byte_range(wanted, st.st_size)
        if span is None:
            response.data = whole
        elif span is False:
            handle.close()
            response.status = 416  # RFC 9110 15.5.17: say how long the file is
            headers["Content-Range"] = f"bytes */{st.st_size}"
            headers["Content-Type"] = "text/plain; charset=utf-8"
            response.data = b"Range Not Satisfiable\n"
        else:
            first, last = span  # type: ignore[misc]
            response.status = 206
            headers["Content-Range"] = f"bytes {first}-{last}/{st.st_size}"
            response.data = FileSlice(handle, first, last - first + 1)

    def _redirect_to_directory(self, request: Any, response: HttpResponse,
                               raw_path: str) -> None:
        # RFC 9110 15.4.2: send the client to the canonical directory URL.
        from urllib.parse import quote
        location = quote(self.prefix + raw_path, safe="/%") + "/"
        if location.startswith("//"):
            location = "/" + location.lstrip("/")  # never a scheme-relative URL
        if request.raw_query:
            location += "?" + request.raw_query
        response.status = 301
        response.headers["Location"] = location
        response.data = b""

    def _listing(self, request: Any, response: HttpResponse, directory: str) -> None:
        """An HTML list of the directory's entries, names escaped, sorted, dot files hidden
        unless --show-hidden or --serve-hidden, and entries leading outside the root left
        out."""
        from urllib.parse import quote, unquote

        try:
            names = os.listdir(directory)
        except OSError:
            return self._not_found(response)
        import html

        items = []
        for name in sorted(names, key=lambda n: (n.lower(), n)):
            if name.startswith(".") and not self.show_hidden:
                continue
            full = os.path.join(directory, name)
            real = os.path.realpath(full)
            if not self.follow_symlinks and not real.startswith(self.root + os.sep):
                continue
            suffix = "/" if os.path.isdir(full) else ""
            href = quote(name, errors="surrogateescape") + suffix
            label = html.escape(name.encode("utf-8", "surrogateescape")
                                .decode("utf-8", "replace") + suffix)
            items.append(f'<li><a href="{html.escape(href)}">{label}</a></li>')
        shown = html.escape(unquote(request.raw_path, errors="replace"))
        parent = '<li><a href="../">../</a></li>' if request.raw_path.rstrip("/") else ""
        page = (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
                f"<title>Directory listing for {shown}</title></head>\n<body>\n"
                f"<h1>Directory listing for {shown}</h1>\n<hr>\n<ul>\n{parent}"
                + "\n".join(items) + "\n</ul>\n<hr>\n</body></html>\n")
        response.headers["Content-Type"] = "text/html; charset=utf-8"
        response.data = page.encode("utf-8")

    @staticmethod
    def _not_found(response: HttpResponse) -> None:
        response.status = 404
        response.headers["Content-Type"] = "text/plain; charset=utf-8"
        response.data = _NOT_FOUND


def staticResource(request: Any, response: HttpResponse, staticBase: str = "",  # noqa: N802,N803
                   defaultResource: str = "index.html", defaultMime: str = "text/plain") -> None:
    """picohttp's helper, same signature: serve `request.path` from `staticBase`."""
    StaticFiles(staticBase or ".", defaultResource, defaultMime)(request, response)
