"""The serve package: a worker's connection loop (loop.py) and its client connections
(connection.py), the only code in forkhttpd that reads or writes client sockets; it must not
import worker, arbiter, supervision or psutil."""

from .connection import Connection
from .loop import ServeLoop, ServeOptions

__all__ = ["Connection", "ServeLoop", "ServeOptions"]
