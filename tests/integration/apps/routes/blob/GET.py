from forkhttpd import Blob


def default(url, body, route):
    return Blob(b"<svg/>", type="image/svg+xml")
