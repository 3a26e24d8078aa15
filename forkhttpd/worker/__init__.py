"""One worker process: its life (process.py), its event loop (loop.py), its client
connections (connection.py), one request cycle (exchange.py), a request as a socket for an
http.server handler class (handler_socket.py), what it sends (parts.py) and the errors it
raises (errors.py). The only package that reads or
writes client sockets; it imports nothing of interfaces, master, config or ops (an app
reaches it as a callable taking an Exchange)."""
