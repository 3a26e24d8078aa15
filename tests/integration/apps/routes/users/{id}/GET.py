def default(url, body, route):
    return {"who": route.vars["id"]}
