"""One HTTP/1.1 server connection as a state machine; must not import socket/select/os/signal.

Nor may it import the rest of forkhttpd. Bytes come in through receive_data(),
events come out of next_event(), and every response method returns the bytes to
write. One request/response "cycle" at a time; pipelined bytes wait in the
buffer until start_next_cycle().
"""

from __future__ import annotations

from .errors import LocalProtocolError, ProtocolError
from .events import NEED_DATA, PAUSED, ConnectionClosed, EndOfMessage, Event, Headers, Request
from .grammar import LEADING_CRLF_RE
from .head import parse_head
from .limits import DEFAULT_LIMITS, Limits
from .readers import ChunkedReader, ContentLengthReader, SectionScanner
from .writers import (
    CONNECTION_CLOSE,
    CONNECTION_KEEP_ALIVE,
    ERROR_FIELDS,
    LAST_CHUNK,
    STATUS_LINES,
    TRANSFER_CHUNKED,
    chunk,
    encode_fields,
    status_line,
)

# request-side states
_HEAD, _BODY, _EOM, _DONE, _CLOSED, _ERROR = range(6)
# response-side states
_R_NONE, _R_STARTED, _R_DONE = range(3)
# response framing (RFC 9112 6.3)
_F_LENGTH, _F_CHUNKED, _F_CLOSE, _F_NONE = range(4)


class ServerConnection:
    """Parse requests from and frame responses to one client connection.

    A server drives it like this (error handling and I/O elided)::

        while True:
            event = conn.next_event()            # may raise ProtocolError:
            if event is NEED_DATA:               #   send conn.error_response(exc), close
                conn.receive_data(sock.recv(65536))   # b"" at EOF
            elif isinstance(event, Request):     # maybe informational_response() first
                ...                              # run the handler, which reads Data
            elif event is PAUSED:                # request done, response written
                if not conn.keep_alive:
                    break                        # close the socket
                conn.start_next_cycle()
            elif isinstance(event, ConnectionClosed):
                break

    A response may be sent before the request body was read. If keep_alive is
    still True afterwards, the rest of the body (Content-Length framed) must be
    drained with next_event() until EndOfMessage before start_next_cycle().
    """

    __slots__ = ("limits", "request", "request_complete", "keep_alive", "_buf", "_eof",
                 "_state", "_reader", "_scanner", "_error", "_response", "_framing",
                 "_unsent", "_sent_100", "_max_head", "_head_limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        #: the request of the current cycle (None until its head is parsed)
        self.request: Request | None = None
        #: EndOfMessage of the current request has been returned
        self.request_complete = False
        #: whether the connection may carry another request once this response ends
        self.keep_alive = False
        self._buf = bytearray()
        self._eof = False
        self._state = _HEAD
        self._reader: ContentLengthReader | ChunkedReader | None = None
        # made on the first incomplete head: most heads arrive whole, in one read
        self._scanner: SectionScanner | None = None
        self._max_head = limits.max_head_size
        self._error: ProtocolError | None = None
        self._response = _R_NONE
        self._framing = _F_NONE
        self._unsent = 0
        self._sent_100 = False
        #: limits for the requests after the first; see _after_http10()
        self._head_limits = limits

    # ------------------------------------------------------------------ receiving

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; b"" means the peer closed its sending side."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("receive_data() called with data after EOF")
        if self._state < _CLOSED:  # a dead connection buffers nothing more
            self._buf += data

    @property
    def has_buffered_data(self) -> bool:
        """Bytes of a following (pipelined) request are waiting in the buffer."""
        return bool(self._buf) and self._state in (_EOM, _DONE, _HEAD)

    @property
    def response_started(self) -> bool:
        """A response head for the current cycle has been produced."""
        return self._response != _R_NONE

    def _after_http10(self) -> None:
        """A persistent connection that an HTTP/1.0 request opened belongs to an old client:
        its later requests get the missing-Host relaxation meant for old clients (RFC 9112
        3.2 binds HTTP/1.1 clients; a 1.0 client may still label a follow-up request 1.1, as
        gunicorn's corpus case valid/022 does). Connections that start as HTTP/1.1 keep the
        strict rule, and two Host fields stay a 400 everywhere."""
        self._head_limits = self.limits.replace(require_host=False)

    def next_event(self) -> Event:
        """The next event, NEED_DATA, or PAUSED; raises ProtocolError on bad input."""
        state = self._state
        if state == _HEAD:
            buf = self._buf
            if buf.startswith(b"\r\n"):
                # RFC 9112 2.2: a server SHOULD ignore empty lines before a request-line
                del buf[:LEADING_CRLF_RE.match(buf).end()]  # type: ignore[union-attr]
                if self._scanner is not None:
                    self._scanner.reset()
            scanner = self._scanner
            end = buf.find(b"\r\n\r\n", 0 if scanner is None else scanner.search_from)
            if end < 0:
                return self._incomplete_head()
            try:
                if end > self._max_head:
                    # bigger than the line/field limits allow: let the scanner name the
                    # first offending line without regex-parsing a huge head
                    SectionScanner(self.limits, True).scan(buf)
                request = parse_head(buf[:end + 2].decode("latin-1"), self._head_limits)
            except ProtocolError as exc:
                self._fail(exc)
                raise
            if request.version == "1.0" and self._head_limits.require_host:
                self._after_http10()
            del buf[:end + 4]
            if scanner is not None:
                scanner.reset()
            self.request = request
            self.keep_alive = request.keep_alive
            if request.chunked:
                self._reader = ChunkedReader(self.limits)
                self._state = _BODY
            elif request.content_length:
                self._reader = ContentLengthReader(request.content_length)
                self._state = _BODY
            else:
                # RFC 9112 6.3 item 7: no Content-Length or Transfer-Encoding -> no body
                self._state = _EOM
            return request
        if state == _BODY:
            try:
                event = self._reader.read(self._buf, self._eof)  # type: ignore[union-attr]
            except ProtocolError as exc:
                self._fail(exc)
                raise
            if event.__class__ is EndOfMessage:
                self._state = _DONE
                self.request_complete = True
                self._reader = None
            return event
        if state == _EOM:
            self._state = _DONE
            self.request_complete = True
            return EndOfMessage()
        if state == _DONE:
            return PAUSED
        if state == _CLOSED:
            return ConnectionClosed()
        error = self._error
        assert error is not None
        raise ProtocolError(error.status, error.reason)

    def body_done(self) -> bool:
        """Whether the request body is over (or there is none), so that no event but
        PAUSED is left in this cycle; consumes the pending EndOfMessage of a bodiless
        request, as next_event() would, without building the event."""
        state = self._state
        if state == _EOM:
            self._state = _DONE
            self.request_complete = True
            return True
        return state == _DONE

    def _incomplete_head(self) -> Event:
        buf = self._buf
        scanner = self._scanner
        if scanner is None:
            scanner = self._scanner = SectionScanner(self.limits, True)
        scanner.search_from = max(0, len(buf) - 3)
        try:
            scanner.scan(buf)  # refuse bad or oversize lines before the head is complete
            if self._eof:
                if not buf:
                    self._state = _CLOSED
                    return ConnectionClosed()
                # RFC 9112 8: an incomplete message must not be processed
                raise ProtocolError(400, "incomplete request head")
        except ProtocolError as exc:
            self._fail(exc)
            raise
        return NEED_DATA

    def _fail(self, exc: ProtocolError) -> None:
        buf = self._buf
        if self._state == _HEAD and buf:  # keep the first line for the access log
            end = buf.find(b"\n", 0, self.limits.max_request_line + 2)
            line = buf[:end] if end >= 0 else buf[:self.limits.max_request_line]
            exc.request_line = line.rstrip(b"\r").decode("latin-1")
        self._state = _ERROR
        self._error = exc
        self.keep_alive = False
        self._reader = None
        self._buf.clear()

    # ------------------------------------------------------------------ sending

    def _start(self, status: int, headers: Headers, content_length: int | None,
               reason: str | None, close: bool, trusted: bytes = b"") -> bytes:
        request = self.request
        if request is None:
            raise LocalProtocolError("no request to respond to (use error_response)")
        if self._response != _R_NONE:
            raise LocalProtocolError("a response was already started in this cycle")
        line = STATUS_LINES.get(status) if reason is None else None
        if line is None:
            line = status_line(status, reason)
        if not 200 <= status <= 599:
            raise LocalProtocolError(
                "1xx responses are interim: use informational_response()")
        fields = encode_fields(headers) if headers else b""
        if content_length is not None and (not isinstance(content_length, int)
                                           or content_length < 0):
            raise LocalProtocolError(f"invalid content_length {content_length!r}")
        # RFC 9112 6.3: pick the response framing.
        framing_field = b""
        if status == 204 or status == 304:
            # RFC 9110 8.6 / 15.3.5 / 15.4.5: never a body, and no Content-Length
            framing = _F_NONE
        elif request.method == "HEAD":
            # RFC 9110 9.3.2: no body, but Content-Length may state the GET size
            framing = _F_NONE
            if content_length is not None:
                framing_field = b"Content-Length: %d\r\n" % content_length
        elif content_length is not None:
            framing = _F_LENGTH
            framing_field = b"Content-Length: %d\r\n" % content_length
        elif request.version == "1.1":
            framing = _F_CHUNKED  # RFC 9112 6.1: Transfer-Encoding only to 1.1 clients
            framing_field = TRANSFER_CHUNKED
        else:
            framing = _F_CLOSE  # RFC 9112 6.3 item 8: 1.0 gets a close-delimited body
        state = self._state
        # The connection can carry another request only if everyone agrees, the
        # framing is self-delimiting, and the rest of the request body can be
        # skipped: Content-Length says how much, chunked does not, and a client
        # still waiting for "100 Continue" may never send the body at all
        # (RFC 9110 10.1.1, RFC 9112 9.3 / 9.6).
        keep = (not close and request.keep_alive and framing != _F_CLOSE and state != _ERROR
                and (state in (_DONE, _EOM)
                     or (not request.chunked
                         and (self._sent_100 or not request.expect_continue))))
        if not keep:
            connection = CONNECTION_CLOSE  # RFC 9112 9.6: announce the close
        elif request.version == "1.0":
            connection = CONNECTION_KEEP_ALIVE  # RFC 9112 9.3: 1.0 persists only if told
        else:
            connection = b""
        self.keep_alive = keep
        self._response = _R_STARTED
        self._framing = framing
        self._unsent = content_length or 0
        return line + fields + trusted + framing_field + connection + b"\r\n"

    def start_response(self, status: int, headers: Headers, content_length: int | None = None,
                       *, reason: str | None = None, close: bool = False,
                       trusted: bytes = b"") -> bytes:
        """Response head bytes; Content-Length, chunked or close-delimited per RFC 9112 6.1-6.3.

        `trusted` is CRLF-terminated field lines the caller built itself and vouches for
        (the server's own Date and Server): they skip the validation `headers` get, which
        is a measurable share of a small response's cost.
        """
        return self._start(status, headers, content_length, reason, close, trusted)

    def send_data(self, data: bytes) -> bytes:
        """Body bytes framed for the wire (b"" for bodiless responses)."""
        if self._response != _R_STARTED:
            raise LocalProtocolError("send_data() outside a started response")
        framing = self._framing
        if data.__class__ is not bytes:
            data = bytes(data)
        if framing == _F_LENGTH:
            if len(data) > self._unsent:
                self.keep_alive = False
                raise LocalProtocolError("more body data than the declared Content-Length")
            self._unsent -= len(data)
            return data
        if framing == _F_CHUNKED:
            return chunk(data) if data else b""  # an empty chunk would end the body
        if framing == _F_CLOSE:
            return data
        return b""

    def note_body_sent(self, count: int) -> None:
        """Account for `count` body bytes the caller sent itself (os.sendfile), so that
        end_response() can still check the declared Content-Length."""
        if self._response != _R_STARTED or self._framing != _F_LENGTH:
            raise LocalProtocolError("note_body_sent() needs a started Content-Length response")
        if count > self._unsent:
            self.keep_alive = False
            raise LocalProtocolError("more body data than the declared Content-Length")
        self._unsent -= count

    def end_response(self) -> bytes:
        """Bytes that end the response body; checks Content-Length was honoured."""
        if self._response != _R_STARTED:
            raise LocalProtocolError("end_response() outside a started response")
        self._response = _R_DONE
        if self._framing == _F_CHUNKED:
            return LAST_CHUNK
        if self._framing == _F_LENGTH and self._unsent:
            # the client would wait for the missing bytes or misread the next response
            self.keep_alive = False
            raise LocalProtocolError(
                f"response ended {self._unsent} bytes short of its Content-Length")
        return b""

    def simple_response(self, status: int, headers: Headers, body: bytes, *,
                        close: bool = False, reason: str | None = None,
                        trusted: bytes = b"") -> bytes:
        """A whole response with a Content-Length body as one bytes object."""
        request = self.request
        line = STATUS_LINES.get(status) if reason is None else None
        if (line is not None and request is not None and request.version == "1.1"
                and self._response == _R_NONE and (self._state == _DONE or self._state == _EOM)
                and status >= 200 and status != 204 and status != 304
                and request.method != "HEAD"):
            # The common case, decided as _start() would decide it: a 1.1 response with a
            # Content-Length body to a request whose body is consumed; it keeps the
            # connection unless either side asked for the close (RFC 9112 9.6).
            fields = encode_fields(headers) if headers else b""  # may raise: state untouched
            keep = not close and request.keep_alive
            self.keep_alive = keep
            self._response = _R_DONE
            self._framing = _F_LENGTH
            return b"".join((line, fields, trusted,
                             b"Content-Length: %d\r\n\r\n" % len(body) if keep else
                             b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body),
                             body))
        head = self._start(status, headers, len(body), reason, close, trusted)
        self._response = _R_DONE
        if self._framing == _F_LENGTH:
            return head + body
        return head

    def informational_response(self, status: int = 100, headers: Headers | None = None) -> bytes:
        """A 1xx interim response, e.g. 100 Continue; b"" for HTTP/1.0 clients."""
        request = self.request
        if request is None or self._response != _R_NONE:
            raise LocalProtocolError("informational_response() must precede the final response")
        if not isinstance(status, int) or not 100 <= status <= 199 or status == 101:
            # 101 switches protocols, which this layer does not implement
            raise LocalProtocolError(f"invalid informational status {status!r}")
        if request.version == "1.0":
            return b""  # RFC 9110 15.2: a server MUST NOT send 1xx to an HTTP/1.0 client
        if status == 100:
            self._sent_100 = True
        return status_line(status, None) + (encode_fields(headers) if headers else b"") + b"\r\n"

    def error_response(self, error: ProtocolError, headers: Headers | None = None) -> bytes:
        """Complete plain-text response for a rejected request; the connection then closes."""
        if self._response != _R_NONE:
            raise LocalProtocolError("a response was already started: just close the connection")
        if self._state != _ERROR:
            self._fail(error)
        self._response = _R_DONE
        body = (error.reason + "\n").encode("utf-8", "replace")
        head = (status_line(error.status, None) + ERROR_FIELDS % len(body)
                + (encode_fields(headers) if headers else b"") + b"\r\n")
        request = self.request
        if request is not None and request.method == "HEAD":
            return head  # RFC 9110 9.3.2
        return head + body

    def start_next_cycle(self) -> None:
        """Reset for the next request; needs EndOfMessage and an ended keep-alive response."""
        if self._state != _DONE or self._response != _R_DONE or not self.keep_alive:
            raise LocalProtocolError(
                "start_next_cycle() needs EndOfMessage returned and a finished keep-alive response")
        self.request = None
        self.request_complete = False
        self.keep_alive = False
        self._state = _HEAD
        self._response = _R_NONE
        self._framing = _F_NONE
        self._unsent = 0
        self._sent_100 = False
