def default(url, body, route):
    return f"error {route.vars['code']} at {url.path}: {body}"
