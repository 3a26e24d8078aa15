from forkhttpd import SSEResponse


async def run(self):
    for i in range(3):
        await self.send(data={"count": i}, event="event_name")


async def default(url, body, route):
    return SSEResponse(run)
