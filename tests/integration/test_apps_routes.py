"""A VSHS routes directory over real sockets: method files, {variables}, the query, bodies
converted by Content-Type, returned values typed by VSHS's table, HTTPError, 500, errors/{code}
rendering, 405 with Allow, SSE, and routes in front of an app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .harness import APPS, REPO, StartServer

ROUTES = str(APPS / "routes")


def test_routes_answer_with_vshs_semantics(start_server: StartServer) -> None:
    server = start_server("--routes", ROUTES, "--workers", "2")
    status, headers, body = server.request("GET", "/hello-world")
    assert (status, json.loads(body)) == (200, {"message": "Hello World"})
    assert headers["content-type"] == "application/json"
    assert server.request("GET", "/hello-world/")[0] == 200
    status, _, body = server.request(
        "POST", "/params/C?url=B&multi=1&multi=2", body=json.dumps({"body": "A"}),
        headers={"Content-Type": "application/json"})
    answer = json.loads(body)
    assert answer["urlParams"] == {"url": "B", "multi": ["1", "2"]}
    assert answer["bodyParams"] == {"body": "A"}
    assert answer["pathParams"] == {"name": "C"} and answer["path"] == "/params/C"
    assert answer["url"].startswith("http://127.0.0.1:") and answer["url"].endswith(
        "/params/C?url=B&multi=1&multi=2")
    assert json.loads(server.request("POST", "/params/caf%C3%A9")[2])["pathParams"] == {
        "name": "caf\u00e9"}
    # literal directories win over {variables}
    assert json.loads(server.request("GET", "/users/me")[2])["who"] == "me"
    assert json.loads(server.request("GET", "/users/42")[2]) == {"who": "42"}
    assert server.request("DELETE", "/users/42")[:1] == (204,)
    # DELETE /users/me: the literal route has no DELETE, the {id} one has
    assert server.request("DELETE", "/users/me")[0] == 204


def test_bodies_are_converted_by_content_type(start_server: StartServer) -> None:
    server = start_server("--routes", ROUTES)

    def kind(body: bytes | None, content_type: str | None) -> str:
        headers = {"Content-Type": content_type} if content_type else {}
        return server.request("POST", "/querytype", body=body, headers=headers)[2].decode()

    assert kind(None, None) == "null"
    assert kind(b"hello", "text/plain") == "String"
    assert kind(b'{"a": 1}', "text/plain") == "Object"  # text is tried as JSON first
    assert kind(b"a=1&b=2", "application/x-www-form-urlencoded") == "Object"
    assert kind(b'{"a": 1}', "application/json") == "Object"
    assert kind(b"\x00\x01", "application/octet-stream") == "Uint8Array"
    assert kind(b"\x00\x01", None) == "Uint8Array"
    assert kind(b"<svg/>", "image/svg+xml") == "Blob image/svg+xml <svg/>"
    status, _, body = server.request("POST", "/echo", body=b"{not json",
                                     headers={"Content-Type": "application/json"})
    assert status == 400 and b"not valid JSON" in body
    assert server.request("POST", "/echo", body=b"\xff\xfe",
                          headers={"Content-Type": "text/plain"})[0] == 400
    status, _, body = server.request("POST", "/echo", body=b"a=1&a=2&b=",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert json.loads(body) == {"a": "2", "b": ""}


def test_returned_values_errors_and_methods(start_server: StartServer) -> None:
    server = start_server("--routes", ROUTES)
    status, headers, body = server.request("GET", "/blob")
    assert (status, body, headers["content-type"]) == (200, b"<svg/>", "image/svg+xml")
    status, headers, body = server.request("GET", "/sync")
    assert (body, headers["content-type"]) == (b"\x00raw", "application/octet-stream")
    status, headers, body = server.request("POST", "/echo", body=b"text",
                                           headers={"Content-Type": "text/plain"})
    assert (body, headers["content-type"]) == (b"text", "text/plain; charset=utf-8")
    # errors go through errors/{code}/GET.py
    status, _, body = server.request("GET", "/http-error")
    assert (status, body) == (403, b"error 403 at /http-error: Forbidden Access")
    status, _, body = server.request("GET", "/exception")
    assert status == 500 and body == b"error 500 at /exception: Internal Server Error"
    server.wait_for_log("Oups... secret route detail")
    status, _, body = server.request("GET", "/no/such/route")
    assert (status, body) == (404, b"error 404 at /no/such/route: Not Found")
    status, headers, body = server.request("PUT", "/hello-world")
    assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS"
    assert body == b"error 405 at /hello-world: Method Not Allowed"
    status, headers, _ = server.request("OPTIONS", "/users/7")
    assert status == 204 and headers["allow"] == "DELETE, GET, HEAD, OPTIONS"
    head = server.request("HEAD", "/hello-world")
    assert head[0] == 200 and head[2] == b""


def test_sse_route(start_server: StartServer) -> None:
    server = start_server("--routes", ROUTES)
    status, headers, body = server.request("GET", "/server-sent-events")
    assert status == 200 and headers["content-type"].startswith("text/event-stream")
    assert body == b"".join(b'event: event_name\ndata: {"count":%d}\n\n' % i for i in range(3))


def test_routes_and_static_in_front_of_an_app(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server("--app", "mymod:handler", "--routes", ROUTES,
                          "--static", f"/files={APPS / 'site'}")
    assert json.loads(server.request("GET", "/hello-world")[2]) == {"message": "Hello World"}
    assert server.request("GET", "/hello")[2] == b"Hello world!"  # no route: the app
    assert server.request("GET", "/files/style.css")[0] == 200
    assert server.request("GET", "/no/such/route")[2] == b"I don't know what to say"


def test_a_broken_route_file_stops_the_start(tmp_path: Path) -> None:
    routes = tmp_path / "routes" / "bad"
    routes.mkdir(parents=True)
    (routes / "GET.py").write_text("raise RuntimeError('broken at import')\n")
    (tmp_path / "routes" / "nodefault").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "forkhttpd", "--routes", str(tmp_path / "routes"), "--bind",
         "127.0.0.1:0"], cwd=tmp_path, capture_output=True, text=True, timeout=30,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 2
    assert "broken at import" in result.stderr and "bad/GET.py" in result.stderr
