async def default(url, body, route):
    return body
