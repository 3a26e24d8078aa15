"""TLS for a worker's connections: the server context built from the TLS settings, and a
connection that encrypts through memory BIOs so that its handshake is one more non-blocking step
of the worker's event loop; must not import interfaces, master, config or ops (the settings
arrive as plain values).

Why memory BIOs rather than ssl.SSLSocket: the loop's sockets are C-level `_socket.socket`
objects read with MSG_DONTWAIT, and a handshake must never block the worker. With an SSLObject
over two MemoryBIOs the loop reads raw bytes when epoll says so, feeds them in, and writes out
whatever the TLS engine produced; a client that stalls or trickles its ClientHello costs a few
bytes of state until the header deadline closes it. Only connections on a TLS listener pay:
this module (and ssl) is imported only when --certfile is set.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from ..protocol import ServerConnection
from .connection import Connection

__all__ = ["PLAIN_HTTP_ANSWER", "TLSConnection", "TLSSetupError", "build_context",
           "context_from_settings", "loaded_context"]

_RECV = 65536
_CHUNK = 262144  # plaintext encrypted per write: bounds the ciphertext held in memory
_HANDSHAKE_RECORD = 0x16  # RFC 8446 5.1 / RFC 5246 6.2.1: ContentType handshake(22)
CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL,
             "required": ssl.CERT_REQUIRED}

_PLAIN_BODY = b"This port speaks HTTPS: the request was sent as plain HTTP.\n"
# what a plain-HTTP request to the TLS port gets, as nginx does, so that a person who typed
# http:// sees why instead of an empty reply
PLAIN_HTTP_ANSWER = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     b"Content-Length: " + str(len(_PLAIN_BODY)).encode() + b"\r\n"
                     b"Connection: close\r\n\r\n" + _PLAIN_BODY)


class TLSSetupError(Exception):
    """A TLS setting cannot be used; str() is one line naming the setting and the problem."""


class PlainHTTP(Exception):
    """The client spoke plain HTTP to the TLS port."""


class HandshakeFailed(Exception):
    """The TLS handshake cannot succeed (bad hello, no shared cipher, a client certificate
    refused); the engine's alert, if any, was sent."""


def _no_password() -> bytes:
    return b""  # an encrypted key must not make the server prompt on a terminal


def build_context(certfile: str, keyfile: str | None = None, ca_certs: str | None = None,
                  cert_reqs: str = "none", ciphers: str | None = None) -> ssl.SSLContext:
    """The server's TLS context: at least TLS 1.2, ALPN http/1.1, the certificate chain and
    key, and client certificates checked against ca_certs as cert_reqs asks."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_password)
    except OSError as error:
        if isinstance(error, ssl.SSLError):
            why = f" ({error.reason.lower().replace('_', ' ')})" if error.reason else ""
            raise TLSSetupError(
                f"--certfile {certfile!r}{' / --keyfile ' + repr(keyfile) if keyfile else ''}: "
                f"expected a PEM certificate (chain) and its unencrypted private key{why}"
            ) from None
        which = "--keyfile" if keyfile and not os.path.exists(keyfile) else "--certfile"
        name = keyfile if which == "--keyfile" else certfile
        raise TLSSetupError(f"{which} {name!r}: {error.strerror or error}") from None
    if ca_certs:
        try:
            context.load_verify_locations(cafile=ca_certs)
        except OSError as error:
            reason = (error.reason if isinstance(error, ssl.SSLError) else error.strerror)
            raise TLSSetupError(f"--ca-certs {ca_certs!r}: expected a file of PEM CA "
                                "certificates" + (f" ({reason})" if reason else "")) from None
    if cert_reqs not in CERT_REQS:
        raise TLSSetupError(f"--cert-reqs: expected one of {', '.join(CERT_REQS)}, "
                            f"got {cert_reqs!r}")
    if cert_reqs != "none" and not ca_certs:
        raise TLSSetupError(f"--cert-reqs {cert_reqs}: client certificates are checked "
                            "against --ca-certs, which is not set")
    context.verify_mode = CERT_REQS[cert_reqs]
    if ciphers:
        try:
            context.set_ciphers(ciphers)
        except ssl.SSLError:
            raise TLSSetupError(f"--ssl-ciphers {ciphers!r}: expected an OpenSSL cipher list "
                                "that selects at least one cipher") from None
    context.set_alpn_protocols(["http/1.1"])
    return context


def context_from_settings(settings: Any) -> ssl.SSLContext | None:
    """The TLS context the settings ask for, or None without --certfile."""
    if not settings.certfile:
        return None
    return build_context(settings.certfile, settings.keyfile, settings.ca_certs,
                         settings.cert_reqs, settings.ssl_ciphers)


_loaded: list[Any] = [None, None]  # [settings, context]: what loaded_context() built


def loaded_context(settings: Any) -> ssl.SSLContext | None:
    """The context for these settings, built once: a zygote builds it before it drops
    privileges (a key readable by root alone is fine) and before the app is imported (a bad
    certificate fails the generation's load, and the previous one keeps serving); its
    workers inherit it and never read the files again."""
    if _loaded[0] is not settings:
        _loaded[:] = [settings, context_from_settings(settings)]
    return _loaded[1]


class TLSConnection(Connection):
    """A connection whose bytes pass through TLS. Until `secure`, the loop drives
    `handshake(raw)` with the raw bytes it reads; after, the Connection methods the loop and
    the exchange call (recv_nowait, send_all, sendfile, shutdown) carry plaintext."""

    __slots__ = ("tls", "_in", "_out", "secure", "_eof", "_fresh")
    scheme = "https"

    def __init__(self, sock: Any, peer: object, proto: ServerConnection,
                 context: ssl.SSLContext) -> None:
        super().__init__(sock, peer, proto)
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self._in, self._out, server_side=True)
        self.secure = False
        self._eof = False
        self._fresh = True  # no byte seen yet: the first one tells TLS from plain HTTP

    # -- the handshake, one non-blocking step at a time --------------------------------------
    def recv_raw(self) -> bytes | None:
        """Raw bytes off the socket (b"" at EOF, None when none are waiting)."""
        return Connection.recv_nowait(self)

    def handshake(self, raw: bytes) -> bool:
        """Feed raw bytes to the handshake; True once it is complete. Raises PlainHTTP when the
        first byte is not a TLS handshake record, HandshakeFailed when it cannot succeed."""
        if self._fresh and raw:
            self._fresh = False
            if raw[0] != _HANDSHAKE_RECORD:
                raise PlainHTTP()
        if raw:
            self._in.write(raw)
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_raw()
            return False
        except (ssl.SSLError, ValueError) as error:
            self._flush_raw()  # the alert tells the client why
            raise HandshakeFailed(str(error)) from None
        self._flush_raw()
        self.secure = True
        return True

    def _flush_raw(self) -> None:
        """Send what the TLS engine wrote (a handshake flight, an alert, a ticket). A flight
        is a few KiB, far below a socket's send buffer, so this does not wait in practice;
        the short bound only keeps a client that never reads from holding the worker."""
        if self._out.pending:
            Connection.send_all(self, self._out.read(), timeout=2.0)

    # -- plaintext: what the loop and the exchange see ----------------------------------------
    def _plaintext(self) -> bytes:
        """All the plaintext the buffered records hold: epoll cannot report bytes that have
        already left the socket, so none may stay behind in the engine."""
        parts: list[bytes] = []
        while not self._eof:
            try:
                piece = self.tls.read(_RECV)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError:  # close_notify (SSLZeroReturnError) or a broken record
                self._eof = True
                break
            if not piece:
                self._eof = True
                break
            parts.append(piece)
        if self._out.pending:
            self._flush_raw()  # TLS 1.3 tickets and key updates go out with the next read
        return b"".join(parts)

    def recv_nowait(self) -> bytes | None:
        data = self._plaintext()
        if data:
            return data
        if self._eof:
            return b""
        raw = Connection.recv_nowait(self)
        if not raw:
            return raw  # None: nothing waiting; b"": EOF
        self._in.write(raw)
        data = self._plaintext()
        if data:
            return data
        return b"" if self._eof else None

    def send_all(self, data: bytes | memoryview, timeout: float = 30.0,
                 more: bool = False, last: bool = False) -> None:
        view = memoryview(data)
        while True:
            piece, view = view[:_CHUNK], view[_CHUNK:]
            if piece:
                self.tls.write(piece)  # a MemoryBIO takes it all: never SSLWantWriteError
            final = not view
            Connection.send_all(self, self._out.read(), timeout, more or not final,
                                last and final)
            if final:
                return

    def sendfile(self, fd: int, offset: int, count: int, timeout: float = 30.0) -> int:
        """A file over TLS: os.sendfile would send it unencrypted, so it is read and sent."""
        total = 0
        while count > 0:
            block = os.pread(fd, min(count, _CHUNK), offset)
            if not block:
                break  # the file shrank under us: stop, the connection will close
            self.send_all(block, timeout, more=count > len(block))
            offset += len(block)
            count -= len(block)
            total += len(block)
        return total

    def shutdown(self, how: int = 1) -> bool:
        """close_notify (RFC 8446 6.1) before the FIN, so the client knows the response was
        not cut short; best effort, never waiting."""
        if self.secure:
            try:
                self.tls.unwrap()
            except (ssl.SSLError, ValueError):
                pass  # SSLWantReadError: the peer's close_notify is not awaited
            if self._out.pending:
                try:
                    Connection.send_all(self, self._out.read(), timeout=0.5)
                except Exception:  # noqa: BLE001 - the client is gone; the FIN follows anyway
                    pass
            self.secure = False
        return Connection.shutdown(self, how)
