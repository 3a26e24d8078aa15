"""forkhttpd: a pre-fork HTTP/1.1 server (placeholder; the lead replaces this file)."""
