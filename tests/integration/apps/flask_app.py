"""A real Flask application (a test-only dependency) served through forkhttpd's WSGI interface."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

from flask import Flask, Response, abort, jsonify, request, send_file, stream_with_context
from flask.typing import ResponseReturnValue

HERE = os.path.dirname(os.path.abspath(__file__))

app = Flask(__name__)


@app.route("/")
def index() -> ResponseReturnValue:
    return "hello from flask"


@app.route("/users/<int:user_id>")
def user(user_id: int) -> ResponseReturnValue:
    return jsonify(id=user_id, name=f"user {user_id}", args=request.args.to_dict())


@app.post("/form")
def form() -> ResponseReturnValue:
    return jsonify(fields=request.form.to_dict(), length=request.content_length)


@app.post("/json")
def json_body() -> ResponseReturnValue:
    data = request.get_json()
    return jsonify(received=data, doubled=[x * 2 for x in data["numbers"]]), 201


@app.post("/upload")
def upload() -> ResponseReturnValue:
    return jsonify(size=len(request.get_data()))


@app.route("/stream")
def stream() -> ResponseReturnValue:
    def generate() -> Iterator[str]:
        for i in range(4):
            yield f"line {i}\n"
    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/file")
def a_file() -> ResponseReturnValue:
    return send_file(os.path.join(HERE, "site", "index.html"))


@app.route("/missing")
def missing() -> NoReturn:
    abort(404)


@app.route("/teapot")
def teapot() -> ResponseReturnValue:
    return "short and stout", 418


@app.route("/boom")
def boom() -> NoReturn:
    raise RuntimeError("secret flask failure")
