"""Property tests (hypothesis) for forkhttpd.protocol; h11 serves as an independent oracle."""

from __future__ import annotations

from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forkhttpd.protocol import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Limits,
    ProtocolError,
    Request,
    ServerConnection,
)

FAST = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LAX = Limits(require_host=False)
SPECIAL = {"host", "content-length", "transfer-encoding", "connection", "expect"}
TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VCHARS = "".join(chr(c) for c in range(0x21, 0x7F)) + "\xa0\xe9\xff"


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


def serve(pieces: list[bytes], limits: Limits = LAX) -> list[Any]:
    """A server loop over `pieces` then EOF; returns a normalised event list."""
    conn = ServerConnection(limits)
    feed = iter(pieces)
    out: list[Any] = []
    body = bytearray()
    eof = False
    while True:
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            assert 400 <= exc.status <= 599 and exc.reason
            conn.error_response(exc)
            return [*out, ("body", bytes(body)), ("error", exc.status)]
        if event is NEED_DATA:
            assert not eof, "NEED_DATA after EOF"
            piece = next(feed, b"")
            eof = not piece
            conn.receive_data(piece)
        elif isinstance(event, Request):
            out.append(event)
        elif isinstance(event, Data):
            body += event.data
        elif isinstance(event, EndOfMessage):
            out.append(("message", bytes(body), event.trailers))
            body.clear()
            conn.simple_response(200, [], b"")
        elif event is PAUSED:
            if not conn.keep_alive:
                return [*out, "server-close"]
            conn.start_next_cycle()
        else:
            assert isinstance(event, ConnectionClosed)
            return [*out, "peer-closed"]


# --------------------------------------------------------------------------- robustness

@FAST
@given(st.binary(max_size=600), st.lists(st.integers(0, 600), max_size=8))
def test_arbitrary_bytes_only_raise_protocol_error(data: bytes, cuts: list[int]) -> None:
    serve(split(data, cuts))  # any other exception fails the test


SEEDS = [
    b"GET /a?b=c HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.0\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a=b\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"GET http://h:80/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"\r\nOPTIONS * HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
]
NOISE = st.sampled_from([b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b";", b",", b"a",
                         b"0", b"F", b"\x7f", b"\xff", b"\r\n\r\n", b"/", b"?", b"#", b'"'])


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        if action == "delete":
            del data[pos:pos + draw(st.integers(1, 3))]
        else:
            noise = draw(NOISE)
            data[pos:pos + (len(noise) if action == "replace" else 0)] = noise
    return bytes(data)


@settings(FAST, max_examples=300)
@given(mutated(), st.lists(st.integers(0, 400), max_size=6))
def test_verdict_does_not_depend_on_packet_boundaries(data: bytes, cuts: list[int]) -> None:
    # Same events and same error status, whole / byte by byte / random splits: a
    # difference here is the kind of parser differential request smuggling feeds on.
    whole = serve([data])
    assert serve([data[i:i + 1] for i in range(len(data))]) == whole
    assert serve(split(data, cuts)) == whole


# --------------------------------------------------------------------------- round trip

token = st.text(TCHARS, min_size=1, max_size=12)
value_word = st.text(VCHARS, min_size=1, max_size=10)
field_value = st.lists(value_word, max_size=4).flatmap(
    lambda words: st.lists(st.sampled_from([" ", "\t", "  "]), min_size=len(words),
                           max_size=len(words)).map(
        lambda seps: words[0] + "".join(s + w for s, w in zip(seps[1:], words[1:], strict=True))
        if words else ""))
ows = st.sampled_from(["", " ", "\t", " \t "])
path_chars = st.text("abcxyzABC019-._~%!$&'()*+,;=:@/", max_size=20)


@st.composite
def requests(draw: st.DrawFn, last: bool) -> tuple[bytes, dict[str, Any]]:
    method = draw(token.filter(lambda m: m != "CONNECT"))
    path = "/" + draw(path_chars)
    query = draw(st.none() | st.text("abc=&?/%:@", max_size=10))
    version = draw(st.sampled_from(["1.0", "1.1"]))
    host = draw(st.text("abcxyz0189.-", min_size=1, max_size=15))
    host += draw(st.sampled_from(["", ":", ":80", ":8080"]))
    headers = draw(st.lists(st.tuples(token.filter(lambda n: n.lower() not in SPECIAL),
                                      field_value, ows, ows), max_size=6))
    keep = True if not last else draw(st.booleans())
    framing = draw(st.sampled_from(["none", "length"] + (["chunked"] if version == "1.1" else [])))
    body = draw(st.binary(max_size=60)) if framing != "none" else b""
    target = path + ("" if query is None else "?" + query)
    lines = [f"{method} {target} HTTP/{version}", f"Host: {host}"]
    lines += [f"{n}:{a}{v}{b}" for n, v, a, b in headers]
    if version == "1.0" and keep:
        lines.append("Connection: keep-alive")
    elif version == "1.1" and not keep:
        lines.append("Connection: close")
    trailers: list[tuple[str, str]] = []
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
        wire = body
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        sizes = draw(st.lists(st.integers(1, 20), max_size=5))
        wire, rest = b"", body
        for size in sizes:
            if not rest:
                break
            piece, rest = rest[:size], rest[size:]
            ext = draw(st.sampled_from(["", ";a", ";a=b", ';q="x y"', " ; k = v"]))
            wire += b"%x%s\r\n%s\r\n" % (len(piece), ext.encode(), piece)
        if rest:
            wire += b"%X\r\n%s\r\n" % (len(rest), rest)
        trailers = [(n.lower(), v) for n, v in draw(st.lists(st.tuples(
            token.filter(lambda n: n.lower() not in SPECIAL | {"trailer", "te", "cookie"}),
            field_value), max_size=2))]
        wire += b"0\r\n" + b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in trailers)
        wire += b"\r\n"
    else:
        wire = b""
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + wire
    expected = {
        "method": method, "target": target, "path": path, "query": query or "",
        "version": version, "host": host, "keep_alive": keep,
        "headers": [("host", host)] + [(n.lower(), v) for n, v, _, _ in headers],
        "content_length": len(body) if framing == "length" else None,
        "chunked": framing == "chunked", "body": body, "trailers": trailers,
    }
    return data, expected


@st.composite
def pipelines(draw: st.DrawFn) -> list[tuple[bytes, dict[str, Any]]]:
    n = draw(st.integers(1, 3))
    return [draw(requests(last=i == n - 1)) for i in range(n)]


@settings(FAST, max_examples=100)
@given(pipelines(), st.lists(st.integers(0, 2000), max_size=10))
def test_generated_requests_parse_back(pipeline: list[tuple[bytes, dict[str, Any]]],
                                       cuts: list[int]) -> None:
    data = b"".join(d for d, _ in pipeline)
    result = serve(split(data, cuts), Limits())
    assert result[-1] in ("peer-closed", "server-close"), result
    parsed = result[:-1]
    assert len(parsed) == 2 * len(pipeline)
    for (_, exp), req, message in zip(pipeline, parsed[::2], parsed[1::2], strict=True):
        assert isinstance(req, Request)
        for key in ("method", "target", "path", "query", "version", "host", "keep_alive",
                    "content_length", "chunked"):
            assert getattr(req, key) == exp[key], key
        extra = [h for h in req.headers if h[0] in ("connection", "content-length",
                                                    "transfer-encoding")]
        assert [h for h in req.headers if h not in extra] == exp["headers"]
        assert message == ("message", exp["body"], exp["trailers"])


# --------------------------------------------------------------------------- writer vs h11

@st.composite
def responses(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "method": draw(st.sampled_from(["GET", "HEAD", "POST"])),
        "version": draw(st.sampled_from(["1.0", "1.1"])),
        "client_close": draw(st.booleans()),
        "status": draw(st.sampled_from([200, 201, 204, 206, 301, 304, 400, 404, 418, 500, 503,
                                        299, 599])),
        "headers": draw(st.lists(st.tuples(token.filter(
            lambda n: n.lower() not in {"content-length", "transfer-encoding", "connection"}),
            field_value), max_size=5)),
        "pieces": draw(st.lists(st.binary(max_size=40), max_size=4)),
        "mode": draw(st.sampled_from(["simple", "length", "stream"])),
        "close": draw(st.booleans()),
        "interim": draw(st.booleans()),
    }


@settings(FAST, max_examples=120)
@given(responses())
def test_writer_output_parses_with_h11(r: dict[str, Any]) -> None:
    conn_line = ""
    if r["version"] == "1.1" and r["client_close"]:
        conn_line = "Connection: close\r\n"
    elif r["version"] == "1.0" and not r["client_close"]:
        conn_line = "Connection: keep-alive\r\n"
    server = ServerConnection(LAX)
    server.receive_data(f"{r['method']} / HTTP/{r['version']}\r\n{conn_line}\r\n".encode())
    assert isinstance(server.next_event(), Request)
    assert isinstance(server.next_event(), EndOfMessage)

    body = b"".join(r["pieces"])
    wire = server.informational_response(103) if r["interim"] else b""
    if r["mode"] == "simple":
        wire += server.simple_response(r["status"], r["headers"], body, close=r["close"])
    else:
        length = len(body) if r["mode"] == "length" else None
        wire += server.start_response(r["status"], r["headers"], length, close=r["close"])
        wire += b"".join(server.send_data(p) for p in r["pieces"])
        wire += server.end_response()

    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method=r["method"], target="/", headers=[("Host", "h")]))
    client.send(h11.EndOfMessage())
    client.receive_data(wire)
    if not server.keep_alive:
        client.receive_data(b"")  # we close after a non-persistent response
    got: list[Any] = []
    while (event := client.next_event()) is not h11.NEED_DATA:
        got.append(event)
        if isinstance(event, h11.EndOfMessage):
            break
    interim = [e for e in got if isinstance(e, h11.InformationalResponse)]
    assert [e.status_code for e in interim] == ([103] if r["interim"] and
                                                 r["version"] == "1.1" else [])
    final = [e for e in got if isinstance(e, h11.Response)]
    assert len(final) == 1 and final[0].status_code == r["status"]
    names = {"content-length", "transfer-encoding", "connection"}
    ours = [(n.decode(), v.decode("latin-1")) for n, v in final[0].headers
            if n.decode() not in names]
    assert ours == [(n.lower(), v) for n, v in r["headers"]]
    received = b"".join(bytes(e.data) for e in got if isinstance(e, h11.Data))
    bodiless = r["method"] == "HEAD" or r["status"] in (204, 304)
    assert received == (b"" if bodiless else body)
    assert isinstance(got[-1], h11.EndOfMessage)
    # h11 must agree with our keep-alive decision
    assert (client.their_state is h11.DONE) == server.keep_alive, client.states
