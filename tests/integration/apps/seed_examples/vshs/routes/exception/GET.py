async def default(url, body, route):
    raise Exception('Oups...')
