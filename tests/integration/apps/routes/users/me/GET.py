def default(url, body, route):
    return {"who": "me", "vars": route.vars}
