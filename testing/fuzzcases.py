"""Seeded generator of hostile requests over every endpoint of the service (issue 10).

Each case family below is one function `family(rng, media) -> Case` whose docstring
says which attack it stands for. A Case holds its random choices (made at generation
time from `random.Random(seed)`, so a seed always gives the same cases) and a `build`
function that turns them into the exact bytes to write on a socket once the harness
knows the live values: a fresh signed timestamp (the window is 300 s and a long run
outlasts it) and, for WHIP and result cases, a session the harness created first.

The requests are raw HTTP/1.1 bytes, not an HTTP client's: most attacks (bad request
lines, folded headers, a short Content-Length, broken chunked encoding) are exactly
what a well-behaved client library refuses to send. Every request carries
`Connection: close` unless the attack is about keep-alive, so an answer ends at EOF.

No request leaves loopback: SDP candidates name 127.0.0.1 or ::1 only, never a
hostname (a DNS or mDNS lookup) or another address (STUN checks sent to it).
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import time
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, quote_from_bytes, urlsplit

from testing.client import signed_fields
from testing.fuzzmedia import (
    TIFF_BITS,
    TIFF_DOUBLE,
    TIFF_HEIGHT,
    TIFF_STRIP_OFFSETS,
    TIFF_WIDTH,
    MediaCorpus,
    avi_size,
    bmp_size,
    flip_bytes,
    gif_size,
    jp2_ihdr,
    jp2_siz,
    jpeg_size,
    load_corpus,
    mp4_sample_size,
    mp4_timescale_zero,
    mpeg_size,
    mutate,
    mutate_metadata,
    png_size,
    replace_all,
    tiff_patch,
    truncate,
    webp_canvas,
)

# A marker put in over-long lines and headers: it must never come back in an answer.
MARK = "FUZZMARK"


@dataclass(frozen=True)
class Request:
    """One request as bytes on a fresh connection, and what its answer may be."""

    raw: bytes
    method: str
    path: str
    # The request may be incomplete (a body cut short, a chunk never ended): if the
    # server waits for more, our write side is shut so it sees EOF, and it may then
    # close without an answer.
    half_close: bool = False
    # Envelope statuses this request must get (empty: any status but 5000).
    expect: frozenset[str] = frozenset()


@dataclass
class Context:
    """Live values a case is built with; records every credential it hands out so the
    harness can look for them in the log."""

    key: str
    secret: str
    session_id: str = ""
    session_token: str = ""
    credentials: set[str] = field(default_factory=set)

    def signed(self, offset_s: float = 0.0, key: str | None = None,
               secret: str | None = None) -> dict[str, str]:
        fields = signed_fields(key or self.key, secret or self.secret,
                               f"{time.time() + offset_s:.6f}")
        self.credentials.add(fields["token"])
        return fields


Build = Callable[[Context], Sequence[Request]]


@dataclass(frozen=True)
class Case:
    family: str
    description: str
    build: Build
    # "" | "session": the harness creates a fresh session first | "offered": and sends
    # it a valid WHIP offer (trickle PATCH needs a peer connection)
    needs: str = ""


# ---- HTTP serialisation -------------------------------------------------------------


def _b(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8")


def http(method: str, path: str | bytes, headers: Sequence[tuple[str | bytes, str | bytes]] = (),
         body: bytes = b"", *, length: int | bool = True, close: bool = True,
         version: str = "HTTP/1.1") -> bytes:
    """Serialise a request. length=True sends the true Content-Length, False none, an
    int that (lying) value."""
    lines = [_b(method) + b" " + _b(path) + b" " + _b(version), b"Host: 127.0.0.1"]
    lines += [_b(k) + b": " + _b(v) for k, v in headers]
    if length is True:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    elif length is not False:
        lines.append(b"Content-Length: " + str(length).encode())
    if close:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def req(method: str, path: str, headers: Sequence[tuple[str | bytes, str | bytes]] = (),
        body: bytes = b"", expect: Sequence[str] = (), *, length: int | bool = True,
        half_close: bool = False) -> Request:
    return Request(http(method, path, headers, body, length=length), method, path,
                   half_close=half_close, expect=frozenset(expect))


def form_body(fields: Sequence[tuple[str | bytes, str | bytes]]) -> bytes:
    return b"&".join(quote_from_bytes(_b(k)).encode() + b"=" + quote_from_bytes(_b(v)).encode()
                     for k, v in fields)


FORM = ("Content-Type", "application/x-www-form-urlencoded")


def part(name: str | bytes | None, value: bytes, filename: str | bytes | None = None,
         ctype: str | None = None, extra: Sequence[bytes] = ()) -> tuple[list[bytes], bytes]:
    disp = b"Content-Disposition: form-data"
    if name is not None:
        disp += b'; name="' + _b(name) + b'"'
    if filename is not None:
        disp += b'; filename="' + _b(filename) + b'"'
    headers = [disp]
    if ctype:
        headers.append(b"Content-Type: " + _b(ctype))
    return headers + list(extra), value


def multipart(parts: Sequence[tuple[list[bytes], bytes]], boundary: bytes = b"fuzzboundary",
              closing: bool = True) -> bytes:
    out = b""
    for headers, value in parts:
        out += b"--" + boundary + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + value + b"\r\n"
    if closing:
        out += b"--" + boundary + b"--\r\n"
    return out


def mp_type(boundary: bytes = b"fuzzboundary") -> tuple[str, bytes]:
    return ("Content-Type", b"multipart/form-data; boundary=" + boundary)


def fields_parts(fields: dict[str, str]) -> list[tuple[list[bytes], bytes]]:
    return [part(k, v.encode()) for k, v in fields.items()]


def signed_verify_form(ctx: Context, type_id: str, media: dict[str, bytes],
                       as_files: bool, path: str = "/api/verify") -> Request:
    """A valid, signed verify request carrying `media` (base64 fields or file parts)."""
    fields = {**ctx.signed(), "typeId": type_id}
    if as_files:
        parts = fields_parts(fields) + [part(n, d, f"{n}.bin", "application/octet-stream")
                                        for n, d in media.items()]
        return req("POST", path, [mp_type()], multipart(parts))
    pairs = list(fields.items()) + [(n, base64.b64encode(d).decode()) for n, d in media.items()]
    return req("POST", path, [FORM], form_body(pairs))


def media_request(ctx: Context, route: tuple[str, str, bool], data: bytes,
                  expect: Sequence[str] = ()) -> Request:
    """A signed request with `data` as every image of the route (typeId, path, as file
    parts or base64 fields)."""
    type_id, path, as_files = route
    if type_id == "21":
        media = {"img1": data, "img2": data}
    else:
        media = {"file" if as_files else "img": data}
    r = signed_verify_form(ctx, type_id, media, as_files, path)
    return Request(r.raw, r.method, r.path, expect=frozenset(expect))


def _route(rng: random.Random) -> tuple[str, str, bool]:
    return (rng.choice(("21", "3035", "3035")), rng.choice(("/api/verify", "/")),
            rng.random() < 0.5)


def _one(request: Request) -> Build:
    return lambda ctx: [request]


# ---- raw HTTP families --------------------------------------------------------------


def http_request_line(rng: random.Random, media: MediaCorpus) -> Case:
    """Broken request lines: what a scanner or a confused proxy sends before any header
    is read (aiohttp's own 400s and 505s, which must still be the envelope)."""
    lines = [
        b"GET / HTTP/1.1 extra", b"GET /", b"GET", b"", b" / HTTP/1.1", b"GET  /  HTTP/1.1",
        b"GET / HTTP/2.0", b"GET / HTTP/9.9", b"GET / HTTP/1.x", b"GET / FTP/1.1",
        b"G\x00T / HTTP/1.1", b"GET /\xff\xfe HTTP/1.1", b"GET /\x01\x02 HTTP/1.1",
        b"POST /api/verify\x00 HTTP/1.1", b"\xde\xad\xbe\xef", b"GET /" + b"a" * 9000 + b" HTTP/1.1",
        b"GET /?" + MARK.encode() + b"q" * 9000 + b" HTTP/1.1", b"PRI * HTTP/2.0",
        b"GET http://example.invalid/ HTTP/1.1", b"CONNECT 127.0.0.1:1 HTTP/1.1",
        b"GET * HTTP/1.1", b"\r\n\r\nGET / HTTP/1.1", b"GET /%zz HTTP/1.1",
        b"GET /api/verify?%ff%fe=%c3%28 HTTP/1.1", "GET /ü HTTP/1.1".encode("latin-1"),
        b"M" * 100 + b" / HTTP/1.1",
    ]
    line = rng.choice(lines)
    if rng.random() < 0.3:
        line = flip_bytes(line, rng, count=rng.randint(1, 3))
    raw = line + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    # what a lenient parser makes of it (a valid GET / must get the page, not an error)
    words = line.strip().split()
    method = words[0].decode("latin-1") if words else "?"
    path = urlsplit(words[1].decode("latin-1")).path or "?" if len(words) > 1 else "?"
    return Case("http_request_line", f"request line {line[:40]!r}",
                _one(Request(raw, method, path, half_close=True)))


def http_headers(rng: random.Random, media: MediaCorpus) -> Case:
    """Malformed header blocks: over-long values carrying a bearer token (echoed and
    logged by aiohttp), folded lines, no colon, NUL and non-UTF-8 bytes, conflicting
    lengths, unknown Expect, thousands of headers."""
    big = MARK + "Bearer " + "A" * rng.choice((8190, 8200, 20000, 70000))
    variants: list[tuple[str, list[tuple[bytes, bytes]]]] = [
        ("over-long header", [(b"X-Fuzz", big.encode())]),
        ("over-long Authorization", [(b"Authorization", big.encode())]),
        ("over-long header name", [((MARK + "N" * 9000).encode(), b"1")]),
        ("folded header", [(b"X-Fuzz", b"first\r\n second"), (b"Content-Type", FORM[1].encode())]),
        ("header without colon", [(b"NoColonHere", b"")]),
        ("space before colon", [(b"Content-Type ", FORM[1].encode())]),
        ("NUL in value", [(b"X-Fuzz", b"a\x00b")]),
        ("non-UTF-8 value", [(b"X-Fuzz", b"\xff\xfe\xfd"), (b"Authorization", b"Bearer \xff\xfe")]),
        ("two Content-Lengths", [(b"Content-Length", b"3"), (b"Content-Length", b"5")]),
        ("negative Content-Length", [(b"Content-Length", b"-1")]),
        ("non-numeric Content-Length", [(b"Content-Length", b"abc")]),
        ("huge Content-Length", [(b"Content-Length", b"99999999999999999999999")]),
        ("Content-Length and chunked", [(b"Content-Length", b"3"), (b"Transfer-Encoding", b"chunked")]),
        ("unknown Transfer-Encoding", [(b"Transfer-Encoding", b"fuzz")]),
        ("Expect: fuzz", [(b"Expect", b"fuzz-continue")]),
        ("Expect: 100-continue", [(b"Expect", b"100-continue")]),
        ("5000 headers", [(f"X-H{i}".encode(), b"v") for i in range(5000)]),
        ("Host twice", [(b"Host", b"a"), (b"Host", b"b")]),
        ("Content-Type garbage", [(b"Content-Type", b";;;==;boundary")]),
        ("Content-Type charset unknown", [(b"Content-Type", FORM[1].encode() + b"; charset=fuzz-8")]),
    ]
    name, headers = rng.choice(variants)
    method, path = rng.choice((("GET", "/healthz"), ("POST", "/api/verify"),
                               ("POST", "/v1/sessions"), ("GET", "/v1/sessions/x/result")))
    body = form_body([("key", "k")]) if method == "POST" else b""
    has_length = any(k.lower() in (b"content-length", b"transfer-encoding") for k, _ in headers)
    raw = http(method, path, headers, body, length=not has_length)
    return Case("http_headers", f"{name} on {method} {path}",
                _one(Request(raw, method, path, half_close=True)))


def http_chunked(rng: random.Random, media: MediaCorpus) -> Case:
    """Chunked bodies that lie: bad hex sizes, huge sizes, missing CRLFs, extensions
    and trailers, or no terminating chunk (a request smuggling probe)."""
    payload = form_body([("key", "fuzz"), ("typeId", "21")])
    variants = {
        "bad hex": b"zz\r\n" + payload + b"\r\n0\r\n\r\n",
        "huge size": b"ffffffffffffffffff\r\n" + payload + b"\r\n0\r\n\r\n",
        "negative size": b"-5\r\nabcde\r\n0\r\n\r\n",
        "missing CRLF": b"%x\r\n" % len(payload) + payload + b"0\r\n\r\n",
        "size too small": b"3\r\n" + payload + b"\r\n0\r\n\r\n",
        "extension garbage": b"%x;\xff\xfe=\x00\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n",
        "trailer": b"%x\r\n" % len(payload) + payload + b"\r\n0\r\nX-Trailer: \xff\r\n\r\n",
        "no last chunk": b"%x\r\n" % len(payload) + payload + b"\r\n",
        "LF only": b"%x\n" % len(payload) + payload + b"\n0\n\n",
        "many tiny chunks": b"".join(b"1\r\n" + bytes([c]) + b"\r\n" for c in payload) + b"0\r\n\r\n",
        "chunked twice": b"%x\r\n" % len(payload) + payload + b"\r\n0\r\n\r\n",
    }
    name = rng.choice(sorted(variants))
    te = b"chunked, chunked" if name == "chunked twice" else b"chunked"
    path = rng.choice(("/api/verify", "/v1/sessions", "/"))
    raw = http("POST", path, [FORM, (b"Transfer-Encoding", te)], variants[name], length=False)
    return Case("http_chunked", f"chunked {name} to {path}",
                _one(Request(raw, "POST", path, half_close=True)))


def http_content_length(rng: random.Random, media: MediaCorpus) -> Case:
    """Content-Length that disagrees with the body. Short: the leftover bytes (a signed
    body with its token and base64 image) are what aiohttp logged with `Connection:
    close`, and are parsed as a next request with keep-alive (its answer must be the
    envelope too); long: the server waits for bytes that never come (we half-close)."""
    def build(ctx: Context) -> list[Request]:
        fields = {**ctx.signed(), "typeId": "3035"}
        body = form_body(list(fields.items()) +
                         [("img", base64.b64encode(media.faces[min(media.faces)]).decode())])
        if short:
            raw = http("POST", path, [FORM], body, length=cut, close=not keep_alive)
        else:
            raw = http("POST", path, [FORM], body[:cut], length=len(body))
        return [Request(raw, "POST", path, half_close=True)]
    short = rng.random() < 0.6
    keep_alive = rng.random() < 0.5  # the leftover is then read as the next request
    cut = rng.choice((0, 1, 10, 40, 100, 200))
    path = rng.choice(("/api/verify", "/", "/v1/sessions"))
    what = (f"short (leftover signed body{', keep-alive' if keep_alive else ''})" if short
            else "long (body cut, half-close)")
    return Case("http_content_length", f"Content-Length {what} at {cut} to {path}", build)


@lru_cache(maxsize=1)
def _gzip_bomb() -> bytes:
    """40 MB of form data in ~40 KB: must be refused by size, not inflated."""
    return gzip.compress(b"a=" + b"0" * 40_000_000)


def http_encoding(rng: random.Random, media: MediaCorpus) -> Case:
    """Content-Encoding and charset games: invalid gzip/deflate, an unknown or stacked
    encoding, a gzip bomb, a valid gzip of a signed form, charsets Python does not know."""
    def build(ctx: Context) -> list[Request]:
        fields = {**ctx.signed(), "typeId": "21"}
        plain = form_body(list(fields.items()))
        bodies = {
            "invalid gzip": (b"gzip", b"\x1f\x8b\x08\x00garbage" + rng_bytes),
            "invalid deflate": (b"deflate", rng_bytes),
            "truncated gzip": (b"gzip", gzip.compress(plain)[:20]),
            "valid gzip": (b"gzip", gzip.compress(plain)),
            "gzip bomb": (b"gzip", _gzip_bomb()),
            "br garbage": (b"br", rng_bytes),
            "unknown": (b"fuzz", plain),
            "stacked": (b"gzip, deflate, gzip", zlib.compress(plain)),
            "charset unknown": (None, plain),
            "charset utf-16 with UTF-8 body": (None, plain),
            "charset latin-1 with bytes": (None, plain + b"&x=\xff\xfe"),
        }
        enc, body = bodies[name]
        ctype = FORM[1].encode()
        if name.startswith("charset"):
            ctype += {"charset unknown": b"; charset=fuzz-99",
                      "charset utf-16 with UTF-8 body": b"; charset=utf-16",
                      "charset latin-1 with bytes": b"; charset=latin-1"}[name]
        headers: list[tuple[str | bytes, str | bytes]] = [(b"Content-Type", ctype)]
        if enc:
            headers.append((b"Content-Encoding", enc))
        return [req("POST", path, headers, body)]
    rng_bytes = rng.randbytes(rng.randint(1, 200))
    name = rng.choice(("invalid gzip", "invalid deflate", "truncated gzip", "valid gzip",
                       "gzip bomb", "br garbage", "unknown", "stacked", "charset unknown",
                       "charset utf-16 with UTF-8 body", "charset latin-1 with bytes"))
    path = rng.choice(("/api/verify", "/", "/v1/sessions"))
    return Case("http_encoding", f"{name} to {path}", build)


def http_paths_methods(rng: random.Random, media: MediaCorpus) -> Case:
    """Any method on any path: unknown paths (404), wrong methods (405), traversal
    attempts on /web/, percent-encoded non-UTF-8, very long paths, odd methods."""
    paths = ["/nope", "/api", "/api/verify/", "/API/VERIFY", "/v1", "/v1/sessions/",
             "/v1/sessions/x", "/v1/sessions/x/whip/extra", "/web/", "/web/../../etc/passwd",
             "/web/%2e%2e%2fservice%2fconfig.py", "/web/.hidden", "/web/index.html%00.js",
             "/%ff%fe", "/api/verify?typeId=%ff", "//api//verify", "/web/" + "a" * 4000,
             "/v1/sessions/%00/result", "/v1/sessions/" + "x" * 3000 + "/whip", "/healthz/",
             "/readyz?x=1", "/favicon.ico", "/v1/demo/sessions", "/web/verify.js?%zz"]
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "TRACE",
               "CONNECT", "FUZZ", "get", "M-SEARCH", "PROPFIND"]
    path, method = rng.choice(paths), rng.choice(methods)
    body = rng.choice((b"", b"x=1", rng.randbytes(64)))
    headers = [FORM] if body else []
    return Case("http_paths_methods", f"{method} {path[:60]}",
                _one(req(method, path, headers, body, half_close=method in ("CONNECT",))))


def http_legit_pages(rng: random.Random, media: MediaCorpus) -> Case:
    """The answers that are not the envelope by design (health, the web page, CORS
    preflights): they must stay what they are under odd but valid requests."""
    options = [("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/"), ("HEAD", "/"),
               ("GET", "/web/verify.js"), ("GET", "/web/index.html"),
               ("OPTIONS", "/v1/sessions"), ("OPTIONS", "/v1/sessions/abc/whip"),
               ("OPTIONS", "/v1/sessions/abc/result"), ("HEAD", "/healthz")]
    method, path = rng.choice(options)
    headers = rng.choice(([], [(b"Origin", b"https://evil.invalid")],
                          [(b"Access-Control-Request-Method", b"PATCH")],
                          [(b"Accept-Encoding", b"gzip, br, fuzz")], [(b"Range", b"bytes=5-1")]))
    return Case("http_legit_pages", f"{method} {path}", _one(req(method, path, headers)))


# ---- POST /api/verify --------------------------------------------------------------


def verify_form_fields(rng: random.Random, media: MediaCorpus) -> Case:
    """Form-urlencoded bodies with fields missing, empty, duplicated, huge, non-UTF-8
    (raw or percent-encoded), bad typeIds, or a body that is not a form at all."""
    def build(ctx: Context) -> list[Request]:
        fields: list[tuple[str | bytes, str | bytes]] = list(
            {**(ctx.signed() if signed else {"key": "fuzzkey", "timestamp": "1", "token": "0"}),
             "typeId": type_id}.items())
        if drop is not None:
            del fields[drop]
        if twist == "non-UTF-8 value":
            fields.append(("img", b"\xff\xfe\xc3\x28"))
        elif twist == "non-UTF-8 name":
            fields.append((b"\xff\xfename", b"1"))
        elif twist == "duplicate typeId":
            fields.append(("typeId", "3035"))
        elif twist == "huge field":
            fields.append(("x", "a" * 2_000_000))
        elif twist == "10000 fields":
            fields += [(f"f{i}", "v") for i in range(10000)]
        body = form_body(fields)
        if twist == "raw non-UTF-8 bytes":
            body += b"&\xff\xfe=\xc3\x28"
        elif twist == "no '='":
            body += b"&justaname"
        elif twist == "bad percent":
            body += b"&x=%zz%f&%%=1"
        elif twist == "semicolon separators":
            body = body.replace(b"&", b";")
        headers = [(b"Content-Type", ctype)] if ctype else []
        return [req("POST", path, headers, body)]
    signed = rng.random() < 0.7
    type_id = rng.choice(("21", "3035", "0", "-1", "99999999999999999999", "abc", " 21 ",
                          "21.0", "1e3", "\u0662\u0661", "", "3035\x00"))
    drop = rng.choice((None, None, 0, 1, 2, 3))
    twist = rng.choice(("none", "non-UTF-8 value", "non-UTF-8 name", "duplicate typeId",
                        "huge field", "10000 fields", "raw non-UTF-8 bytes", "no '='",
                        "bad percent", "semicolon separators"))
    ctype = rng.choice((FORM[1].encode(), FORM[1].encode(), b"text/plain", b"application/json",
                        b"application/octet-stream", None, b"application/x-www-form-urlencoded; charset=utf-8"))
    path = rng.choice(("/api/verify", "/"))
    return Case("verify_form_fields",
                f"{'signed' if signed else 'unsigned'} typeId={type_id!r} drop={drop} {twist} "
                f"ctype={ctype!r}", build)


def verify_multipart_structure(rng: random.Random, media: MediaCorpus) -> Case:
    """Multipart bodies broken in structure: no closing boundary, nameless or nested
    parts, a boundary over 70 characters or absent, folded part headers, unknown
    charsets and Content-Transfer-Encodings, non-UTF-8 names, very long lines."""
    def build(ctx: Context) -> list[Request]:
        fields = {**ctx.signed(), "typeId": rng_type}
        parts = fields_parts(fields)
        img = media.faces[face]
        file_part = part("file" if rng_type == "3035" else "img1", img, "f.jpg", "image/jpeg")
        boundary = b"fuzzboundary"
        ctype: bytes | None = None
        closing = True
        if twist == "no closing boundary":
            closing = False
            parts.append(file_part)
        elif twist == "nameless part":
            parts.append(part(None, img, "f.jpg", "image/jpeg"))
        elif twist == "nested multipart":
            inner = multipart([file_part], b"inner")
            parts.append(part("file", inner, None, "multipart/mixed; boundary=inner"))
        elif twist == "boundary over 70":
            boundary = b"b" * long_boundary
            parts.append(file_part)
        elif twist == "no boundary parameter":
            ctype = b"multipart/form-data"
        elif twist == "empty boundary":
            ctype, boundary = b'multipart/form-data; boundary=""', b""
        elif twist == "folded part header":
            parts.append(([b'Content-Disposition: form-data;\r\n name="file"; filename="a"'], img))
        elif twist == "unknown charset":
            parts.append(part("img1", b"abc", None, "text/plain; charset=fuzz-99"))
        elif twist == "utf-16 charset":
            parts.append(part("x", "hé".encode("utf-16"), None, "text/plain; charset=utf-16"))
        elif twist == "unknown transfer encoding":
            parts.append(part("file", img, "a", None, [b"Content-Transfer-Encoding: fuzz64"]))
        elif twist == "base64 transfer encoding":
            parts.append(part("file", base64.b64encode(img) + b"!!", "a", None,
                              [b"Content-Transfer-Encoding: base64"]))
        elif twist == "quoted-printable":
            parts.append(part("file", b"=ZZ=\r\n", "a", None,
                              [b"Content-Transfer-Encoding: quoted-printable"]))
        elif twist == "non-UTF-8 name":
            parts.append(part(b"\xff\xfe", b"v"))
        elif twist == "non-UTF-8 filename":
            parts.append(part("file", img, b"\xff\xfe.jpg", "image/jpeg"))
        elif twist == "RFC 2231 filename":
            parts.append(([b"Content-Disposition: form-data; name=\"file\"; "
                           + b"filename*=fuzz-99''%ff%fe"], img))
        elif twist == "very long line":
            parts.append(part("x", (MARK + "l" * 300_000).encode()))
        elif twist == "long part header":
            parts.append(part("file", img, None, None, [b"X-Fuzz: " + MARK.encode() + b"h" * 20000]))
        elif twist == "gzip part":
            parts.append(part("file", b"garbage", "a", None, [b"Content-Encoding: gzip"]))
        elif twist == "no part headers":
            parts.append(([], img))
        elif twist == "2000 parts":
            parts += [part(f"p{i}", b"v") for i in range(2000)]
        elif twist == "duplicate file parts":
            parts += [file_part, file_part]
        elif twist in ("garbage before first boundary", "LF line endings"):
            parts.append(file_part)
        body = multipart(parts, boundary, closing)
        if twist == "garbage before first boundary":
            body = b"preamble \xff\r\n" + body
        elif twist == "LF line endings":
            body = body.replace(b"\r\n", b"\n")
        if ctype is None:
            ctype = b"multipart/form-data; boundary=" + boundary
        return [req("POST", path, [(b"Content-Type", ctype)], body)]
    twist = rng.choice(("no closing boundary", "nameless part", "nested multipart",
                        "boundary over 70", "no boundary parameter", "empty boundary",
                        "folded part header", "unknown charset", "utf-16 charset",
                        "unknown transfer encoding", "base64 transfer encoding",
                        "quoted-printable", "non-UTF-8 name", "non-UTF-8 filename",
                        "RFC 2231 filename", "very long line", "long part header", "gzip part",
                        "no part headers", "2000 parts", "duplicate file parts",
                        "garbage before first boundary", "LF line endings"))
    rng_type = rng.choice(("21", "3035"))
    face = rng.choice(sorted(media.faces))
    path = rng.choice(("/api/verify", "/", "/v1/sessions"))
    long_boundary = rng.choice((71, 200, 5000))
    what = f"{twist} ({long_boundary})" if twist == "boundary over 70" else twist
    return Case("verify_multipart_structure", f"{what} (typeId {rng_type}) to {path}", build)


def verify_base64(rng: random.Random, media: MediaCorpus) -> Case:
    """Base64 image fields in every spelling a client gets wrong: bad characters,
    padding in the middle, data URLs with odd prefixes, mixed alphabets, all spaces."""
    def build(ctx: Context) -> list[Request]:
        fields = {**ctx.signed(), "typeId": type_id}
        if type_id == "21":
            fields.update(img1=text, img2=text)
        else:
            fields["img"] = text
        return [req("POST", "/api/verify", [FORM], form_body(list(fields.items())))]
    name = rng.choice(sorted(media.faces))
    b64 = base64.b64encode(media.faces[name]).decode()
    twist = rng.choice(("bad chars", "padding inside", "data URL", "data URL no comma",
                        "mixed alphabets", "only whitespace", "only padding", "one char",
                        "non-ASCII", "line wrapped", "truncated", "url-safe"))
    text = {
        "bad chars": b64[:100] + "!@#$" + b64[100:],
        "padding inside": b64[:50] + "==" + b64[50:],
        "data URL": "data:image/jpeg;base64," + b64,
        "data URL no comma": "data:image/jpeg;base64" + b64,
        "mixed alphabets": b64.replace("+", "-", 3),
        "only whitespace": " \r\n\t " * 100,
        "only padding": "=" * 40,
        "one char": "A",
        "non-ASCII": b64[:20] + "é☃" + b64[20:],
        "line wrapped": "\n".join(b64[i:i + 76] for i in range(0, len(b64), 76)),
        "truncated": b64[: rng.randrange(1, len(b64))],
        "url-safe": base64.urlsafe_b64encode(media.faces[name]).decode().rstrip("="),
    }[twist]
    type_id = rng.choice(("21", "3035"))
    return Case("verify_base64", f"{twist} base64 of {name}, typeId {type_id}", build)


def verify_image_mutations(rng: random.Random, media: MediaCorpus) -> Case:
    """Real and generated images with random byte flips, truncation, inserted or
    repeated runs and zeroed spans, sent to the decoders (signed, typeId 21 or 3035)."""
    name, data = media.any_image(rng)
    data, how = mutate(data, rng)
    route = _route(rng)
    return Case("verify_image_mutations", f"{how} of {name} via {route}",
                lambda ctx: [media_request(ctx, route, data)])


def verify_image_metadata(rng: random.Random, media: MediaCorpus) -> Case:
    """A face photo (JPEG, PNG, WebP) whose pixels are fine but whose EXIF, ICC profile
    or XMP lies: IFD entries with a wrong tag, type, count or offset, an IFD pointing at
    itself, flipped or cut-short payloads, XML entity bombs and absurd orientations
    (issue 20: fuzzed EXIF answered 5000). The metadata is ignored or the image refused
    (4002); never a 5000."""
    name = rng.choice(sorted(media.metadata))
    data, how = mutate_metadata(media.metadata[name], rng)
    route = _route(rng)
    return Case("verify_image_metadata", f"{how} of {name} via {route}",
                lambda ctx: [media_request(ctx, route, data)])


def verify_image_headers(rng: random.Random, media: MediaCorpus) -> Case:
    """Small files whose headers lie: PNG/JPEG/BMP/TIFF/GIF/WebP claiming huge or zero
    sizes (decompression bombs), a BMP of 1x100,000,000, TIFF StripOffsets of type
    DOUBLE. Each must be refused (4002/4013) from the header, not decoded."""
    f = media.formats
    tag = rng.choice(("noise16", "face160"))
    big = rng.choice((10000, 30000, 65535, 0, 1))
    variants = {
        f"PNG IHDR {big}x{big}": png_size(f[f"{tag}.png"], big, big),
        f"PNG IHDR {big}x{big} bad CRC": png_size(f[f"{tag}.png"], big, big, fix_crc=False),
        "PNG IHDR 2^31x1": png_size(f[f"{tag}.png"], 2**31 - 1, 1),
        f"JPEG SOF {big}x{big}": jpeg_size(f[f"{tag}.jpg"], big, big),
        f"progressive JPEG SOF {big}x{big}": jpeg_size(f[f"{tag}.progressive.jpg"], big, big),
        "BMP 1x100000000": bmp_size(f[f"{tag}.bmp"], 1, 100_000_000),
        "BMP 100000000x1": bmp_size(f[f"{tag}.bmp"], 100_000_000, 1),
        "BMP negative height": bmp_size(f[f"{tag}.bmp"], 16, -(2**31)),
        f"TIFF {big}x{big}": tiff_patch(tiff_patch(f[f"{tag}.tif"], TIFF_WIDTH, value=big),
                                        TIFF_HEIGHT, value=big),
        "TIFF DOUBLE StripOffsets": tiff_patch(f[f"{tag}.tif"], TIFF_STRIP_OFFSETS, TIFF_DOUBLE),
        "TIFF BitsPerSample 0": tiff_patch(f[f"{tag}.tif"], TIFF_BITS, value=0),
        f"GIF screen {big}x{big}": gif_size(f[f"{tag}.gif"], min(big, 65535), min(big, 65535)),
        "WebP VP8X canvas 16384x16384": webp_canvas(f[f"{tag}.webp"], 16384, 16384),
    }
    name = rng.choice(sorted(variants))
    data = variants[name]
    route = _route(rng)
    return Case("verify_image_headers", f"{name} via {route}",
                lambda ctx: [media_request(ctx, route, data)])


def verify_jpeg2000(rng: random.Random, media: MediaCorpus) -> Case:
    """JPEG 2000 headers that crashed OpenJPEG inside cv2.imdecode (SIGSEGV): tile size
    0, 1x1 or negative, component-count mismatch, precision over 31, a mutated ihdr box,
    a SIZ of 60000x60000 behind an ihdr of 480x270. Expected: 4002 or 4013, and alive."""
    f = media.formats
    kind = rng.choice(("jp2", "j2k"))
    base = f[f"{rng.choice(('noise16', 'face160'))}.{kind}"]
    variants = {
        "SIZ tile 0x0": {"xtsiz": 0, "ytsiz": 0},
        "SIZ tile 1x1": {"xtsiz": 1, "ytsiz": 1},
        "SIZ tile negative": {"xtsiz": -1, "ytsiz": -1},
        "SIZ 4 components": {"csiz": 4},
        "SIZ 0 components": {"csiz": 0},
        "SIZ precision 40": {"ssiz0": 39},
        "SIZ precision 128": {"ssiz0": 0x7F},
        "SIZ 60000x60000": {"xsiz": 60000, "ysiz": 60000},
        "SIZ offset past size": {"xosiz": 100000, "yosiz": 100000},
    }
    name = rng.choice(sorted(variants) + ["ihdr 0x0", "ihdr 480x270 over SIZ 60000",
                                          "ihdr 9 components", "flipped"])
    if name in variants:
        data = jp2_siz(base, **variants[name])
    elif name == "ihdr 0x0":
        data = jp2_ihdr(base, 0, 0)
    elif name == "ihdr 480x270 over SIZ 60000":
        data = jp2_ihdr(jp2_siz(base, xsiz=60000, ysiz=60000), 480, 270)
    elif name == "ihdr 9 components":
        data = jp2_ihdr(base, 16, 16, components=9)
    else:
        data = flip_bytes(base, rng, keep_head=12)
    route = _route(rng)
    expect = ("4002", "4013") if name != "flipped" else ()
    return Case("verify_jpeg2000", f"{kind} {name} via {route}",
                lambda ctx: [media_request(ctx, route, data, expect)])


def verify_other_formats(rng: random.Random, media: MediaCorpus) -> Case:
    """Formats the service does not promise (GIF, animated GIF, ICO, PPM, TGA, PCX,
    PDF, SVG, HEIC box, text) and degenerate files (empty, one byte, magic only),
    plus the promised ones as generated by Pillow (16-bit PNG, LZW TIFF, lossless WebP)."""
    name = rng.choice(sorted(media.formats))
    data = media.formats[name]
    route = _route(rng)
    return Case("verify_other_formats", f"{name} via {route}",
                lambda ctx: [media_request(ctx, route, data)])


def verify_video_mutations(rng: random.Random, media: MediaCorpus) -> Case:
    """Videos: small generated clips in every container (MP4, MOV, WebM, MKV, AVI,
    MPEG-1, FFV1, audio-only) and real clips (H.264, MPEG-1, Indeo AVI), mutated or
    truncated; real clips are cut short so a run stays within minutes."""
    real = rng.random() < 0.25
    pool = media.real_videos if real else media.small_videos
    name = rng.choice(sorted(pool))
    data = pool[name]
    if real:  # keep the analysis short: at most ~1/4 of the clip
        data = data[: rng.randrange(len(data) // 20, len(data) // 4)]
        how = "cut"
        if rng.random() < 0.5:
            data = flip_bytes(data, rng, keep_head=32)
            how += "+flip_bytes"
    elif rng.random() < 0.8:
        data, how = mutate(data, rng)
    else:
        how = "intact"
    as_files = rng.random() < 0.5
    return Case("verify_video_mutations", f"{how} of {name}",
                lambda ctx: [media_request(ctx, ("3035", "/api/verify", as_files), data)])


def verify_video_headers(rng: random.Random, media: MediaCorpus) -> Case:
    """Container headers that lie: sample entries of 65535x65535 or 0x0, an mdhd
    timescale of 0, codec identifiers no decoder claims (a stream whose codec_context
    is None), AVI and MPEG sequence headers claiming 4K+ sizes."""
    v = media.small_videos
    variants = {
        "mp4 avc1 65535x65535": lambda: mp4_sample_size(v["noise.mp4"], 65535, 65535),
        "mp4 avc1 0x0": lambda: mp4_sample_size(v["noise.mp4"], 0, 0),
        "mp4 timescale 0": lambda: mp4_timescale_zero(v["noise.mp4"]),
        "mp4 codec zzzz": lambda: replace_all(v["noise.mp4"], b"avc1", b"zzzz"),
        "mp4 avcC removed": lambda: replace_all(v["noise.mp4"], b"avcC", b"zzzz"),
        "mov codec zzzz": lambda: replace_all(v["noise.mov"], b"avc1", b"zzzz"),
        "avi fourcc QQQQ": lambda: replace_all(replace_all(v["noise.avi"], b"FMP4", b"QQQQ"),
                                               b"mp4v", b"QQQQ"),
        "avi 65535x65535": lambda: avi_size(v["noise.avi"], 65535, 65535),
        "mpeg 4095x4095": lambda: mpeg_size(v["noise.mpg"], 4095, 4095),
        "mpeg 0x0": lambda: mpeg_size(v["noise.mpg"], 0, 0),
        "webm codec V_FUZZ": lambda: replace_all(v["noise.webm"], b"V_VP8", b"V_FZZ"),
        "mkv codec V_FUZZ": lambda: replace_all(v["noise.mkv"], b"V_MJPEG", b"V_FUZZZ"),
        "mp4 audio only": lambda: v["aac-only.mp4"],
        "webm audio only": lambda: v["opus-only.webm"],
        "real mp4 codec zzzz": lambda: replace_all(
            media.real_videos[min(media.real_videos)], b"avc1", b"zzzz"),
        "indeo avi fourcc QQQQ": lambda: replace_all(
            media.real_videos.get("zju_original/000003M_FNN.avi", v["noise.avi"]), b"IV50", b"QQQQ"),
    }
    name = rng.choice(sorted(variants))
    data = variants[name]()
    if rng.random() < 0.3:
        data = truncate(data, rng)
        name += " truncated"
    return Case("verify_video_headers", name,
                lambda ctx: [media_request(ctx, ("3035", "/api/verify", True), data)])


def auth_tokens(rng: random.Random, media: MediaCorpus) -> Case:
    """Credentials a guesser or a sloppy client sends: wrong, uppercase, padded or
    truncated tokens, unknown keys, expired/future/non-numeric timestamps, and the
    exact replay of an accepted request. Exactness is asserted (4010/4011)."""
    def build(ctx: Context) -> list[Request]:
        offset = {"expired": -3600.0, "future": 3600.0}.get(twist, 0.0)
        fields = {**ctx.signed(offset), "typeId": "3035"}
        expect: tuple[str, ...] = ("4010",)
        if twist == "uppercase token":
            fields["token"] = fields["token"].upper()
        elif twist == "padded token":
            fields["token"] = f" {fields['token']} "
        elif twist == "token with newline":
            fields["token"] = fields["token"] + "\n"
        elif twist == "truncated token":
            fields["token"] = fields["token"][:-1]
        elif twist == "wrong token":
            fields["token"] = "0" * 64
        elif twist == "unknown key":
            fields["key"] = "nobody"
        elif twist == "non-UTF-8 token":
            fields["token"] = "\udcff"
            expect = ("4001", "4010")
        elif twist in ("expired", "future"):
            expect = ("4011",)
        elif twist in ("timestamp nan", "timestamp inf", "timestamp 1e400", "timestamp huge"):
            ts = {"timestamp nan": "nan", "timestamp inf": "inf", "timestamp 1e400": "1e400",
                  "timestamp huge": "9" * 5000}[twist]
            fields.update(ctx.signed())
            fields["timestamp"] = ts
            fields["token"] = signed_fields(ctx.key, ctx.secret, ts)["token"]
            ctx.credentials.add(fields["token"])
            expect = ("4001", "4011")
        pairs = [(k, v.encode("utf-8", "surrogateescape")) for k, v in fields.items()]
        pairs.append(("img", base64.b64encode(media.formats["noise16.png"])))
        body = form_body(pairs)
        first = req("POST", "/api/verify", [FORM], body, expect=expect)
        if twist == "replay":
            return [req("POST", "/api/verify", [FORM], body, expect=()),
                    req("POST", "/api/verify", [FORM], body, expect=("4011",))]
        return [first]
    twist = rng.choice(("uppercase token", "padded token", "token with newline",
                        "truncated token", "wrong token", "unknown key", "non-UTF-8 token",
                        "expired", "future", "timestamp nan", "timestamp inf",
                        "timestamp 1e400", "timestamp huge", "replay"))
    return Case("auth_tokens", twist, build)


# ---- sessions ----------------------------------------------------------------------


def _nested_json(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def session_create(rng: random.Random, media: MediaCorpus) -> Case:
    """POST /v1/sessions as form, multipart and JSON: JSON 1000 deep (RecursionError),
    non-objects, non-UTF-8, BOMs, huge numbers, odd challenges and ttl values, and
    mutated portraits that reach the decoder."""
    def build(ctx: Context) -> list[Request]:
        fields: dict[str, object] = dict(ctx.signed()) if signed else {}
        if challenges is not None:
            fields["challenges"] = challenges
        if ttl is not None:
            fields["ttl"] = ttl
        if portrait is not None:
            fields["img"] = base64.b64encode(portrait).decode()
        path = "/v1/sessions"
        if shape == "json":
            body = json.dumps(fields).encode()
            if twist == "deep JSON":
                body = body[:-1] + b', "x": ' + _nested_json(1000) + b"}"
            elif twist == "deep JSON list":
                body = b"[" * 5000 + b"]" * 5000
            elif twist == "JSON not an object":
                body = rng_choice_json
            elif twist == "non-UTF-8 JSON":
                body = body[:-1] + b', "x": "\xff\xfe"}'
            elif twist == "BOM":
                body = b"\xef\xbb\xbf" + body
            elif twist == "huge int":
                body = body[:-1] + b', "ttl": ' + b"9" * 5000 + b"}"
            elif twist == "duplicate keys":
                body = body[:-1] + b', "key": "other"}'
            elif twist == "NaN":
                body = body[:-1] + b', "ttl": NaN}'
            return [req("POST", path, [(b"Content-Type", json_ctype)], body)]
        text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
        if shape == "multipart":
            parts = fields_parts(text)
            if portrait is not None and rng_file:
                parts = [p for p in parts if b'name="img"' not in p[0][0]]
                parts.append(part("file", portrait, "p.jpg", "image/jpeg"))
            return [req("POST", path, [mp_type()], multipart(parts))]
        return [req("POST", path, [FORM], form_body(list(text.items())))]
    signed = rng.random() < 0.8
    shape = rng.choice(("json", "form", "multipart"))
    challenges = rng.choice((None, None, 0, 2, 6, 7, -1, "blink", "blink,mouth,fly", [],
                             ["blink", ["mouth"]], {"a": 1}, "9" * 50, 1.5, True, "\u0000"))
    ttl = rng.choice((None, None, 10, 600, 9, 601, "nan", "inf", "-inf", "1e309", "abc", [], True))
    portrait = None
    if rng.random() < 0.25:
        _, portrait = media.any_image(rng)
        portrait, _ = mutate(portrait, rng) if rng.random() < 0.7 else (portrait, "")
    rng_file = rng.random() < 0.5
    twist = rng.choice(("none", "none", "deep JSON", "deep JSON list", "JSON not an object",
                        "non-UTF-8 JSON", "BOM", "huge int", "duplicate keys", "NaN"))
    rng_choice_json = rng.choice((b"[]", b'"str"', b"1", b"null", b"", b"{", b"[1,2]"))
    json_ctype = rng.choice((b"application/json", b"application/json; charset=utf-16",
                             b"application/json; charset=fuzz"))
    return Case("session_create",
                f"{shape} {'signed' if signed else 'unsigned'} challenges={challenges!r} "
                f"ttl={ttl!r} portrait={'yes' if portrait is not None else 'no'} {twist}", build)


def _fingerprint() -> str:
    return ":".join(f"{b:02X}" for b in bytes(range(32)))


OFFER_LINES = [
    "v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0",
    "a=group:BUNDLE 0 1", "a=msid-semantic: WMS",
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103", "c=IN IP4 0.0.0.0", "a=rtcp:9 IN IP4 0.0.0.0",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host",
    "a=ice-ufrag:fuzz", "a=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz", "a=ice-options:trickle",
    f"a=fingerprint:sha-256 {_fingerprint()}", "a=setup:actpass", "a=mid:0", "a=sendonly",
    "a=msid:- video0", "a=rtcp-mux", "a=rtcp-rsize",
    "a=rtpmap:96 VP8/90000", "a=rtcp-fb:96 nack", "a=rtcp-fb:96 nack pli",
    "a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96",
    "a=rtpmap:102 H264/90000",
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
    "a=rtpmap:103 rtx/90000", "a=fmtp:103 apt=102",
    "a=ssrc-group:FID 1111 2222", "a=ssrc:1111 cname:fuzz", "a=ssrc:2222 cname:fuzz",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "c=IN IP4 0.0.0.0",
    "a=candidate:1 1 udp 2122260223 127.0.0.1 9 typ host",
    "a=ice-ufrag:fuzz", "a=ice-pwd:fuzzfuzzfuzzfuzzfuzzfuzz",
    f"a=fingerprint:sha-256 {_fingerprint()}", "a=setup:actpass", "a=mid:1",
    "a=sctp-port:5000", "a=max-message-size:262144",
]


def valid_offer() -> str:
    """A browser-like WHIP offer (VP8 + H.264 with RTX, a data channel) whose only
    candidate is 127.0.0.1:9: ICE checks go nowhere but loopback."""
    return "\r\n".join(OFFER_LINES) + "\r\n"


def _mutate_offer(rng: random.Random) -> tuple[str, bytes]:
    """One named SDP mutation of the valid offer."""
    lines = list(OFFER_LINES)
    name = rng.choice(("drop rtx apt", "rtpmap without clock rate", "truncated m= line",
                       "truncated candidate", "no a=mid", "non-UTF-8 bytes", "drop a line",
                       "duplicate a line", "shuffle lines", "no fingerprint", "no ice-ufrag",
                       "bad setup", "payload type not a number", "payload type 300",
                       "rtpmap of unknown pt", "fmtp garbage", "ssrc-group one ssrc",
                       "rtcp port text", "audio only", "only v=0", "empty", "LF endings",
                       "300 m= sections", "100k line", "candidate ::1", "candidate bad port",
                       "candidate priority text", "char flips", "bundle unknown mid",
                       "direction recvonly", "no video codecs", "rtx only"))
    def sub(old: str, new: str | None) -> None:
        nonlocal lines
        lines = [(new if line.startswith(old) else line) for line in lines]
        lines = [line for line in lines if line is not None]  # type: ignore[comparison-overlap]
    if name == "drop rtx apt":
        sub("a=fmtp:97", None)
        sub("a=fmtp:103", None)
    elif name == "rtpmap without clock rate":
        sub("a=rtpmap:96", "a=rtpmap:96 VP8")
    elif name == "truncated m= line":
        sub("m=video", "m=video 9")
    elif name == "truncated candidate":
        sub("a=candidate", "a=candidate:1 1 udp")
    elif name == "no a=mid":
        sub("a=mid", None)
        sub("a=group:BUNDLE", None)
    elif name == "drop a line":
        del lines[rng.randrange(len(lines))]
    elif name == "duplicate a line":
        i = rng.randrange(len(lines))
        lines.insert(i, lines[i])
    elif name == "shuffle lines":
        rng.shuffle(lines)
    elif name == "no fingerprint":
        sub("a=fingerprint", None)
    elif name == "no ice-ufrag":
        sub("a=ice-ufrag", None)
    elif name == "bad setup":
        sub("a=setup", "a=setup:fuzz")
    elif name == "payload type not a number":
        sub("m=video", "m=video 9 UDP/TLS/RTP/SAVPF x y")
    elif name == "payload type 300":
        sub("m=video", "m=video 9 UDP/TLS/RTP/SAVPF 300")
        sub("a=rtpmap:96", "a=rtpmap:300 VP8/90000")
    elif name == "rtpmap of unknown pt":
        lines.insert(20, "a=rtpmap:55 FUZZ/1")
    elif name == "fmtp garbage":
        sub("a=fmtp:102", "a=fmtp:102 ;;==;profile-level-id=zz")
    elif name == "ssrc-group one ssrc":
        sub("a=ssrc-group", "a=ssrc-group:FID x")
    elif name == "rtcp port text":
        sub("a=rtcp:", "a=rtcp:abc IN IP4")
    elif name == "audio only":
        i = lines.index("m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103")
        lines[i] = "m=audio 9 UDP/TLS/RTP/SAVPF 111"
        lines = [line for line in lines if not line.startswith(("a=rtpmap:9", "a=rtpmap:10", "a=fmtp"))]
        lines.insert(i + 1, "a=rtpmap:111 opus/48000/2")
    elif name == "only v=0":
        lines = ["v=0"]
    elif name == "empty":
        lines = []
    elif name == "300 m= sections":
        video = lines[6:32]
        lines = lines[:6] + [line.replace("a=mid:0", f"a=mid:v{i}") for i in range(300)
                             for line in video]
    elif name == "100k line":
        lines.insert(8, "a=x-fuzz:" + MARK + "z" * 100_000)
    elif name == "candidate ::1":
        sub("a=candidate", "a=candidate:2 1 udp 2122260223 ::1 9 typ host")
    elif name == "candidate bad port":
        sub("a=candidate", "a=candidate:1 1 udp 2122260223 127.0.0.1 99999 typ host")
    elif name == "candidate priority text":
        sub("a=candidate", "a=candidate:1 1 udp high 127.0.0.1 9 typ host")
    elif name == "bundle unknown mid":
        sub("a=group:BUNDLE", "a=group:BUNDLE 7 8")
    elif name == "direction recvonly":
        sub("a=sendonly", "a=recvonly")
    elif name == "no video codecs":
        lines = [line for line in lines if not line.startswith(("a=rtpmap", "a=fmtp", "a=rtcp-fb"))]
    elif name == "rtx only":
        sub("m=video", "m=video 9 UDP/TLS/RTP/SAVPF 97")
    text = ("\n" if name == "LF endings" else "\r\n").join(lines) + "\r\n"
    raw = text.encode()
    if name == "non-UTF-8 bytes":
        at = raw.index(b"a=ice-ufrag")
        raw = raw[:at] + b"a=x-fuzz:\xff\xfe\xc3\x28\r\n" + raw[at:]
    elif name == "char flips":
        # flips outside candidate lines only: a flipped address could leave loopback
        out = bytearray(raw)
        safe = [i for i in range(len(out)) if b"candidate" not in
                raw[raw.rfind(b"\n", 0, i) + 1: raw.find(b"\n", i)]]
        for _ in range(rng.randint(1, 8)):
            out[rng.choice(safe)] = rng.randrange(32, 127)
        raw = bytes(out)
    return name, raw


def _bearer(ctx: Context, how: str) -> list[tuple[bytes, bytes]]:
    token = ctx.session_token
    value = {
        "good": b"Bearer " + token.encode(),
        "lowercase scheme": b"bearer " + token.encode(),
        "missing": b"",
        "empty": b"Bearer ",
        "uppercase token": b"Bearer " + token.upper().encode(),
        "padded token": b"Bearer   " + token.encode() + b"  ",
        "wrong token": b"Bearer " + b"A" * len(token),
        "basic": b"Basic " + base64.b64encode(b"fuzz:" + token.encode()),
        "non-UTF-8": b"Bearer \xff\xfe" + token.encode(),
        "token only": token.encode(),
    }[how]
    return [(b"Authorization", value)] if value else []


BEARER_VARIANTS = ("good", "good", "good", "lowercase scheme", "missing", "empty",
                   "uppercase token", "padded token", "wrong token", "basic", "non-UTF-8",
                   "token only")
# An exact token is required (the spec: the token as issued); a scheme is case-insensitive.
BEARER_EXPECT = {"missing": ("4010",), "empty": ("4010",), "uppercase token": ("4010",),
                 "padded token": ("4010",), "wrong token": ("4010",), "basic": ("4010",),
                 "non-UTF-8": ("4010",), "token only": ("4010",)}


def whip_offer(rng: random.Random, media: MediaCorpus) -> Case:
    """WHIP offers to a fresh session: mutated SDP (dropped rtx apt, rtpmap without
    clock rate, truncated m=/candidate lines, no a=mid, non-UTF-8...), JSON offers
    ({"sdp": null}, wrong types, 1000 deep), wrong content types and bearer tokens."""
    def build(ctx: Context) -> list[Request]:
        path = f"/v1/sessions/{ctx.session_id}/whip"
        headers = _bearer(ctx, bearer)
        if ctype:
            headers.append((b"Content-Type", ctype))
        return [req("POST", path, headers, body, expect=BEARER_EXPECT.get(bearer, ()))]
    bearer = rng.choice(BEARER_VARIANTS)
    shape = rng.choice(("sdp", "sdp", "sdp", "json", "other"))
    if shape == "sdp":
        name, body = _mutate_offer(rng) if rng.random() < 0.85 else ("valid", valid_offer().encode())
        ctype = rng.choice((b"application/sdp", b"application/sdp", b"application/SDP",
                            b"application/sdp; charset=latin-1", b"application/sdp; charset=fuzz"))
    elif shape == "json":
        name, sdp_value = rng.choice((
            ("sdp null", None), ("sdp number", 5), ("sdp list", ["v=0"]), ("sdp object", {}),
            ("valid", valid_offer()), ("mutated", _mutate_offer(rng)[1].decode("latin-1"))))
        doc: object = {"sdp": sdp_value, "type": rng.choice(("offer", "offer", "answer", None, 7))}
        body = json.dumps(doc).encode()
        if rng.random() < 0.15:
            name, body = "1000 deep", _nested_json(1000)
        elif rng.random() < 0.1:
            name, body = "not JSON", b'{"sdp": "v=0\xff'
        ctype = b"application/json"
    else:
        name, body = "valid offer", valid_offer().encode()
        ctype = rng.choice((None, b"text/plain", b"application/x-www-form-urlencoded",
                            b"multipart/form-data; boundary=x", b"\xff\xfe"))
    return Case("whip_offer", f"{shape} {name} ctype={ctype!r} bearer={bearer}", build,
                needs="session")


def whip_patch(rng: random.Random, media: MediaCorpus) -> Case:
    """Trickle ICE PATCH on an offered session: short candidates, non-integer
    priority, bad ports and components, unknown mids, non-UTF-8, end-of-candidates,
    wrong content types (a 415 text/plain today) and bad tokens."""
    frags = {
        "valid": "a=mid:0\r\na=candidate:3 1 udp 2122260223 127.0.0.1 9 typ host\r\n",
        "short candidate": "a=mid:0\r\na=candidate:1 1 udp\r\n",
        "priority text": "a=mid:0\r\na=candidate:1 1 udp high 127.0.0.1 9 typ host\r\n",
        "port text": "a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 port typ host\r\n",
        "component text": "a=mid:0\r\na=candidate:1 x udp 1 127.0.0.1 9 typ host\r\n",
        "no typ": "a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9\r\n",
        "unknown typ": "a=mid:0\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ fuzz\r\n",
        "tcp": "a=mid:0\r\na=candidate:1 1 tcp 1 127.0.0.1 9 typ host tcptype active\r\n",
        "unknown mid": "a=mid:99\r\na=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
        "no mid": "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n",
        "end-of-candidates": "a=mid:0\r\na=end-of-candidates\r\n",
        "ice restart": "a=ice-ufrag:new\r\na=ice-pwd:newnewnewnewnewnewnewnew\r\n",
        "empty": "",
        "1000 candidates": "a=mid:0\r\n" + "a=candidate:1 1 udp 1 127.0.0.1 9 typ host\r\n" * 1000,
        "candidate colon only": "a=mid:0\r\na=candidate:\r\n",
    }
    name = rng.choice(sorted(frags) + ["non-UTF-8"])
    body = b"a=mid:0\r\na=candidate:\xff\xfe\r\n" if name == "non-UTF-8" else frags[name].encode()
    ctype = rng.choice((b"application/trickle-ice-sdpfrag",) * 4 +
                       (b"application/sdp", b"text/plain", None,
                        b"application/trickle-ice-sdpfrag; charset=fuzz"))
    bearer = rng.choice(BEARER_VARIANTS)
    offered = rng.random() < 0.85

    def build(ctx: Context) -> list[Request]:
        headers = _bearer(ctx, bearer)
        if ctype:
            headers.append((b"Content-Type", ctype))
        return [req("PATCH", f"/v1/sessions/{ctx.session_id}/whip", headers, body,
                    expect=BEARER_EXPECT.get(bearer, ()))]
    return Case("whip_patch", f"{name} ctype={ctype!r} bearer={bearer} "
                f"{'offered' if offered else 'not offered'}", build,
                needs="offered" if offered else "session")


def whip_delete(rng: random.Random, media: MediaCorpus) -> Case:
    """DELETE (hang up) with good and bad tokens, twice, on sessions that were or were
    not offered, and on sessions that do not exist."""
    bearer = rng.choice(BEARER_VARIANTS)
    twice = rng.random() < 0.3
    unknown = rng.random() < 0.15
    offered = rng.random() < 0.5

    def build(ctx: Context) -> list[Request]:
        sid = "doesnotexist" if unknown else ctx.session_id
        r = req("DELETE", f"/v1/sessions/{sid}/whip", _bearer(ctx, bearer),
                expect=BEARER_EXPECT.get(bearer, ()) if not unknown else ())
        return [r, r] if twice else [r]
    return Case("whip_delete", f"bearer={bearer} twice={twice} unknown={unknown} "
                f"offered={offered}", build, needs="offered" if offered else "session")


def session_result(rng: random.Random, media: MediaCorpus) -> Case:
    """GET result with bearer variants or a signed query (good, wrong, expired,
    uppercase, another key, fields missing), on unknown and weird session ids."""
    how = rng.choice(("bearer", "bearer", "query", "query"))
    bearer = rng.choice(BEARER_VARIANTS)
    qtwist = rng.choice(("good", "good", "expired", "uppercase token", "padded token",
                         "missing token", "unknown key", "repeated fields", "non-UTF-8"))
    sid_twist = rng.choice(("own",) * 6 + ("unknown", "long", "percent garbage", "dot dot"))

    def build(ctx: Context) -> list[Request]:
        sid = {"own": ctx.session_id, "unknown": "doesnotexist", "long": "s" * 5000,
               "percent garbage": "%ff%fe%00", "dot dot": "..%2f..%2fhealthz"}[sid_twist]
        path = f"/v1/sessions/{sid}/result"
        if how == "bearer":
            expect = BEARER_EXPECT.get(bearer, ()) if sid_twist == "own" else ()
            if bearer == "missing" and sid_twist == "own":  # then the signed query is required
                expect = ("4001",)
            return [req("GET", path, _bearer(ctx, bearer), expect=expect)]
        f = ctx.signed(-3600.0 if qtwist == "expired" else 0.0)
        expect: tuple[str, ...] = ()
        if qtwist == "uppercase token":
            f["token"] = f["token"].upper()
            expect = ("4010",)
        elif qtwist == "padded token":
            f["token"] = f" {f['token']} "
            expect = ("4010",)
        elif qtwist == "missing token":
            del f["token"]
            expect = ("4001",)
        elif qtwist == "unknown key":
            f["key"] = "nobody"
            expect = ("4010",)
        elif qtwist == "expired":
            expect = ("4011",)
        query = "&".join(f"{k}={quote(v)}" for k, v in f.items())
        if qtwist == "repeated fields":
            query += "&key=other&token=x"
        elif qtwist == "non-UTF-8":
            query += "&%ff=%fe"
        return [req("GET", f"{path}?{query}", [], expect=expect if sid_twist == "own" else ())]
    return Case("session_result", f"{how} bearer={bearer} query={qtwist} id={sid_twist}",
                build, needs="session")


# ---- the mix -----------------------------------------------------------------------

# (family, weight): weights favour cheap parser attacks; decoder families are
# fewer but each reaches a real decoder.
FAMILIES: list[tuple[Callable[[random.Random, MediaCorpus], Case], int]] = [
    (http_request_line, 5), (http_headers, 6), (http_chunked, 5), (http_content_length, 5),
    (http_encoding, 5), (http_paths_methods, 6), (http_legit_pages, 3),
    (verify_form_fields, 8), (verify_multipart_structure, 8), (verify_base64, 4),
    (verify_image_mutations, 8), (verify_image_headers, 5), (verify_jpeg2000, 3),
    (verify_other_formats, 4), (verify_video_mutations, 3), (verify_video_headers, 2),
    (auth_tokens, 5), (session_create, 7), (whip_offer, 6), (whip_patch, 4),
    (whip_delete, 2), (session_result, 4), (verify_image_metadata, 5),
]


def family_quotas(count: int, weights: Sequence[int], minimum: int = 1) -> list[int]:
    """Cases per family: shares of `count` by weight, but never fewer than `minimum`
    (a family whose share falls short gets the minimum, the others share the rest; the
    total is then more than `count` when `count` cannot give every family its minimum).
    Rounded by largest remainder, so the total is exactly `count` otherwise."""
    pinned: set[int] = set()
    while True:
        free = [i for i in range(len(weights)) if i not in pinned]
        left = max(0, count - minimum * len(pinned))
        total = sum(weights[i] for i in free)
        exact = {i: left * weights[i] / total for i in free} if total else {}
        short = {i for i in free if exact[i] < minimum}
        if not short:
            break
        pinned |= short
    quotas = [minimum if i in pinned else int(exact[i]) for i in range(len(weights))]
    by_remainder = sorted(free, key=lambda i: exact[i] - int(exact[i]), reverse=True)
    for i in by_remainder[: max(0, count - sum(quotas))]:
        quotas[i] += 1
    return quotas


def generate(seed: int, count: int, data_dir: Path,
             only: Collection[str] = (), min_per_family: int = 1) -> Iterator[Case]:
    """`count` cases from `seed`: every family first (so a short run covers all), then
    the rest of each family's quota (family_quotas: by weight, at least
    `min_per_family`) in a shuffled order; `only` restricts the run to the named
    families."""
    rng = random.Random(seed)
    media = load_corpus(data_dir)
    chosen = [(f, w) for f, w in FAMILIES if not only or f.__name__ in only]
    if not chosen:
        raise ValueError(f"no such family: {sorted(only)}")
    funcs = [f for f, _ in chosen]
    quotas = family_quotas(count, [w for _, w in chosen], max(1, min_per_family))
    rest = [f for f, n in zip(funcs, quotas, strict=True) for _ in range(n - 1)]
    rng.shuffle(rest)
    for family in funcs + rest:
        yield family(rng, media)
