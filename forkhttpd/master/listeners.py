"""Create (or inherit) the listening sockets the master hands to its workers; must not import
the worker package or the arbiter.

TCP_NODELAY is set on the listener because accepted sockets inherit it on Linux: without it a
keep-alive response written in two pieces stalls on delayed ACKs (40 ms per request).
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from typing import Protocol

__all__ = ["BindError", "open_listeners", "systemd_fds", "describe"]


class BindSpec(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def path(self) -> str: ...
    @property
    def fd(self) -> int: ...


class BindError(Exception):
    """A listener could not be created; str() says which address and why, in one line."""


def systemd_fds(environ: dict[str, str] | None = None) -> list[int]:
    """File descriptors passed by socket activation (LISTEN_FDS, from fd 3), if meant for us."""
    env = os.environ if environ is None else environ
    try:
        count = int(env.get("LISTEN_FDS", "0"))
        pid = int(env.get("LISTEN_PID", "0"))
    except ValueError:
        return []
    if count <= 0 or pid != os.getpid():
        return []
    return list(range(3, 3 + count))


def _tune(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _from_fd(fd: int, backlog: int) -> socket.socket:
    try:
        mode = os.fstat(fd).st_mode
    except OSError as error:
        raise BindError(
            f"--bind fd://{fd}: not an open file descriptor ({error.strerror})") from None
    if not stat.S_ISSOCK(mode):
        raise BindError(f"--bind fd://{fd}: not a socket")
    sock = socket.socket(fileno=fd)
    if sock.type != socket.SOCK_STREAM:
        raise BindError(f"--bind fd://{fd}: not a stream socket")
    os.set_inheritable(fd, False)
    _tune(sock)
    sock.listen(backlog)  # harmless if already listening; makes the backlog ours
    return sock


def _bind_unix(path: str, backlog: int) -> socket.socket:
    if os.path.exists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise BindError(f"--bind unix:{path}: exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:
            os.unlink(path)  # a stale socket file from a server that is gone
        else:
            raise BindError(f"--bind unix:{path}: another server is listening there")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        raise BindError(f"--bind unix:{path}: {error.strerror}") from None
    return sock


def _bind_tcp(host: str, port: int, backlog: int, reuse_port: bool,
              defer_accept: int = 0) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if defer_accept:
            # Clients connect, then send: without this a worker often wakes for a connection
            # whose request is not there yet, and pays a failed recv, an epoll registration
            # and a second wake-up. A connection that stays silent is handed over anyway
            # once the kernel's SYN-ACK retry after `defer_accept` seconds is answered.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, defer_accept)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
        sock.listen(backlog)
    except OSError as error:
        sock.close()
        shown = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        reason = "address already in use" if error.errno == errno.EADDRINUSE else (
            error.strerror or str(error))
        raise BindError(f"cannot listen on {shown}: {reason}") from None
    _tune(sock)
    return sock


def open_listeners(binds: list[BindSpec], backlog: int = 2048, reuse_port: bool = False,
                   inherited: list[int] | None = None,
                   defer_accept: int = 0) -> list[socket.socket]:
    """One listening socket per bind address (or per inherited descriptor, left as its
    owner set it up but for TCP_NODELAY)."""
    sockets: list[socket.socket] = []
    try:
        for fd in inherited or []:
            sockets.append(_from_fd(fd, backlog))
        if not inherited:
            for bind in binds:
                if bind.kind == "fd":
                    sockets.append(_from_fd(bind.fd, backlog))
                elif bind.kind == "unix":
                    sockets.append(_bind_unix(bind.path, backlog))
                else:
                    sockets.append(_bind_tcp(bind.host, bind.port, backlog, reuse_port,
                                             defer_accept))
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def close_listeners(sockets: list[socket.socket]) -> None:
    """Stop listening: unix socket files are removed first (a client then gets ENOENT,
    not a connection that waits in a queue nobody will take), then every socket closed.
    Safe to call twice."""
    for sock in sockets:
        if sock.fileno() >= 0 and sock.family == socket.AF_UNIX:
            try:
                path = sock.getsockname()
                if path:
                    os.unlink(path)
            except OSError:
                pass
        sock.close()


def describe(sock: socket.socket) -> str:
    """"127.0.0.1:8000", "[::1]:8000" or "unix:/path" for logs and status."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address}"
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    return f"{address[0]}:{address[1]}"
