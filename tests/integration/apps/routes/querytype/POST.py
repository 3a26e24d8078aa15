from forkhttpd import Blob


async def default(url, body, route):
    if body is None:
        return "null"
    if isinstance(body, Blob):
        return f"Blob {body.type} {await body.text()}"
    if isinstance(body, str):
        return "String"
    if isinstance(body, bytes):
        return "Uint8Array"
    if isinstance(body, dict):
        return "Object"
    return type(body).__name__
