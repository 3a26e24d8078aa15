"""forkhttpd: a pre-fork HTTP/1.1 server for Python."""
