"""One worker process: its life (process.py), its event loop (loop.py), its client
connections (connection.py), one request cycle (exchange.py), the socket handed to a
handler class (takeover.py) and what it sends (parts.py). The only package that reads or
writes client sockets; it imports nothing of interfaces, master, config or ops (an app
reaches it as a callable taking an Exchange)."""
