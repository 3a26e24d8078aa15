"""A package module with only `app` (no `application`): `--app app_only.wsgi` finds it."""


def app(environ, start_response):  # type: ignore[no-untyped-def]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"found app"]
