def default(url, body, route):
    return None
