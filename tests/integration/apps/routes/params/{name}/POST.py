from forkhttpd import get_query


async def default(url, body, route):
    return {
        "urlParams": get_query(url),
        "bodyParams": body,
        "pathParams": route.vars,
        "path": url.path,
        "url": str(url),
    }
