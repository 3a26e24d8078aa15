"""An echo handler: reads the whole body and answers 200 to any method and path, so that every
rejection the conformance runner sees comes from forkhttpd's protocol layer."""

import hashlib


def handler(request, response):
    body = request.body
    response.headers["Content-Type"] = "text/plain"
    response.data = (f"{request.method} {request.raw_path} {len(body)} "
                     f"{hashlib.sha256(body).hexdigest()[:16]}\n")
