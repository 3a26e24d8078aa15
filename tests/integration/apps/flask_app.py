"""A real Flask application (a test-only dependency) served through forkhttpd's WSGI interface."""

import os

from flask import Flask, Response, abort, jsonify, request, send_file, stream_with_context

HERE = os.path.dirname(os.path.abspath(__file__))

app = Flask(__name__)


@app.route("/")
def index():
    return "hello from flask"


@app.route("/users/<int:user_id>")
def user(user_id):
    return jsonify(id=user_id, name=f"user {user_id}", args=request.args.to_dict())


@app.post("/form")
def form():
    return jsonify(fields=request.form.to_dict(), length=request.content_length)


@app.post("/json")
def json_body():
    data = request.get_json()
    return jsonify(received=data, doubled=[x * 2 for x in data["numbers"]]), 201


@app.post("/upload")
def upload():
    return jsonify(size=len(request.get_data()))


@app.route("/stream")
def stream():
    def generate():
        for i in range(4):
            yield f"line {i}\n"
    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.route("/file")
def a_file():
    return send_file(os.path.join(HERE, "site", "index.html"))


@app.route("/missing")
def missing():
    abort(404)


@app.route("/teapot")
def teapot():
    return "short and stout", 418


@app.route("/boom")
def boom():
    raise RuntimeError("secret flask failure")
