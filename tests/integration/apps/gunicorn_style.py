"""What a gunicorn user brings: a module whose WSGI callable is named `application` (as
Django's wsgi.py names it), served with `--app gunicorn_style` and no --interface."""


def application(environ, start_response):  # type: ignore[no-untyped-def]
    body = f"wsgi {environ['REQUEST_METHOD']} {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length",
                                                              str(len(body)))])
    return [body]


class Either:
    """A callable object taking (environ, start_response): WSGI or a picohttp handler
    object? --interface auto refuses to guess."""

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        return []


either = Either()
