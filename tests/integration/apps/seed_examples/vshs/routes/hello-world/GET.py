async def default(url, body, route):
    return {"message": "Hello World"}
