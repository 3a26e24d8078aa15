"""Listening sockets: which options forkhttpd sets on the sockets it binds, and which it
leaves to the owner of an inherited one."""

from __future__ import annotations

import os
import socket

from forkhttpd.config.settings import BindAddress, Settings
from forkhttpd.master.listeners import open_listeners

LOOPBACK = BindAddress("tcp", "127.0.0.1", 0)


def _deferral(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT)


def test_defer_accept_is_set_on_bound_tcp_listeners_when_asked() -> None:
    [deferred] = open_listeners([LOOPBACK], backlog=8, defer_accept=1)
    [plain] = open_listeners([LOOPBACK], backlog=8, defer_accept=0)
    try:
        assert _deferral(deferred) > 0
        assert _deferral(plain) == 0
        assert plain.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        deferred.close()
        plain.close()


def test_an_inherited_listener_keeps_its_owners_deferral() -> None:
    owner = socket.socket()
    owner.bind(("127.0.0.1", 0))
    owner.listen(8)
    try:
        [inherited] = open_listeners([], backlog=8, inherited=[os.dup(owner.fileno())],
                                     defer_accept=5)
        try:
            assert _deferral(inherited) == 0  # systemd's DeferAcceptSec= decides for it
        finally:
            inherited.close()
    finally:
        owner.close()


def test_defer_accept_defaults_to_one_second() -> None:
    assert Settings().defer_accept == 1
