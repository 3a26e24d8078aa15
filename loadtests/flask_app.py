"""The benchmark's Flask application (pip install flask): the same four URLs as
loadtests/wsgi_app.py, so that every server runs the same framework code."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response, request

from .wsgi_app import BIG_BODY, CHUNK, CHUNKS

__all__ = ["app"]

app = Flask(__name__)


@app.get("/")
def hello() -> Response:
    return Response(b"Hello, world!", content_type="text/plain; charset=utf-8")


@app.post("/upload")
def upload() -> Response:
    return Response(str(len(request.get_data())), content_type="text/plain")


@app.get("/big")
def big() -> Response:
    return Response(BIG_BODY, content_type="application/octet-stream")


@app.get("/stream")
def stream() -> Response:
    def pieces() -> Iterator[bytes]:
        for _ in range(CHUNKS):
            yield CHUNK

    return Response(pieces(), content_type="text/plain")
