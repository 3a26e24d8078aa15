"""Sans-I/O HTTP/1.1 server protocol; must not import socket/select/os/signal or forkhttpd code.

Nothing here touches sockets, processes or signals: the server feeds received
bytes to a ServerConnection, acts on the events it returns and writes the bytes
its response methods return. "forkhttpd code" above means anything outside
forkhttpd.protocol; only the standard library is used.
"""

from .connection import ServerConnection
from .errors import LocalProtocolError, ProtocolError
from .events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    Request,
    Sentinel,
)
from .limits import DEFAULT_LIMITS, Limits

__all__ = [
    "DEFAULT_LIMITS",
    "NEED_DATA",
    "PAUSED",
    "ConnectionClosed",
    "Data",
    "EndOfMessage",
    "Event",
    "Headers",
    "Limits",
    "LocalProtocolError",
    "ProtocolError",
    "Request",
    "Sentinel",
    "ServerConnection",
]
