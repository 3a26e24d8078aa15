def default(url, body, route):
    return b"\x00raw"
